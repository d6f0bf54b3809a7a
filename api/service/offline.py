"""Offline detection: a station nobody has heard from is an incident, and its connectors are
down (port outages) from the moment it was last heard until it is heard again.

Why a scheduled scan over `charging_station.last_seen_at` rather than the gateway's socket
events: a station can go silent with its socket open (a hung controller behind a NAT that
still answers pings), and the gateway's online/offline flips are live-only events, lost when
no worker listens. The row is the truth both cases share: the gateway stamps `last_seen_at`
with the time of the latest frame (written within min(30 s, heartbeat / 2)) and sets
`online` false when the socket closes. So:

- silent: `online` and last heard longer ago than heartbeat x 2 + `offline_grace_s`;
- disconnected: not `online` and last heard longer ago than `reconnect_grace_s`;
- back: `online` and heard after the incident opened → resolved; its outages end at the
  time it was heard (at most one liveness flush late).

The scan runs on one replica per interval (the scheduler's lock) and takes a PostgreSQL
advisory lock besides, so an overrun cannot overlap the next run; the incident dedup index
is the last line of defence. Worst-case latency: heartbeat x 2 + grace + the scan interval.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, false, or_, select, text, true, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.service import incidents
from api.service.incidents import INCIDENT, STATION, IncidentChange, Problem
from schema.bus import Bus
from schema.enums import RegistrationStatus
from schema.events import Event
from schema.incident_models import IncidentKind, IncidentSeverity, IncidentState, OutageCause, PortOutage
from schema.models import Connector
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

OUTAGE = PortOutage.__table__  # type: ignore[attr-defined]
CONNECTOR = Connector.__table__  # type: ignore[attr-defined]

# pg_try_advisory_xact_lock key of the scan ("offline" in ASCII).
OFFLINE_SCAN_LOCK_KEY = 0x6F66666C696E65
# Stations opened or resolved per run: a network-wide outage (the gateway's uplink) is caught
# up over a few runs rather than in one transaction holding thousands of rows.
MAX_PER_RUN = 500


@dataclass(frozen=True, slots=True)
class OfflineScan:
    opened: int
    resolved: int
    skipped: bool = False


async def detect_offline(
    engine: AsyncEngine,
    bus: Bus | None,
    *,
    offline_grace_s: float,
    reconnect_grace_s: float,
    severity: IncidentSeverity = IncidentSeverity.HIGH,
    now: datetime | None = None,
) -> OfflineScan:
    """Open incidents (and outages) for stations gone offline, resolve those that are back;
    the incidents' live events are published after the commit."""
    now = now or utcnow()
    changes: list[IncidentChange] = []
    async with engine.begin() as conn:
        if not await run_alone(conn, OFFLINE_SCAN_LOCK_KEY):
            return OfflineScan(0, 0, skipped=True)
        for row in await _gone(
            conn, now, offline_grace_s=offline_grace_s, reconnect_grace_s=reconnect_grace_s
        ):
            changes.append(await _open(conn, row, severity, now))
        resolved = [await _resolve(conn, row, now) for row in await _back(conn)]
        changes.extend(c for c in resolved if c is not None)
    await publish(bus, [c.event for c in changes])
    opened = sum(1 for c in changes if c.change == "opened")
    if opened:
        log.warning("%d stations went offline", opened)
    return OfflineScan(opened, len(changes) - opened)


async def run_alone(conn: AsyncConnection, lock_key: int) -> bool:
    """PostgreSQL: whether this transaction holds the job's advisory lock (a replica whose
    once-per-interval turn overran its interval makes the next one skip, not double up)."""
    if conn.dialect.name != "postgresql":
        return True
    return bool((await conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock_key})).scalar())


async def publish(bus: Bus | None, events: Sequence[Event]) -> None:
    """After a scheduled job's commit: a lost live event only delays a screen, never a fact."""
    if bus is None or not events:
        return
    try:
        await bus.publish(list(events))
    except Exception:
        log.exception("publishing %d incident events failed", len(events))


def _offline_incident(*conds: Any) -> Any:
    return exists().where(
        INCIDENT.c.station_id == STATION.c.id, INCIDENT.c.kind == IncidentKind.OFFLINE.value, *conds
    )


