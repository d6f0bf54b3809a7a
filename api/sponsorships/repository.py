"""Every query of sponsored charging. Operator reads are scoped by who asks (billing:read in
the sponsorship's organisation); the worker's reads are not (it acts for the system)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Row, String, cast, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.auth.principal import Principal
from api.auth.roles import Permission
from api.orgs.repository import Page, Stmt, by_ids, page
from schema.charge_models import SessionCharge
from schema.db import insert_on_conflict
from schema.document_models import BillingDocument
from schema.models import ChargingStation, Location
from schema.sponsorship_models import (
    Sponsor,
    Sponsorship,
    SponsorshipClaim,
    SponsorshipImpression,
    SponsorStatement,
)

SPONSOR = Sponsor.__table__  # type: ignore[attr-defined]
SPONSORSHIP = Sponsorship.__table__  # type: ignore[attr-defined]
CLAIM = SponsorshipClaim.__table__  # type: ignore[attr-defined]
IMPRESSION = SponsorshipImpression.__table__  # type: ignore[attr-defined]
STATEMENT = SponsorStatement.__table__  # type: ignore[attr-defined]
CHARGE = SessionCharge.__table__  # type: ignore[attr-defined]
DOCUMENT = BillingDocument.__table__  # type: ignore[attr-defined]
STATION = ChargingStation.__table__  # type: ignore[attr-defined]
LOCATION = Location.__table__  # type: ignore[attr-defined]


# -- operator reads, scoped --------------------------------------------------------------------


def _scoped(stmt: Stmt, org_col: Any, principal: Principal, permission: Permission) -> Stmt:
    orgs = principal.organizations_with(permission)
    if orgs is None:
        return stmt
    return stmt.where(org_col.in_(orgs)) if orgs else stmt.where(False)  # type: ignore[arg-type]


def readable_sponsors(principal: Principal, permission: Permission = Permission.BILLING_READ) -> Stmt:
    return _scoped(select(Sponsor), col(Sponsor.organization_id), principal, permission)


def readable_sponsorships(principal: Principal, permission: Permission = Permission.BILLING_READ) -> Stmt:
    return _scoped(select(Sponsorship), col(Sponsorship.organization_id), principal, permission)


def readable_statements(principal: Principal) -> Stmt:
    return _scoped(
        select(SponsorStatement), col(SponsorStatement.organization_id), principal, Permission.BILLING_READ
    )


async def sponsors_by_ids(s: AsyncSession, principal: Principal, ids: Sequence[int]) -> dict[int, Row[Any]]:
    return await by_ids(s, readable_sponsors(principal), col(Sponsor.id), ids)


async def sponsorships_by_ids(
    s: AsyncSession, principal: Principal, ids: Sequence[int]
) -> dict[int, Row[Any]]:
    return await by_ids(s, readable_sponsorships(principal), col(Sponsorship.id), ids)


async def page_sponsors(
    s: AsyncSession, principal: Principal, *, first: int, after: int | None, count: bool
) -> Page:
    return await page(
        s,
        readable_sponsors(principal),
        col(Sponsor.id),
        first=first,
        after=after,
        newest_first=True,
        count=count,
    )


async def page_sponsorships(
    s: AsyncSession,
    principal: Principal,
    *,
    sponsor_id: int | None,
    include_ended: bool,
    first: int,
    after: int | None,
    count: bool,
) -> Page:
    stmt = readable_sponsorships(principal)
    if sponsor_id is not None:
        stmt = stmt.where(col(Sponsorship.sponsor_id) == sponsor_id)
    if not include_ended:
        stmt = stmt.where(col(Sponsorship.state) != "ended")
    return await page(s, stmt, col(Sponsorship.id), first=first, after=after, newest_first=True, count=count)


async def page_statements(
    s: AsyncSession, principal: Principal, *, month: str | None, first: int, after: int | None, count: bool
) -> Page:
    stmt = readable_statements(principal)
    if month is not None:
        stmt = stmt.where(col(SponsorStatement.month) == month)
    return await page(
        s, stmt, col(SponsorStatement.id), first=first, after=after, newest_first=True, count=count
    )


@dataclass(frozen=True, slots=True)
class Totals:
    sessions: int = 0
    energy_wh: int = 0
    amount: int = 0
    impressions: int = 0


async def totals(conn: AsyncConnection, sponsorship_ids: Iterable[int]) -> dict[int, Totals]:
    """Per sponsorship: settled sessions, their kWh and sponsored amount, and impressions."""
    ids = list(sponsorship_ids)
    if not ids:
        return {}
    settled = await conn.execute(
        select(
            CLAIM.c.sponsorship_id,
            func.count(),
            func.coalesce(func.sum(CLAIM.c.energy_wh), 0),
            func.coalesce(func.sum(CLAIM.c.final_amount), 0),
        )
        .where(CLAIM.c.sponsorship_id.in_(ids), CLAIM.c.state == "settled")
        .group_by(CLAIM.c.sponsorship_id)
    )
    seen = await conn.execute(
        select(IMPRESSION.c.sponsorship_id, func.sum(IMPRESSION.c.count))
        .where(IMPRESSION.c.sponsorship_id.in_(ids))
        .group_by(IMPRESSION.c.sponsorship_id)
    )
    shown = {int(r[0]): int(r[1] or 0) for r in seen}
    found = {i: Totals(impressions=shown.get(i, 0)) for i in ids}
    for r in settled:
        found[int(r[0])] = Totals(int(r[1]), int(r[2]), int(r[3]), shown.get(int(r[0]), 0))
    return found


# -- the worker's reads and writes --------------------------------------------------------------


async def active_of(conn: AsyncConnection, organization_id: int) -> list[Row[Any]]:
    """The organisation's active sponsorships with budget left, oldest first (the oldest
    campaign is served first)."""
    s = SPONSORSHIP.c
    rows = await conn.execute(
        select(SPONSORSHIP, SPONSOR.c.name.label("sponsor_name"))
        .join(SPONSOR, SPONSOR.c.id == s.sponsor_id)
        .where(s.organization_id == organization_id, s.state == "active", s.spent + s.reserved < s.budget)
        .order_by(s.id)
    )
    return list(rows.all())


async def locked(conn: AsyncConnection, sponsorship_id: int) -> Row[Any] | None:
    """The sponsorship row, locked until commit on PostgreSQL (SQLite: the worker's
    transaction already holds the database's write lock)."""
    stmt = select(SPONSORSHIP).where(SPONSORSHIP.c.id == sponsorship_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return (await conn.execute(stmt)).first()


async def reserve(conn: AsyncConnection, sponsorship_id: int, amount: int) -> bool:
    """Hold `amount` of the budget; refuses (False) rather than ever exceed it."""
    s = SPONSORSHIP.c
    done = await conn.execute(
        update(SPONSORSHIP)
        .where(s.id == sponsorship_id, s.state == "active", s.spent + s.reserved + amount <= s.budget)
        .values(reserved=s.reserved + amount)
    )
    return bool(done.rowcount)


async def restate(conn: AsyncConnection, sponsorship_id: int) -> None:
    """Active while budget is left, exhausted when it is all spent or held; ended stays ended."""
    s = SPONSORSHIP.c
    await conn.execute(
        update(SPONSORSHIP)
        .where(s.id == sponsorship_id, s.state != "ended", s.spent + s.reserved >= s.budget)
        .values(state="exhausted")
    )
    await conn.execute(
        update(SPONSORSHIP)
        .where(s.id == sponsorship_id, s.state == "exhausted", s.spent + s.reserved < s.budget)
        .values(state="active")
    )


async def claim_of(conn: AsyncConnection, transaction_id: int, *, lock: bool = False) -> Row[Any] | None:
    stmt = (
        select(CLAIM, SPONSOR.c.name.label("sponsor_name"), SPONSORSHIP.c.cap_wh)
        .join(SPONSORSHIP, SPONSORSHIP.c.id == CLAIM.c.sponsorship_id)
        .join(SPONSOR, SPONSOR.c.id == SPONSORSHIP.c.sponsor_id)
        .where(CLAIM.c.transaction_id == transaction_id)
    )
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=CLAIM)
    return (await conn.execute(stmt)).first()


async def charged(conn: AsyncConnection, transaction_id: int) -> bool:
    found = await conn.execute(select(CHARGE.c.id).where(CHARGE.c.transaction_id == transaction_id))
    return found.first() is not None


async def count_impression(conn: AsyncConnection, sponsorship_id: int, day: date) -> None:
    """One upsert: count + 1 on the (sponsorship, day) row."""
    stmt = insert_on_conflict(conn, IMPRESSION).values(sponsorship_id=sponsorship_id, day=day, count=1)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["sponsorship_id", "day"], set_={"count": IMPRESSION.c.count + 1}
        )
    )


