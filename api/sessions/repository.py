"""Every query about charging sessions, scoped to the caller.

Sessions are personal data: anonymous callers get an empty statement, a driver sees the
sessions started with their own tokens, an operator (or API key) with `sessions:read` sees
those at their organisations' stations, a platform admin sees all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import false, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.auth.principal import Principal
from api.auth.roles import Permission
from api.reads import count_rows, read_rows
from schema.models import ChargingStation, IdToken, MeterSample, Transaction

# A transaction's samples are returned at most this many per request; a long DC session at
# 10-second sampling has thousands, and the app draws a curve, not a table.
MAX_SAMPLES_PER_REQUEST = 1_000


def readable_transactions(principal: Principal) -> SelectOfScalar[Transaction]:
    stmt = select(Transaction)
    orgs = principal.organizations_with(Permission.SESSIONS_READ)
    if orgs is None:
        return stmt
    conditions = []
    if principal.is_user:
        conditions.append(col(Transaction.user_id) == principal.user_id)
    if orgs:
        conditions.append(
            col(Transaction.station_id).in_(
                select(ChargingStation.id).where(col(ChargingStation.organization_id).in_(orgs))
            )
        )
    if not conditions:
        return stmt.where(false())
    return stmt.where(or_(*conditions))


@dataclass(frozen=True, slots=True)
class TransactionFilter:
    station_id: int | None = None
    state: str | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None


async def page_transactions(
    session: AsyncSession,
    principal: Principal,
    f: TransactionFilter,
    *,
    first: int,
    before_id: int | None,
    count: bool = True,
) -> tuple[list[Transaction], bool, int | None]:
    """Newest first, keyset on id."""
    stmt = readable_transactions(principal)
    if f.station_id is not None:
        stmt = stmt.where(col(Transaction.station_id) == f.station_id)
    if f.state is not None:
        stmt = stmt.where(col(Transaction.state) == f.state)
    if f.started_after is not None:
        stmt = stmt.where(col(Transaction.started_at) >= f.started_after)
    if f.started_before is not None:
        stmt = stmt.where(col(Transaction.started_at) < f.started_before)
    total = await count_rows(session, stmt) if count else None
    if before_id is not None:
        stmt = stmt.where(col(Transaction.id) < before_id)
    rows = await read_rows(session, stmt.order_by(col(Transaction.id).desc()).limit(first + 1))
    return rows[:first], len(rows) > first, total


async def transactions_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[int]
) -> dict[int, Transaction]:
    rows = await read_rows(session, readable_transactions(principal).where(col(Transaction.id).in_(ids)))
    return {r.id: r for r in rows if r.id is not None}


async def samples_for_transaction(
    session: AsyncSession,
    principal: Principal,
    transaction_id: int,
    *,
    limit: int,
    measurand: str | None,
) -> list[MeterSample]:
    readable = readable_transactions(principal).with_only_columns(col(Transaction.id))
    stmt = select(MeterSample).where(
        col(MeterSample.transaction_id) == transaction_id,
        col(MeterSample.transaction_id).in_(readable),
    )
    if measurand is not None:
        stmt = stmt.where(col(MeterSample.measurand) == measurand)
    stmt = stmt.order_by(
        col(MeterSample.sampled_at), col(MeterSample.measurand), col(MeterSample.phase)
    ).limit(min(limit, MAX_SAMPLES_PER_REQUEST))
    return await read_rows(session, stmt)


# OCPP 2.0.1 IdTokenEnumType "Central": a token the CSMS issued, used by the app for remote start.
APP_TOKEN_TYPE = "Central"


async def driver_start_tag(session: AsyncSession, user_id: int, id_tag: str | None) -> str | None:
    """The driver's own accepted token to start with: `id_tag` if it is theirs, else their
    app token; None if they have no such token."""
    stmt = select(IdToken.token).where(col(IdToken.user_id) == user_id, col(IdToken.status) == "Accepted")
    if id_tag:
        stmt = stmt.where(col(IdToken.token) == id_tag)
    else:
        stmt = stmt.where(col(IdToken.token_type) == APP_TOKEN_TYPE)
    return (await session.exec(stmt.order_by(col(IdToken.id)).limit(1))).first()
