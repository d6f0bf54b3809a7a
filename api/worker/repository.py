"""Every query of the worker: the processed-event ledger, session summaries, stuck sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, case, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

from schema import outbox
from schema.db import insert_on_conflict
from schema.enums import TransactionState
from schema.events import SessionFlagged
from schema.models import ChargingStation, MeterSample, Transaction
from schema.outbox import OutboxMessage
from schema.work_models import ProcessedEvent, SessionSummary, StuckSession

_TABLES = SQLModel.metadata.tables
PROCESSED = _TABLES[ProcessedEvent.__tablename__]
SUMMARY = _TABLES[SessionSummary.__tablename__]
STUCK = _TABLES[StuckSession.__tablename__]
TRANSACTION = _TABLES[Transaction.__tablename__]
STATION = _TABLES[ChargingStation.__tablename__]
SAMPLE = _TABLES[MeterSample.__tablename__]

POWER_IMPORT = "Power.Active.Import"
_KILO_UNITS = ("kW",)


async def _insert_ignoring_duplicates(
    conn: AsyncConnection, table: Table, rows: list[dict[str, Any]], unique: list[str]
) -> int:
    """INSERT … ON CONFLICT DO NOTHING on both backends; returns how many rows went in.

    On PostgreSQL a concurrent insert of the same key waits for the other transaction and then
    yields, so two replicas racing on one key serialise instead of failing."""
    if not rows:
        return 0
    stmt = insert_on_conflict(conn, table).on_conflict_do_nothing(index_elements=unique)
    if len(rows) == 1:
        result = await conn.execute(stmt.values(**rows[0]))
        return int(result.rowcount or 0)
    inserted = 0
    for row in rows:
        inserted += int((await conn.execute(stmt.values(**row))).rowcount or 0)
    return inserted


# -- processed-event ledger -------------------------------------------------------------------


async def record_processed(
    conn: AsyncConnection, consumer: str, message: OutboxMessage, at: datetime
) -> bool:
    """Claim `message` for `consumer` in the caller's transaction; False if already processed."""
    row = {"consumer": consumer, "event_id": message.id, "event_type": message.event_type, "processed_at": at}
    return await _insert_ignoring_duplicates(conn, PROCESSED, [row], ["consumer", "event_id"]) == 1


async def purge_processed(conn: AsyncConnection, before: datetime) -> int:
    result = await conn.execute(delete(PROCESSED).where(PROCESSED.c.processed_at < before))
    return int(result.rowcount or 0)


# -- session summaries ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampleStats:
    count: int
    max_power_w: int | None


async def transaction_row(conn: AsyncConnection, transaction_id: int) -> dict[str, Any] | None:
    row = (
        (await conn.execute(select(TRANSACTION).where(TRANSACTION.c.id == transaction_id))).mappings().first()
    )
    return dict(row) if row is not None else None


async def sample_stats(conn: AsyncConnection, transaction_id: int) -> SampleStats:
    """Every stored sampled value of the session, and its highest total import power in W."""
    power_w = case(
        (SAMPLE.c.unit.in_(_KILO_UNITS), SAMPLE.c.value * 1000.0),
        else_=SAMPLE.c.value,
    )
    # No phase (stored as an empty string) is the total over all phases.
    is_total_power = and_(SAMPLE.c.measurand == POWER_IMPORT, SAMPLE.c.phase == "")
    row = (
        await conn.execute(
            select(func.count(), func.max(case((is_total_power, power_w)))).where(
                SAMPLE.c.transaction_id == transaction_id
            )
        )
    ).one()
    return SampleStats(int(row[0]), round(row[1]) if row[1] is not None else None)


async def insert_summary(conn: AsyncConnection, row: dict[str, Any]) -> bool:
    return await _insert_ignoring_duplicates(conn, SUMMARY, [row], ["transaction_id"]) == 1


# -- stuck sessions ---------------------------------------------------------------------------

STATION_OFFLINE = "station_offline"
NO_METER_VALUES = "no_meter_values"


async def stuck_candidates(
    conn: AsyncConnection, *, offline_before: datetime, silent_before: datetime
) -> list[tuple[int, str]]:
    """Active, not yet flagged sessions whose station went offline before `offline_before` or
    whose last meter value (or start, when none came) is older than `silent_before`."""
    offline = and_(
        STATION.c.online.is_(False),
        or_(STATION.c.last_seen_at.is_(None), STATION.c.last_seen_at < offline_before),
    )
    silent = or_(
        and_(TRANSACTION.c.last_sample_at.is_(None), TRANSACTION.c.started_at < silent_before),
        TRANSACTION.c.last_sample_at < silent_before,
    )
    already = exists().where(STUCK.c.transaction_id == TRANSACTION.c.id)
    rows = await conn.execute(
        select(TRANSACTION.c.id, offline.label("offline"))
        .select_from(TRANSACTION.join(STATION, STATION.c.id == TRANSACTION.c.station_id))
        .where(TRANSACTION.c.state == TransactionState.ACTIVE.value, ~already, or_(offline, silent))
        .order_by(TRANSACTION.c.id)
    )
    return [(int(r.id), STATION_OFFLINE if r.offline else NO_METER_VALUES) for r in rows]


async def flag_stuck(
    conn: AsyncConnection, flags: list[tuple[int, str]], at: datetime
) -> list[SessionFlagged]:
    """Flag each session not flagged yet and record a durable `SessionFlagged` for it in the
    same transaction; returns those events (a session already flagged yields none)."""
    fresh: dict[int, str] = {}
    for tx, reason in flags:
        row = {"transaction_id": tx, "reason": reason, "detected_at": at, "resolved_at": None}
        if await _insert_ignoring_duplicates(conn, STUCK, [row], ["transaction_id"]):
            fresh[tx] = reason
    if not fresh:
        return []
    rows = await conn.execute(
        select(
            TRANSACTION.c.id,
            TRANSACTION.c.connector_id,
            TRANSACTION.c.user_id,
            TRANSACTION.c.station_id,
            STATION.c.charge_point_id,
            STATION.c.location_id,
        )
        .select_from(TRANSACTION.join(STATION, STATION.c.id == TRANSACTION.c.station_id))
        .where(TRANSACTION.c.id.in_(list(fresh)))
        .order_by(TRANSACTION.c.id)
    )
    events = [
        SessionFlagged(
            station_id=int(r.station_id),
            charge_point_id=r.charge_point_id,
            location_id=r.location_id,
            at=at,
            transaction_id=int(r.id),
            connector_id=int(r.connector_id),
            user_id=r.user_id,
            reason=fresh[int(r.id)],
        )
        for r in rows
    ]
    await outbox.append(conn, events, at)
    return events


async def resolve_stuck(conn: AsyncConnection, transaction_id: int, at: datetime) -> int:
    result = await conn.execute(
        update(STUCK)
        .where(STUCK.c.transaction_id == transaction_id, STUCK.c.resolved_at.is_(None))
        .values(resolved_at=at)
    )
    return int(result.rowcount or 0)


async def resolve_ended_stuck(conn: AsyncConnection, at: datetime) -> int:
    """Flags of sessions that are no longer Active, whatever ended them."""
    ended = select(TRANSACTION.c.id).where(TRANSACTION.c.state != TransactionState.ACTIVE.value)
    result = await conn.execute(
        update(STUCK)
        .where(STUCK.c.resolved_at.is_(None), STUCK.c.transaction_id.in_(ended))
        .values(resolved_at=at)
    )
    return int(result.rowcount or 0)