# -- reports ------------------------------------------------------------------------------------


async def settled_between(
    conn: AsyncConnection, sponsorship_ids: Sequence[int], since: datetime, until: datetime
) -> list[Row[Any]]:
    """Claims settled in [since, until): a session counts when it was charged (ended)."""
    rows = await conn.execute(
        select(CLAIM.c.sponsorship_id, CLAIM.c.energy_wh, CLAIM.c.final_amount, CLAIM.c.settled_at).where(
            CLAIM.c.sponsorship_id.in_(list(sponsorship_ids)),
            CLAIM.c.state == "settled",
            CLAIM.c.settled_at >= since,
            CLAIM.c.settled_at < until,
        )
    )
    return list(rows.all())


async def impressions_per_day(
    conn: AsyncConnection, sponsorship_ids: Sequence[int], first: date, last: date
) -> list[Row[Any]]:
    rows = await conn.execute(
        select(IMPRESSION.c.sponsorship_id, IMPRESSION.c.day, IMPRESSION.c.count).where(
            IMPRESSION.c.sponsorship_id.in_(list(sponsorship_ids)),
            IMPRESSION.c.day >= first,
            IMPRESSION.c.day <= last,
        )
    )
    return list(rows.all())


async def funded_by_location_and_rate(
    conn: AsyncConnection, sponsor_id: int, since: datetime, until: datetime
) -> list[Row[Any]]:
    """What the sponsor's claims settled in [since, until) funded, per location and per tax
    rate of the sessions' frozen bills: location_id, location_name, tax_basis_points,
    sessions, energy_wh, amount. Claims whose session has no bill are not in it."""
    location_id = func.coalesce(LOCATION.c.id, 0)
    location_name = func.coalesce(LOCATION.c.name, "")
    rows = await conn.execute(
        select(
            location_id.label("location_id"),
            location_name.label("location_name"),
            CHARGE.c.tax_basis_points,
            func.count().label("sessions"),
            func.sum(CLAIM.c.energy_wh).label("energy_wh"),
            func.sum(CLAIM.c.final_amount).label("amount"),
        )
        .select_from(
            CLAIM.join(SPONSORSHIP, SPONSORSHIP.c.id == CLAIM.c.sponsorship_id)
            .join(CHARGE, CHARGE.c.transaction_id == CLAIM.c.transaction_id)
            .join(STATION, STATION.c.id == CHARGE.c.station_id)
            .outerjoin(LOCATION, LOCATION.c.id == STATION.c.location_id)
        )
        .where(
            SPONSORSHIP.c.sponsor_id == sponsor_id,
            CLAIM.c.state == "settled",
            CLAIM.c.settled_at >= since,
            CLAIM.c.settled_at < until,
        )
        .group_by(location_id, location_name, CHARGE.c.tax_basis_points)
        .order_by(location_name, location_id, CHARGE.c.tax_basis_points)
    )
    return list(rows.all())


