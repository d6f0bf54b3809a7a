"""Pricing each session once, when it ends: the `session_charge` row and its durable event.

Runs in the worker, in the transaction that handles the durable TransactionEnded, so a session
is charged exactly once however often the event is delivered (unique per transaction); the
SessionCharged event it records is what payment capture and receipts react to. A session that
no tariff applies to costs nothing and gets no row. A sponsor's share (api.sponsorships) is
settled in the same transaction: it is stored as `sponsor_amount`, the driver pays the rest, and
the stored lines end with a negative "Sponsored by …" line.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from api.billing import pricing, service, timeline
from api.billing import repository as repo
from api.billing.tariffs import Component
from api.sponsorships import service as sponsorships
from schema import outbox
from schema.charge_models import SessionCharge
from schema.db import insert_on_conflict
from schema.events import Event, SessionCharged, TransactionEnded
from schema.models import ChargingStation, Transaction
from schema.timeutil import utcnow

CHARGE = SessionCharge.__table__  # type: ignore[attr-defined]
TRANSACTION = Transaction.__table__  # type: ignore[attr-defined]
STATION = ChargingStation.__table__  # type: ignore[attr-defined]


def lines_json(price: pricing.Price) -> list[dict[str, Any]]:
    return [
        {
            "component": li.component.value,
            "label": li.label,
            "unit": li.unit,
            "amount": li.amount,
            "base_quantity": li.base_quantity,
            "scaled_price": li.scaled_price,
        }
        for li in price.lines
    ]


def price_of(row: Any) -> pricing.Price:
    """The stored bill as the engine's Price (for the same GraphQL shape as an estimate)."""
    return pricing.Price(
        currency=row.currency,
        lines=tuple(
            pricing.LineItem(
                Component(li["component"]),
                li["label"],
                li["unit"],
                li["amount"],
                li["base_quantity"],
                li["scaled_price"],
            )
            for li in row.lines
        ),
        subtotal=row.subtotal,
        net=row.net,
        tax=row.tax,
        total=row.total,
        tax_basis_points=row.tax_basis_points,
        prices_include_tax=row.prices_include_tax,
        energy_mwh=row.energy_wh * 1000,
        charging_ms=row.charging_seconds * 1000,
        idle_ms=row.idle_seconds * 1000,
    )


async def charge_session(conn: AsyncConnection, event: Event) -> None:
    """Worker handler of TransactionEnded."""
    assert isinstance(event, TransactionEnded)
    tx = (
        await conn.execute(
            select(TRANSACTION, STATION.c.organization_id, STATION.c.charge_point_id, STATION.c.location_id)
            .join(STATION, STATION.c.id == TRANSACTION.c.station_id)
            .where(TRANSACTION.c.id == event.transaction_id)
        )
    ).first()
    if tx is None or tx.stopped_at is None or await stored(conn, tx.id) is not None:
        return  # not ended, or charged by an earlier delivery: usage and claims are spent once
    found = await service.of_session(conn, tx.id)
    tl = await timeline.of_session(conn, tx.id)
    if found is None or tl is None:
        await sponsorships.settle(conn, tx.id, None)  # nothing to sponsor: the claim is released
        return
    benefits = None
    m = found.membership
    if m is not None:
        # the period's usage row stays locked until this transaction ends: two sessions ending
        # together cannot both spend the same included energy
        benefits = m.benefits(await repo.used_wh(conn, m.subscription_id, m.period_start, lock=True))
    price = pricing.plan(found.tariff).price(tl, benefits)
    if m is not None and price.free_wh_used:
        await repo.add_usage(conn, m.subscription_id, m.period_start, price.free_wh_used)
    sponsored = await sponsorships.settle(conn, tx.id, price)
    sponsor_amount = 0 if sponsored is None else sponsored.amount
    lines = lines_json(price) + ([] if sponsored is None else [sponsored.line()])
    now = utcnow()
    row = {
        "transaction_id": tx.id,
        "organization_id": tx.organization_id,
        "station_id": tx.station_id,
        "user_id": tx.user_id,
        "id_tag": tx.id_tag,
        "tariff_version_id": found.version_id,
        "currency": price.currency,
        "lines": lines,
        "subtotal": price.subtotal,
        "net": price.net,
        "tax": price.tax,
        "total": price.total,
        "tax_basis_points": price.tax_basis_points,
        "prices_include_tax": price.prices_include_tax,
        "energy_wh": price.energy_wh,
        "charging_seconds": price.charging_ms // 1000,
        "idle_seconds": price.idle_ms // 1000,
        "sponsor_amount": sponsor_amount,
        "driver_amount": price.total - sponsor_amount,
        "started_at": tx.started_at,
        "stopped_at": tx.stopped_at,
        "priced_at": now,
    }
    inserted = await conn.execute(
        insert_on_conflict(conn, CHARGE)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["transaction_id"])
    )
    if not inserted.rowcount:
        return  # charged by an earlier delivery of the same event
    charge_id: int = (
        await conn.execute(select(CHARGE.c.id).where(CHARGE.c.transaction_id == tx.id))
    ).scalar_one()
    await outbox.append(
        conn,
        [
            SessionCharged(
                station_id=tx.station_id,
                charge_point_id=tx.charge_point_id,
                location_id=tx.location_id,
                at=now,
                transaction_id=tx.id,
                charge_id=int(charge_id),
                user_id=tx.user_id,
                currency=price.currency,
                total=price.total,
                driver_amount=price.total - sponsor_amount,
            )
        ],
        now,
    )


async def stored(conn: AsyncConnection, transaction_id: int) -> Any | None:
    return (await conn.execute(select(CHARGE).where(CHARGE.c.transaction_id == transaction_id))).first()


async def bill(conn: AsyncConnection, transaction_id: int) -> pricing.Price | None:
    """The session's price: its stored charge once it has one, else priced now (an active
    session so far, or an ended one the worker has not charged yet)."""
    row = await stored(conn, transaction_id)
    if row is not None:
        return price_of(row)
    return await service.session_price(conn, transaction_id)
