"""Sponsorships at work: a session claims one when it starts, settles it when it is charged,
and apps show the sponsor's message (each showing is an impression).

Guarantees:
- Never overspent: a claim reserves its share under the sponsorship's row lock (PostgreSQL
  SELECT … FOR UPDATE; on SQLite the worker's transaction already holds the write lock), and
  the UPDATE itself refuses to take `spent + reserved` past the budget. Settling moves at most
  the reserved amount into `spent`.
- Exactly once: one claim per session (unique), settled or released once (its state), in the
  same transaction as the event that causes it, so a redelivered event changes nothing.
- Sessions started while a sponsorship was active keep their claim if it ends or runs out
  meanwhile: the driver was shown the sponsor's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from api.billing import pricing
from api.billing import repository as billing_repo
from api.billing import service as billing
from api.sponsorships import repository as repo
from api.sponsorships import rules
from schema.events import Event, TransactionStarted
from schema.models import Transaction
from schema.timeutil import utcnow

TRANSACTION = Transaction.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Sponsored:
    """What the sponsor covers of one session's bill."""

    sponsorship_id: int
    sponsor_name: str
    amount: int

    def line(self) -> dict[str, Any]:
        """The bill line the driver sees (a negative amount, in api.billing.charges' format)."""
        return {
            "component": "sponsored",
            "label": f"Sponsored by {self.sponsor_name}",
            "unit": "session",
            "amount": -self.amount,
            "base_quantity": 1,
            "scaled_price": None,
        }


async def claim_on_start(conn: AsyncConnection, event: Event) -> None:
    """Worker handler of TransactionStarted, registered after the tariff is frozen: the session
    claims the first sponsorship (oldest first) that applies where and when it started and
    still has budget. Idempotent."""
    assert isinstance(event, TransactionStarted)
    tx_id = event.transaction_id
    if await repo.claim_of(conn, tx_id) is not None or await repo.charged(conn, tx_id):
        return
    ctx = (await billing_repo.station_context(conn, [event.station_id])).get(event.station_id)
    if ctx is None or ctx.organization_id is None:
        return
    # as in tariffs: a station clock ahead of ours must not pick a later window
    at = min(event.started_at, event.at)
    time_zone = ctx.time_zone or "UTC"
    tariff: Any = None
    for candidate in await repo.active_of(conn, ctx.organization_id):
        if not rules.applies(
            candidate, station_id=event.station_id, location_id=ctx.location_id, at=at, time_zone=time_zone
        ):
            continue
        row = await repo.locked(conn, candidate.id)
        if row is None or row.state != "active":
            continue
        if row.cap_wh is not None:
            if tariff is None:
                found = await billing.of_session(conn, tx_id)
                tariff = found.tariff if found is not None else False
            wanted = rules.energy_cap_reserve(row.cap_wh, tariff or None)
        else:
            wanted = row.cap_amount or 0
        amount = min(wanted, row.budget - row.spent - row.reserved)
        if amount <= 0 or not await repo.reserve(conn, row.id, amount):
            await repo.restate(conn, row.id)
            continue
        await conn.execute(
            insert(repo.CLAIM).values(
                sponsorship_id=row.id,
                transaction_id=tx_id,
                reserved_amount=amount,
                state="reserved",
                energy_wh=0,
                created_at=utcnow(),
            )
        )
        await repo.restate(conn, row.id)
        return


async def settle(conn: AsyncConnection, transaction_id: int, price: pricing.Price | None) -> Sponsored | None:
    """Called by the charge step (api.billing.charges) with the session's bill, in its
    transaction: the sponsor's share is moved from reserved to spent. A session with no price
    (no tariff) or a zero share releases its claim. Repeated calls return the settled share."""
    claim = await repo.claim_of(conn, transaction_id, lock=True)
    if claim is None or claim.state == "released":
        return None
    if claim.state == "settled":
        return Sponsored(claim.sponsorship_id, claim.sponsor_name, claim.final_amount or 0)
    amount = 0
    if price is not None:
        amount = rules.cover(
            total=price.total, energy_wh=price.energy_wh, reserved=claim.reserved_amount, cap_wh=claim.cap_wh
        )
    s = repo.SPONSORSHIP.c
    await conn.execute(
        update(repo.SPONSORSHIP)
        .where(s.id == claim.sponsorship_id)
        .values(spent=s.spent + amount, reserved=s.reserved - claim.reserved_amount)
    )
    await conn.execute(
        update(repo.CLAIM)
        .where(repo.CLAIM.c.id == claim.id)
        .values(
            state="settled" if amount > 0 else "released",
            final_amount=amount,
            energy_wh=0 if price is None else price.energy_wh,
            settled_at=utcnow(),
        )
    )
    await repo.restate(conn, claim.sponsorship_id)
    return Sponsored(claim.sponsorship_id, claim.sponsor_name, amount) if amount > 0 else None


@dataclass(frozen=True, slots=True)
class Notice:
    """What a driver app shows at a sponsored connector."""

    sponsorship_id: int
    message: str
    sponsor_name: str
    cap_description: str


async def notice(
    conn: AsyncConnection, station_id: int, *, at: datetime | None = None, count: bool = True
) -> Notice | None:
    """The sponsorship a session starting now at this station would claim, if any; showing it
    counts one impression for the (sponsorship, UTC day)."""
    at = at or utcnow()
    ctx = (await billing_repo.station_context(conn, [station_id])).get(station_id)
    if ctx is None or ctx.organization_id is None:
        return None
    for row in await repo.active_of(conn, ctx.organization_id):
        if rules.applies(
            row, station_id=station_id, location_id=ctx.location_id, at=at, time_zone=ctx.time_zone or "UTC"
        ):
            if count:
                await repo.count_impression(conn, row.id, at.date())
            return Notice(
                sponsorship_id=row.id,
                message=row.message,
                sponsor_name=row.sponsor_name,
                cap_description=rules.cap_description(
                    cap_amount=row.cap_amount, cap_wh=row.cap_wh, currency=row.currency
                ),
            )
    return None


async def claim_row(conn: AsyncConnection, transaction_id: int) -> Any | None:
    """The session's claim, for reads (tests, receipts)."""
    return (
        await conn.execute(select(repo.CLAIM).where(repo.CLAIM.c.transaction_id == transaction_id))
    ).first()