STATEMENT_KEY_PREFIX = "sponsor_statement:"


def statement_key(statement_id: int) -> str:
    """The `source_key` of a statement's invoice."""
    return f"{STATEMENT_KEY_PREFIX}{statement_id}"


async def statements_to_invoice(
    conn: AsyncConnection, *, before_month: str, organization_id: int | None, limit: int
) -> list[Row[Any]]:
    """Statements of months before `before_month` that bill something and have no invoice
    yet, with their sponsor's billing details, oldest first."""
    key = literal(STATEMENT_KEY_PREFIX, String) + cast(STATEMENT.c.id, String)
    stmt = (
        select(
            STATEMENT,
            SPONSOR.c.name.label("sponsor_name"),
            SPONSOR.c.contact_email,
            SPONSOR.c.billing_address,
            SPONSOR.c.vat_id,
        )
        .join(SPONSOR, SPONSOR.c.id == STATEMENT.c.sponsor_id)
        .outerjoin(DOCUMENT, DOCUMENT.c.source_key == key)
        .where(STATEMENT.c.month < before_month, STATEMENT.c.amount > 0, DOCUMENT.c.id.is_(None))
        .order_by(STATEMENT.c.id)
        .limit(limit)
    )
    if organization_id is not None:
        stmt = stmt.where(STATEMENT.c.organization_id == organization_id)
    return list((await conn.execute(stmt)).all())
