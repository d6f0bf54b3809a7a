"""Receipts: one per charged session the driver pays something for, numbered without gaps.

Issued by the worker on the durable SessionCharged (in the transaction that records the event
as processed, so a redelivery issues nothing twice), and by a catch-up job for sessions charged
before receipts existed or while the handler failed. Both go through `issue_receipts`, which
takes many sessions at once: numbers follow the order the sessions were charged in, and a
session that already has its receipt is skipped under the counter's lock, so the handler and
the catch-up job can never give one session two numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.billing import pricing
from api.billing.tariffs import Component
from api.invoicing import invoices, numbering
from schema.account_models import UserAccount
from schema.charge_models import SessionCharge
from schema.document_models import BillingDocument, DocumentKind
from schema.events import Event, SessionCharged
from schema.models import ChargingStation, Location, Organization, Transaction
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

CHARGE = SessionCharge.__table__  # type: ignore[attr-defined]
DOCUMENT = BillingDocument.__table__  # type: ignore[attr-defined]
ORGANIZATION = Organization.__table__  # type: ignore[attr-defined]
STATION = ChargingStation.__table__  # type: ignore[attr-defined]
LOCATION = Location.__table__  # type: ignore[attr-defined]
TRANSACTION = Transaction.__table__  # type: ignore[attr-defined]
USER = UserAccount.__table__  # type: ignore[attr-defined]

RECEIPT_SERIES = numbering.SERIES[DocumentKind.RECEIPT]
# Sessions per transaction of the catch-up job: large enough that month-end backlogs clear
# quickly, small enough that the counter row is not held for long (the worker's handler waits
# for it) and one failed batch costs little to redo.
CATCH_UP_BATCH = 2_000
ANONYMOUS_CARD = "Anonymous card"


async def issue_on_charged(conn: AsyncConnection, event: Event) -> None:
    """Worker handler of SessionCharged."""
    assert isinstance(event, SessionCharged)
    if event.driver_amount <= 0:
        return  # free or fully sponsored: nothing was paid, so nothing to receipt
    await issue_receipts(conn, [event.charge_id])


async def issue_receipts(
    conn: AsyncConnection, charge_ids: Sequence[int], *, now: datetime | None = None
) -> list[int]:
    """Issue the missing receipts of these session charges; the new documents' ids.

    Charges without a driver amount or an organisation (no seller) get none. Runs inside the
    caller's transaction, which must commit for the numbers to count.
    """
    if not charge_ids:
        return []
    now = now or utcnow()
    rows = (
        await conn.execute(
            _charges_with_context().where(CHARGE.c.id.in_(list(charge_ids))).order_by(CHARGE.c.id)
        )
    ).all()
    by_org: dict[int, list[Row[Any]]] = {}
    for r in rows:
        if r.driver_amount > 0 and r.organization_id is not None:
            by_org.setdefault(r.organization_id, []).append(r)
    issued: list[int] = []
    # Organisations in id order: two batches spanning the same organisations lock their
    # counters in the same order and cannot deadlock.
    for organization_id in sorted(by_org):
        issued += await _issue_for_org(conn, organization_id, by_org[organization_id], now)
    return issued


async def _issue_for_org(
    conn: AsyncConnection, organization_id: int, charges: list[Row[Any]], now: datetime
) -> list[int]:
    year = now.year
    last = await numbering.lock_counter(conn, organization_id, RECEIPT_SERIES, year)
    # Under the lock: receipts another issuer committed meanwhile are seen here.
    existing: set[int] = set(
        (
            await conn.execute(
                select(DOCUMENT.c.session_charge_id).where(
                    DOCUMENT.c.session_charge_id.in_([c.id for c in charges])
                )
            )
        ).scalars()
    )
    missing = [c for c in charges if c.id not in existing]
    if not missing:
        return []
    values = [
        receipt_values(c, sequence=last + i, year=year, now=now) for i, c in enumerate(missing, start=1)
    ]
    await conn.execute(insert(DOCUMENT), values)
    await numbering.advance(conn, organization_id, RECEIPT_SERIES, year, last + len(missing))
    ids: Sequence[int] = (
        (
            await conn.execute(
                select(DOCUMENT.c.id).where(DOCUMENT.c.session_charge_id.in_([c.id for c in missing]))
            )
        )
        .scalars()
        .all()
    )
    return [int(i) for i in ids]


def _charges_with_context() -> Any:
    return select(
        CHARGE,
        ORGANIZATION.c.name.label("org_name"),
        ORGANIZATION.c.legal_name.label("org_legal_name"),
        ORGANIZATION.c.billing_address.label("org_address"),
        ORGANIZATION.c.vat_id.label("org_vat_id"),
        ORGANIZATION.c.billing_email.label("org_email"),
        STATION.c.charge_point_id,
        LOCATION.c.name.label("location_name"),
        LOCATION.c.address.label("location_address"),
        LOCATION.c.city.label("location_city"),
        LOCATION.c.country.label("location_country"),
        LOCATION.c.time_zone,
        TRANSACTION.c.connector_id,
        TRANSACTION.c.meter_start_wh,
        TRANSACTION.c.meter_stop_wh,
        USER.c.display_name.label("user_name"),
        USER.c.email.label("user_email"),
    ).select_from(
        CHARGE.join(ORGANIZATION, ORGANIZATION.c.id == CHARGE.c.organization_id)
        .join(STATION, STATION.c.id == CHARGE.c.station_id)
        .join(TRANSACTION, TRANSACTION.c.id == CHARGE.c.transaction_id)
        .outerjoin(LOCATION, LOCATION.c.id == STATION.c.location_id)
        .outerjoin(USER, USER.c.id == CHARGE.c.user_id)
    )


def receipt_values(c: Row[Any], *, sequence: int, year: int, now: datetime) -> dict[str, Any]:
    """The receipt of one charge, as the row to insert (everything copied, see the model)."""
    share = driver_tax_share(c.net, c.tax, c.tax_basis_points, c.driver_amount, bool(c.sponsor_amount))
    return {
        "organization_id": c.organization_id,
        "kind": DocumentKind.RECEIPT.value,
        "series": RECEIPT_SERIES,
        "year": year,
        "sequence": sequence,
        "number": numbering.document_number(RECEIPT_SERIES, year, sequence),
        "issued_at": now,
        "session_charge_id": c.id,
        "transaction_id": c.transaction_id,
        "station_id": c.station_id,
        "user_id": c.user_id,
        "currency": c.currency,
        "seller": {
            "name": c.org_name,
            "legal_name": c.org_legal_name,
            "address": c.org_address,
            "vat_id": c.org_vat_id,
            "email": c.org_email,
        },
        "buyer": _buyer(c),
        "lines": [_line(li, c.tax_basis_points) for li in c.lines],
        "tax_breakdown": [share],
        "details": {
            "charge_point_id": c.charge_point_id,
            "connector_id": c.connector_id,
            "location_name": c.location_name,
            "address": ", ".join(p for p in (c.location_address, c.location_city, c.location_country) if p)
            or None,
            "time_zone": c.time_zone,
            "started_at": c.started_at.isoformat(),
            "stopped_at": c.stopped_at.isoformat(),
            "energy_wh": c.energy_wh,
            "meter_start_wh": c.meter_start_wh,
            "meter_stop_wh": c.meter_stop_wh,
            "charging_seconds": c.charging_seconds,
            "idle_seconds": c.idle_seconds,
            "prices_include_tax": c.prices_include_tax,
        },
        "net": share["net"],
        "tax": share["tax"],
        "total": c.total,
        "sponsor_amount": c.sponsor_amount,
        "amount_due": c.driver_amount,
    }


def driver_tax_share(
    net: int, tax: int, tax_basis_points: int, driver_amount: int, sponsored: bool
) -> dict[str, int]:
    """The tax the driver's receipt states: on what the driver pays.

    A sponsor's share of a session is billed to the sponsor, with its tax, on the sponsor's
    monthly invoice; stating the whole session's tax on the driver's receipt too would declare
    the sponsored part's tax twice. Unsponsored, this is the session's own net and tax.
    """
    if not sponsored:
        return {"tax_basis_points": tax_basis_points, "net": net, "tax": tax, "gross": net + tax}
    line = invoices.InvoiceLine(
        description="amount due", amount=driver_amount, tax_basis_points=tax_basis_points
    )
    return invoices.tax_breakdown([line], prices_include_tax=True)[0]


def _buyer(c: Row[Any]) -> dict[str, Any]:
    if c.user_id is None:
        # A card without an account: the receipt names no person; the card's last digits let
        # a fleet manager match it to the card they handed out.
        tag = c.id_tag or ""
        return {"kind": "anonymous_card", "name": ANONYMOUS_CARD, "email": None, "id_tag": f"…{tag[-4:]}"}
    return {
        "kind": "driver",
        "name": c.user_name or c.user_email or "Driver",
        "email": c.user_email,
        "id_tag": None,
    }


def _line(li: dict[str, Any], tax_basis_points: int) -> dict[str, Any]:
    item = pricing.LineItem(
        Component(li["component"]),
        li["label"],
        li["unit"],
        li["amount"],
        li["base_quantity"],
        li["scaled_price"],
    )
    unit_price = item.unit_price
    return {
        "component": li["component"],
        "description": item.label,
        "quantity": str(item.quantity),
        "unit": item.unit,
        "unit_price": None if unit_price is None else str(unit_price.normalize()),
        "amount": item.amount,
        "tax_basis_points": tax_basis_points,
    }


async def pending_charge_ids(
    conn: AsyncConnection, *, limit: int, organization_id: int | None = None
) -> list[int]:
    """Charges that should have a receipt and have none, oldest first."""
    stmt = (
        select(CHARGE.c.id)
        .select_from(CHARGE.outerjoin(DOCUMENT, DOCUMENT.c.session_charge_id == CHARGE.c.id))
        .where(DOCUMENT.c.id.is_(None), CHARGE.c.driver_amount > 0, CHARGE.c.organization_id.is_not(None))
        .order_by(CHARGE.c.id)
        .limit(limit)
    )
    if organization_id is not None:
        stmt = stmt.where(CHARGE.c.organization_id == organization_id)
    found: Sequence[int] = (await conn.execute(stmt)).scalars().all()
    return [int(i) for i in found]


async def issue_pending(
    engine: AsyncEngine, *, batch_size: int = CATCH_UP_BATCH, organization_id: int | None = None
) -> int:
    """Catch-up job: receipts for every charged session still missing one, a batch per
    transaction. Returns how many were issued."""
    issued = 0
    previous: list[int] = []
    while True:
        async with engine.begin() as conn:
            ids = await pending_charge_ids(conn, limit=batch_size, organization_id=organization_id)
            if not ids or ids == previous:
                break  # done, or the same sessions again that could not be issued: never spin
            issued += len(await issue_receipts(conn, ids))
        # None issued can also mean the worker's handler issued this batch meanwhile: go on.
        previous = ids
    if issued:
        log.info("issued %d pending receipts", issued)
    return issued
