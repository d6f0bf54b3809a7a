"""Failed sessions: a connector where n sessions in a row failed is "not charging", even if it
reports Available — the fault drivers find before the station admits one.

A session failed when it delivered less than `MIN_ENERGY_WH` or stopped for a reason that
means trouble, or when a remote start was refused, timed out or never became a session
(durable `ChargingRequestFailed`). A start refused for a reason that is not the connector's
(the station offline, the driver's payment) counts neither way. A successful session sets
the count to zero and resolves the incident.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from api.service import incidents
from api.service.failure_rules import START_FAILURE_PREFIXES, session_failed
from api.service.incidents import Problem
from api.worker.processor import publish_after_commit
from schema.db import insert_on_conflict
from schema.detection_models import ConnectorFailureStreak
from schema.events import ChargingRequestFailed, Event, TransactionEnded
from schema.incident_models import IncidentKind, IncidentSeverity

STREAK = ConnectorFailureStreak.__table__  # type: ignore[attr-defined]

SEVERITY = IncidentSeverity.HIGH


async def on_session_ended(conn: AsyncConnection, event: Event, *, threshold: int) -> None:
    assert isinstance(event, TransactionEnded)
    if session_failed(event.energy_wh, event.stop_reason):
        reason = f"session {event.transaction_id}: {event.energy_wh} Wh, stopped {event.stop_reason or '-'}"
        await _count_failure(conn, event, event.connector_id, reason, threshold)
        return
    await conn.execute(
        update(STREAK)
        .where(STREAK.c.station_id == event.station_id, STREAK.c.connector_id == event.connector_id)
        .values(failures=0, last_reason=None, updated_at=event.at)
    )
    key = not_charging_key(event.station_id, event.connector_id)
    done = await incidents.resolve_by_key(
        conn,
        key,
        at=event.at,
        resolution=f"session {event.transaction_id} delivered {event.energy_wh} Wh",
        detail={"transaction_id": event.transaction_id, "energy_wh": event.energy_wh},
    )
    if done is not None:
        publish_after_commit([done.event])


async def on_start_failed(conn: AsyncConnection, event: Event, *, threshold: int) -> None:
    assert isinstance(event, ChargingRequestFailed)
    if event.connector_id is None or not event.reason.startswith(START_FAILURE_PREFIXES):
        return
    reason = f"start request {event.request_id}: {event.reason}"
    await _count_failure(conn, event, event.connector_id, reason, threshold)


async def _count_failure(
    conn: AsyncConnection, event: Event, connector_id: int, reason: str, threshold: int
) -> None:
    failures = await _increment(conn, event.station_id, connector_id, reason[:200], event.at)
    if failures < threshold:
        return
    change = await incidents.open_or_recur(
        conn,
        Problem(
            station_id=event.station_id,
            connector_id=connector_id,
            kind=IncidentKind.NOT_CHARGING,
            severity=SEVERITY,
            dedup_key=not_charging_key(event.station_id, connector_id),
            title=f"{event.charge_point_id} connector {connector_id}: {failures} failed sessions in a row",
            evidence={"failures": failures, "reason": reason},
        ),
        at=event.at,
    )
    publish_after_commit([change.event])


async def _increment(
    conn: AsyncConnection, station_id: int, connector_id: int, reason: str, at: datetime
) -> int:
    stmt = insert_on_conflict(conn, STREAK).values(
        station_id=station_id, connector_id=connector_id, failures=1, last_reason=reason, updated_at=at
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["station_id", "connector_id"],
        set_={"failures": STREAK.c.failures + 1, "last_reason": reason, "updated_at": at},
    ).returning(STREAK.c.failures)
    return int((await conn.execute(stmt)).scalar_one())


def not_charging_key(station_id: int, connector_id: int) -> str:
    return incidents.dedup_key(IncidentKind.NOT_CHARGING, station_id, connector_id)
