"""What sponsors are told and billed: a sponsorship's month day by day, and one statement per
sponsor and month.

Months and days are UTC. A session counts on the day its claim was settled — when it ended and
was charged — so a month's figures are final once the month is over, and the report and the
statement of a month always agree.

`issue_sponsor_statements` writes each sponsor's `sponsor_statement` once (unique per sponsor
and month), and only for a month that is over: a statement is never rewritten, so one issued
mid-month would freeze part of the month and its invoice would bill only that part. The daily
job then invoices every statement of an ended month that has no invoice yet, in the same
transaction (api.sponsorships.invoicing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.invoicing.months import month_bounds, previous_month
from api.sponsorships import invoicing
from api.sponsorships import repository as repo
from schema.db import insert_on_conflict
from schema.errors import InvalidInput
from schema.timeutil import utcnow


@dataclass
class DayFigures:
    day: date
    sessions: int = 0
    energy_wh: int = 0
    amount: int = 0
    impressions: int = 0


@dataclass
class MonthFigures:
    month: str
    sessions: int = 0
    energy_wh: int = 0
    amount: int = 0
    impressions: int = 0
    days: list[DayFigures] = field(default_factory=list)


async def month_figures(conn: AsyncConnection, sponsorship_ids: list[int], month: str) -> MonthFigures:
    """Settled sessions, their kWh and sponsored amount, and impressions, per day with any."""
    since, until = month_bounds(month)
    days: dict[date, DayFigures] = {}
    for r in await repo.settled_between(conn, sponsorship_ids, since, until):
        d = days.setdefault(
            r.settled_at.astimezone(UTC).date(), DayFigures(r.settled_at.astimezone(UTC).date())
        )
        d.sessions += 1
        d.energy_wh += r.energy_wh
        d.amount += r.final_amount or 0
    last_day = (until - timedelta(days=1)).date()
    for r in await repo.impressions_per_day(conn, sponsorship_ids, since.date(), last_day):
        d = days.setdefault(r.day, DayFigures(r.day))
        d.impressions += int(r._mapping["count"])  # Row.count is tuple.count
    ordered = [days[k] for k in sorted(days)]
    return MonthFigures(
        month=month,
        sessions=sum(d.sessions for d in ordered),
        energy_wh=sum(d.energy_wh for d in ordered),
        amount=sum(d.amount for d in ordered),
        impressions=sum(d.impressions for d in ordered),
        days=ordered,
    )


async def issue_sponsor_statements(
    conn: AsyncConnection, month: str, *, organization_id: int | None = None, now: datetime | None = None
) -> list[Any]:
    """Write the month's statement of every sponsor (of one organisation, or all) whose
    sponsorships had sessions or impressions that month, unless it exists already, and return
    the month's statements. Idempotent: a
    statement, once issued, is never rewritten (it may already be invoiced), hence months that
    are not over yet (UTC) are refused; `month_figures` shows them live."""
    if month_bounds(month)[1] > (now or utcnow()):
        raise InvalidInput(f"{month} is not over yet: statements are issued once a month has ended (UTC)")
    stmt = select(repo.SPONSORSHIP.c.id, repo.SPONSORSHIP.c.sponsor_id, repo.SPONSORSHIP.c.message).order_by(
        repo.SPONSORSHIP.c.id
    )
    if organization_id is not None:
        stmt = stmt.where(repo.SPONSORSHIP.c.organization_id == organization_id)
    per_sponsor: dict[int, list[Any]] = {}
    for r in await conn.execute(stmt):
        per_sponsor.setdefault(r.sponsor_id, []).append(r)
    sponsors = {
        r.id: r
        for r in await conn.execute(select(repo.SPONSOR).where(repo.SPONSOR.c.id.in_(list(per_sponsor))))
    }
    currencies = {
        r.id: r.currency
        for r in await conn.execute(
            select(repo.SPONSORSHIP.c.id, repo.SPONSORSHIP.c.currency).where(
                repo.SPONSORSHIP.c.sponsor_id.in_(list(per_sponsor))
            )
        )
    }
    for sponsor_id, sponsorships in per_sponsor.items():
        lines = []
        for sp in sponsorships:
            f = await month_figures(conn, [sp.id], month)
            lines.append(
                {
                    "sponsorship_id": sp.id,
                    "message": sp.message,
                    "sessions": f.sessions,
                    "energy_wh": f.energy_wh,
                    "amount": f.amount,
                    "impressions": f.impressions,
                }
            )
        if not any(li["sessions"] or li["impressions"] for li in lines):
            continue  # nothing happened: no statement to send
        sponsor = sponsors[sponsor_id]
        await conn.execute(
            insert_on_conflict(conn, repo.STATEMENT)
            .values(
                organization_id=sponsor.organization_id,
                sponsor_id=sponsor_id,
                month=month,
                currency=currencies[sponsorships[0].id],
                sessions=sum(li["sessions"] for li in lines),
                energy_wh=sum(li["energy_wh"] for li in lines),
                amount=sum(li["amount"] for li in lines),
                impressions=sum(li["impressions"] for li in lines),
                lines=lines,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["sponsor_id", "month"])
        )
    found = select(repo.STATEMENT).where(repo.STATEMENT.c.month == month)
    if organization_id is not None:
        found = found.where(repo.STATEMENT.c.organization_id == organization_id)
    return list((await conn.execute(found.order_by(repo.STATEMENT.c.id))).all())


# Daily: the previous month's statements appear on the 1st (UTC) and a missed day catches up.
STATEMENTS_INTERVAL_S = 86_400.0


async def issue_last_months_statements(engine: AsyncEngine, *, now: datetime | None = None) -> int:
    """Scheduled job: every sponsor's statement of the month that ended last, and the invoice of
    every statement of an ended month still without one; how many statements last month has."""
    now = now or utcnow()
    async with engine.begin() as conn:
        statements = await issue_sponsor_statements(conn, previous_month(now), now=now)
        await invoicing.invoice_statements(conn, now=now)
        return len(statements)