async def _gone(
    conn: AsyncConnection, now: datetime, *, offline_grace_s: float, reconnect_grace_s: float
) -> list[Any]:
    # Heartbeat intervals are few distinct values: one range condition each keeps the
    # comparison in plain timestamps on both databases.
    intervals: list[int] = list(
        (
            await conn.execute(
                select(STATION.c.heartbeat_interval_s).where(STATION.c.online == true()).distinct()
            )
        ).scalars()
    )
    silent = [
        and_(
            STATION.c.heartbeat_interval_s == hb,
            STATION.c.last_seen_at < now - timedelta(seconds=2 * hb + offline_grace_s),
        )
        for hb in intervals
    ]
    disconnected = and_(
        STATION.c.online == false(), STATION.c.last_seen_at < now - timedelta(seconds=reconnect_grace_s)
    )
    open_or_dismissed = _offline_incident(
        or_(
            INCIDENT.c.state != IncidentState.RESOLVED.value,
            # A person resolved it while the station was still away: not again until it is heard.
            and_(INCIDENT.c.resolved_by.is_not(None), INCIDENT.c.resolved_at >= STATION.c.last_seen_at),
        )
    )
    stmt = (
        select(
            STATION.c.id,
            STATION.c.charge_point_id,
            STATION.c.online,
            STATION.c.last_seen_at,
            STATION.c.heartbeat_interval_s,
        )
        .where(
            STATION.c.registration_status == RegistrationStatus.ACCEPTED.value,
            STATION.c.last_seen_at.is_not(None),
            or_(and_(STATION.c.online == true(), or_(*silent)) if silent else false(), disconnected),
            ~open_or_dismissed,
        )
        .order_by(STATION.c.id)
        .limit(MAX_PER_RUN)
    )
    return list((await conn.execute(stmt)).all())


async def _open(conn: AsyncConnection, row: Any, severity: IncidentSeverity, now: datetime) -> IncidentChange:
    reason = "silent" if row.online else "disconnected"
    last_seen: datetime = row.last_seen_at
    change = await incidents.open_or_recur(
        conn,
        Problem(
            station_id=row.id,
            connector_id=None,
            kind=IncidentKind.OFFLINE,
            severity=severity,
            dedup_key=offline_key(row.id),
            title=f"{row.charge_point_id} is offline ({reason})",
            auto_resolve=True,
            evidence={
                "reason": reason,
                "last_seen_at": last_seen.isoformat(),
                "heartbeat_interval_s": row.heartbeat_interval_s,
            },
        ),
        at=now,
    )
    if change.change != "opened":  # a concurrent scan opened it: its outages exist
        return change
    connectors: list[int] = list(
        (
            await conn.execute(select(CONNECTOR.c.connector_id).where(CONNECTOR.c.station_id == row.id))
        ).scalars()
    )
    outages = [
        {
            "station_id": row.id,
            "connector_id": cid,
            "cause": OutageCause.OFFLINE.value,
            "started_at": last_seen,
            "incident_id": change.incident_id,
        }
        for cid in connectors
    ]
    if outages:
        await conn.execute(OUTAGE.insert(), outages)
    return change


async def _back(conn: AsyncConnection) -> list[Any]:
    stmt = (
        select(INCIDENT.c.id, INCIDENT.c.dedup_key, INCIDENT.c.station_id, STATION.c.last_seen_at)
        .join(STATION, STATION.c.id == INCIDENT.c.station_id)
        .where(
            INCIDENT.c.kind == IncidentKind.OFFLINE.value,
            INCIDENT.c.state != IncidentState.RESOLVED.value,
            STATION.c.online == true(),
            STATION.c.last_seen_at > INCIDENT.c.opened_at,
        )
        .order_by(INCIDENT.c.id)
        .limit(MAX_PER_RUN)
    )
    return list((await conn.execute(stmt)).all())


async def _resolve(conn: AsyncConnection, row: Any, now: datetime) -> IncidentChange | None:
    back_at: datetime = min(row.last_seen_at, now)
    durations = await end_outages(
        conn, row.station_id, OutageCause.OFFLINE, at=back_at, incident_id=int(row.id)
    )
    return await incidents.resolve_by_key(
        conn,
        row.dedup_key,
        at=back_at,
        resolution="the station is online again",
        detail={"outages": durations, "back_at": back_at.isoformat()},
    )


async def end_outages(
    conn: AsyncConnection,
    station_id: int,
    cause: OutageCause,
    *,
    at: datetime,
    incident_id: int | None = None,
    connector_id: int | None = None,
) -> list[dict[str, Any]]:
    """End the station's open outages of `cause`; returns each connector's outage seconds."""
    conds = [OUTAGE.c.station_id == station_id, OUTAGE.c.cause == cause.value, OUTAGE.c.ended_at.is_(None)]
    if incident_id is not None:
        conds.append(OUTAGE.c.incident_id == incident_id)
    if connector_id is not None:
        conds.append(OUTAGE.c.connector_id == connector_id)
    rows = (
        await conn.execute(select(OUTAGE.c.id, OUTAGE.c.connector_id, OUTAGE.c.started_at).where(*conds))
    ).all()
    durations = []
    for r in rows:
        ended = max(at, r.started_at)
        await conn.execute(update(OUTAGE).where(OUTAGE.c.id == r.id).values(ended_at=ended))
        durations.append(
            {"connector_id": r.connector_id, "seconds": round((ended - r.started_at).total_seconds())}
        )
    return sorted(durations, key=lambda d: d["connector_id"])


def offline_key(station_id: int) -> str:
    return incidents.dedup_key(IncidentKind.OFFLINE, station_id, None)
