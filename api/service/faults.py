"""Fault detection: what a station reports as wrong becomes an incident at once; what it
reports as mended resolves it (unless the code needs a technician's confirmation); and every
Faulted or Unavailable connector is a port outage for exactly as long as its status says.

Opening is event-driven: a fault StatusNotification is a durable outbox event, and so are
2.0.1 NotifyEvent alerts and SecurityEventNotifications (schema/outbox.py), so the worker's
handlers open the incident in the same transaction that records the event as processed and
publish it to `fleetAlerts` after the commit — tens of milliseconds after the station spoke.

Recovery is reconciled instead (`reconcile_faults`, a short-interval scheduled job): the
connector row already holds the current status and the moment it changed (`status_since`),
so one query finds every fault incident whose connector is healthy again and every outage
whose status ended, including recoveries reported while no worker ran. Making the recovery
event durable would have needed the gateway to know the previous status of every connector
across reconnects and replicas; the row needs nothing new. The same job opens and ends
faulted/unavailable outages to match the connector rows (the fault handler opens a faulted
one at once too, so a fault shorter than the interval still counts); both ends are the
connector's own timestamps, not the job's.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.service import fault_codes, fault_rules, incidents
from api.service.incidents import ENTRY, INCIDENT, STATION, IncidentChange, Problem
from api.service.offline import CONNECTOR, OUTAGE, publish, run_alone
from api.worker.processor import publish_after_commit
from schema.bus import Bus
from schema.enums import ConnectorStatus
from schema.events import Event, StationReported, StationStatusChanged
from schema.incident_models import IncidentKind, IncidentState, OutageCause
from schema.models import ConnectorStatusEvent
from schema.outbox import ALERT_VARIABLES, NO_ERROR, notify_event_alerts
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

STATUS_EVENT = ConnectorStatusEvent.__table__  # type: ignore[attr-defined]

# pg_try_advisory_xact_lock key of the reconcile job ("faults" in ASCII).
FAULT_RECONCILE_LOCK_KEY = 0x6661756C7473
MAX_PER_RUN = 500
# Statuses in which a connector can deliver energy again: its fault is over.
HEALTHY = (
    ConnectorStatus.AVAILABLE.value,
    ConnectorStatus.PREPARING.value,
    ConnectorStatus.CHARGING.value,
    ConnectorStatus.SUSPENDED_EV.value,
    ConnectorStatus.SUSPENDED_EVSE.value,
    ConnectorStatus.FINISHING.value,
    ConnectorStatus.RESERVED.value,
)
OUTAGE_CAUSES = {
    ConnectorStatus.FAULTED.value: OutageCause.FAULTED,
    ConnectorStatus.UNAVAILABLE.value: OutageCause.UNAVAILABLE,
}
# NotifyEvent incidents carry this in their dedup key: only the station's clearing closes
# them, never a connector status.
EVENT_KEY = "event"


# -- opening (worker handlers) -----------------------------------------------------------------


async def open_on_fault(conn: AsyncConnection, event: Event) -> None:
    """A connector (or the station, connector 0) reported Faulted or an error code."""
    assert isinstance(event, StationStatusChanged)
    cid = event.changed_connector_id
    if cid is None:
        return
    if cid == 0:
        status, code = event.station_status, event.station_error_code
    else:
        found = next((c for c in event.connectors if c.connector_id == cid), None)
        if found is None:
            return
        status, code = found.status, found.error_code
    if status != ConnectorStatus.FAULTED.value and code == NO_ERROR:
        return
    name = code if code != NO_ERROR else fault_codes.FAULTED_WITHOUT_CODE
    vendor = None
    if cid > 0:
        vendor = (
            await conn.execute(
                select(CONNECTOR.c.vendor_error_code).where(
                    CONNECTOR.c.station_id == event.station_id, CONNECTOR.c.connector_id == cid
                )
            )
        ).scalar()
    rule = await fault_rules.rule_for(conn, event.station_id, name, vendor)
    where = f"connector {cid}" if cid else "station"
    change = await incidents.open_or_recur(
        conn,
        Problem(
            station_id=event.station_id,
            connector_id=cid or None,
            kind=IncidentKind.FAULT,
            severity=rule.severity,
            dedup_key=incidents.dedup_key(IncidentKind.FAULT, event.station_id, cid or None, name),
            title=f"{event.charge_point_id} {where}: {name}",
            error_code=name,
            vendor_error_code=vendor,
            auto_resolve=rule.auto_resolve,
            evidence={"status": status, "error_code": code, "vendor_error_code": vendor},
        ),
        at=event.at,
    )
    if status == ConnectorStatus.FAULTED.value:
        # A Faulted station (connector 0) cannot charge on any of its ports.
        ports = [cid] if cid > 0 else [c.connector_id for c in event.connectors if c.connector_id > 0]
        for port in ports:
            await _open_fault_outage(conn, event, port, name, change.incident_id)
    publish_after_commit([change.event])


async def _open_fault_outage(
    conn: AsyncConnection, event: StationStatusChanged, cid: int, code: str, incident_id: int
) -> None:
    """Opened here as well as by the reconcile job, so a fault shorter than the job's interval
    is still an outage; whichever comes second finds it open and adds nothing."""
    already = (
        await conn.execute(
            select(OUTAGE.c.id).where(
                OUTAGE.c.station_id == event.station_id,
                OUTAGE.c.connector_id == cid,
                OUTAGE.c.cause == OutageCause.FAULTED.value,
                OUTAGE.c.ended_at.is_(None),
            )
        )
    ).first()
    if already is None:
        await conn.execute(
            OUTAGE.insert().values(
                station_id=event.station_id,
                connector_id=cid,
                cause=OutageCause.FAULTED.value,
                started_at=event.at,
                incident_id=incident_id,
                error_code=code,
            )
        )


async def open_on_report(conn: AsyncConnection, event: Event) -> None:
    """2.0.1 NotifyEvent alerts (opened, or resolved when cleared) and security events."""
    assert isinstance(event, StationReported)
    if event.action == "SecurityEventNotification":
        changes = [c for c in [await _security(conn, event)] if c is not None]
    elif event.action == "NotifyEvent":
        changes = [
            c
            for e in event.detail.get("events", ())
            if notify_event_alerts(e)
            for c in [await _notify_event(conn, event, e)]
            if c is not None
        ]
    else:
        return
    publish_after_commit([c.event for c in changes])


async def _security(conn: AsyncConnection, event: StationReported) -> IncidentChange | None:
    kind = str(event.detail.get("type", ""))
    severity = await fault_rules.security_severity(conn, event.station_id, kind)
    if severity is None:
        return None
    return await incidents.open_or_recur(
        conn,
        Problem(
            station_id=event.station_id,
            connector_id=None,
            kind=IncidentKind.SECURITY,
            severity=severity,
            dedup_key=incidents.dedup_key(IncidentKind.SECURITY, event.station_id, None, kind),
            title=f"{event.charge_point_id}: security event {kind}",
            error_code=kind[:50],
            auto_resolve=False,  # the station cannot vouch for itself after an attack
            evidence=dict(event.detail),
        ),
        at=event.at,
    )


async def _notify_event(
    conn: AsyncConnection, event: StationReported, e: dict[str, Any]
) -> IncidentChange | None:
    evse_id = e.get("evse_id")
    key = str(e.get("key", ""))
    dedup = incidents.dedup_key(IncidentKind.FAULT, event.station_id, evse_id, EVENT_KEY, key)
    value = str(e.get("actual_value", "")).strip().lower()
    cleared = bool(e.get("cleared")) or (e.get("variable") in ALERT_VARIABLES and value == "false")
    if cleared:
        return await incidents.resolve_by_key(
            conn, dedup, at=event.at, resolution=f"the station cleared {key}", detail=e
        )
    component = str(e.get("component", key.split(".", 1)[0]))
    tech_code = e.get("tech_code")
    vendor = None if tech_code is None else str(tech_code)[:50]
    # The organisation's rule for the station's own code, if it has one, says more than the
    # component; only the severity: these incidents close when the station clears them.
    override = None if vendor is None else await fault_rules.vendor_rule(conn, event.station_id, vendor)
    return await incidents.open_or_recur(
        conn,
        Problem(
            station_id=event.station_id,
            connector_id=evse_id,
            kind=IncidentKind.FAULT,
            severity=fault_codes.event_severity(component) if override is None else override.severity,
            dedup_key=dedup,
            title=f"{event.charge_point_id}: {key} = {e.get('actual_value')}"[:200],
            error_code=str(e.get("variable") or key)[:50],
            vendor_error_code=vendor,
            evidence=e,
        ),
        at=event.at,
    )


# -- recovery and outages (scheduled) ------------------------------------------------------------


async def reconcile_faults(engine: AsyncEngine, bus: Bus | None, *, now: datetime | None = None) -> int:
    """Resolve (or mark recovered) fault incidents whose connector is healthy again, and open
    and end faulted/unavailable outages to match connector statuses. Returns the changes."""
    now = now or utcnow()
    async with engine.begin() as conn:
        if not await run_alone(conn, FAULT_RECONCILE_LOCK_KEY):
            return 0
        changes = [c for c in [await _recover(conn, r, now) for r in await _recovered(conn)] if c is not None]
        outages = await _open_outages(conn, now) + await _end_outages(conn)
    await publish(bus, [c.event for c in changes])
    return len(changes) + outages


async def _recovered(conn: AsyncConnection) -> list[Any]:
    """Unresolved status faults whose connector (or station) is healthy since their last sighting."""
    station_level = INCIDENT.c.connector_id.is_(None)
    since = func.coalesce(CONNECTOR.c.status_since, INCIDENT.c.last_seen_at)
    noted = exists().where(
        ENTRY.c.incident_id == INCIDENT.c.id,
        ENTRY.c.kind == "recovered",
        ENTRY.c.at >= INCIDENT.c.last_seen_at,
    )
    stmt = (
        select(
            INCIDENT.c.id,
            INCIDENT.c.dedup_key,
            CONNECTOR.c.status,
            CONNECTOR.c.status_since,
            STATION.c.status.label("station_status"),
        )
        .join(STATION, STATION.c.id == INCIDENT.c.station_id)
        .outerjoin(
            CONNECTOR,
            and_(
                CONNECTOR.c.station_id == INCIDENT.c.station_id,
                CONNECTOR.c.connector_id == INCIDENT.c.connector_id,
            ),
        )
        .where(
            INCIDENT.c.kind == IncidentKind.FAULT.value,
            INCIDENT.c.state != IncidentState.RESOLVED.value,
            not_(INCIDENT.c.dedup_key.contains(f":{EVENT_KEY}:")),
            or_(
                and_(
                    ~station_level,
                    CONNECTOR.c.status.in_(HEALTHY),
                    CONNECTOR.c.error_code == NO_ERROR,
                    since >= INCIDENT.c.last_seen_at,
                ),
                and_(
                    station_level,
                    STATION.c.status != ConnectorStatus.FAULTED.value,
                    STATION.c.error_code == NO_ERROR,
                ),
            ),
            ~noted,
        )
        .order_by(INCIDENT.c.id)
        .limit(MAX_PER_RUN)
    )
    return list((await conn.execute(stmt)).all())


async def _recover(conn: AsyncConnection, row: Any, now: datetime) -> IncidentChange | None:
    at: datetime = row.status_since or now
    status = row.status or row.station_status
    return await incidents.resolve_by_key(
        conn,
        row.dedup_key,
        at=at,
        resolution=f"the connector reports {status} again",
        detail={"status": status},
    )


async def _open_outages(conn: AsyncConnection, now: datetime) -> int:
    """Faulted/Unavailable connectors, and every connector of a Faulted station, without an
    open outage of that cause get one.

    Two plain reads compared here rather than one anti-join: both sides are small (connectors
    that are down now, outages open now) and index-served, where a correlated NOT EXISTS let
    PostgreSQL pick a nested loop over a freshly grown outage table (seconds per run)."""
    station_faulted = STATION.c.status == ConnectorStatus.FAULTED.value
    columns = (
        CONNECTOR.c.station_id,
        CONNECTOR.c.connector_id,
        CONNECTOR.c.status,
        CONNECTOR.c.error_code,
        CONNECTOR.c.status_since,
        station_faulted.label("station_faulted"),
        STATION.c.error_code.label("station_error_code"),
    )
    joined = select(*columns).join(STATION, STATION.c.id == CONNECTOR.c.station_id)
    # Two reads, each on its own index (connector status; Faulted stations), not one OR that
    # would scan every connector of the fleet on each run.
    down = {
        (r.station_id, r.connector_id): r
        for stmt in (
            joined.where(CONNECTOR.c.status.in_(tuple(OUTAGE_CAUSES))),
            joined.where(station_faulted),
        )
        for r in await conn.execute(stmt)
    }.values()
    if not down:
        return 0
    causes = [c.value for c in OUTAGE_CAUSES.values()]
    already = {
        (r.station_id, r.connector_id, r.cause)
        for r in await conn.execute(
            select(OUTAGE.c.station_id, OUTAGE.c.connector_id, OUTAGE.c.cause).where(
                OUTAGE.c.ended_at.is_(None), OUTAGE.c.cause.in_(causes)
            )
        )
    }
    missing = [r for r in down if (r.station_id, r.connector_id, _cause(r).value) not in already][
        :MAX_PER_RUN
    ]
    if not missing:
        return 0
    faults_open: dict[tuple[int, int | None], int] = {}
    for r in await conn.execute(
        select(INCIDENT.c.station_id, INCIDENT.c.connector_id, INCIDENT.c.id)
        .where(
            INCIDENT.c.kind == IncidentKind.FAULT.value,
            INCIDENT.c.state != IncidentState.RESOLVED.value,
            INCIDENT.c.station_id.in_({r.station_id for r in missing}),
        )
        .order_by(INCIDENT.c.id)
    ):
        faults_open.setdefault((r.station_id, r.connector_id), r.id)
    station_since = await _station_changed_at(conn, {r.station_id for r in missing if r.station_faulted})
    await conn.execute(
        OUTAGE.insert(),
        [_outage_row(r, faults_open, station_since, now) for r in missing],
    )
    return len(missing)


def _cause(r: Any) -> OutageCause:
    return OutageCause.FAULTED if r.station_faulted else OUTAGE_CAUSES[r.status]


def _outage_row(
    r: Any, faults_open: dict[tuple[int, int | None], int], station_since: dict[int, datetime], now: datetime
) -> dict[str, Any]:
    """A station-wide fault's outage starts when connector 0 changed and links the station's
    incident; a port's own, when the port changed, linking the port's."""
    if r.station_faulted and r.status != ConnectorStatus.FAULTED.value:
        started, incident, code = (
            station_since.get(r.station_id, now),
            (r.station_id, None),
            r.station_error_code,
        )
    else:
        started, incident, code = r.status_since or now, (r.station_id, r.connector_id), r.error_code
    return {
        "station_id": r.station_id,
        "connector_id": r.connector_id,
        "cause": _cause(r).value,
        "started_at": started,
        "incident_id": faults_open.get(incident) if _cause(r) == OutageCause.FAULTED else None,
        "error_code": None if code == NO_ERROR else code,
    }


async def _station_changed_at(conn: AsyncConnection, station_ids: set[int]) -> dict[int, datetime]:
    """When connector 0 last changed, per station: the station row keeps no `status_since`,
    but the history records only changes, so its newest connector-0 row is that moment."""
    return {sid: changed for sid, (changed, _) in (await _station_changes(conn, station_ids)).items()}


async def _station_changes(
    conn: AsyncConnection, station_ids: set[int]
) -> dict[int, tuple[datetime, datetime | None]]:
    """Per station: when connector 0 last changed, and when it last became Faulted."""
    if not station_ids:
        return {}
    faulted = case((STATUS_EVENT.c.status == ConnectorStatus.FAULTED.value, STATUS_EVENT.c.received_at))
    return {
        r.station_id: (r.changed, r.faulted)
        for r in await conn.execute(
            select(
                STATUS_EVENT.c.station_id,
                func.max(STATUS_EVENT.c.received_at).label("changed"),
                func.max(faulted).label("faulted"),
            )
            .where(STATUS_EVENT.c.station_id.in_(station_ids), STATUS_EVENT.c.connector_id == 0)
            .group_by(STATUS_EVENT.c.station_id)
        )
    }


async def _end_outages(conn: AsyncConnection) -> int:
    """End outages whose cause is over: the port left that status and, for faulted ones, its
    station is not Faulted either. A station-wide outage (linked to the station's incident)
    ends when connector 0 recovered."""
    causes = [c.value for c in OUTAGE_CAUSES.values()]
    faulted = OutageCause.FAULTED.value
    rows = (
        await conn.execute(
            select(
                OUTAGE.c.id,
                OUTAGE.c.station_id,
                OUTAGE.c.started_at,
                OUTAGE.c.cause,
                CONNECTOR.c.status_since,
                INCIDENT.c.id.is_not(None).label("station_wide"),
            )
            .join(
                CONNECTOR,
                and_(
                    CONNECTOR.c.station_id == OUTAGE.c.station_id,
                    CONNECTOR.c.connector_id == OUTAGE.c.connector_id,
                ),
            )
            .join(STATION, STATION.c.id == OUTAGE.c.station_id)
            .outerjoin(
                INCIDENT, and_(INCIDENT.c.id == OUTAGE.c.incident_id, INCIDENT.c.connector_id.is_(None))
            )
            .where(
                OUTAGE.c.ended_at.is_(None),
                OUTAGE.c.cause.in_(causes),
                OUTAGE.c.cause != func.lower(CONNECTOR.c.status),
                not_(and_(OUTAGE.c.cause == faulted, STATION.c.status == ConnectorStatus.FAULTED.value)),
            )
            .limit(MAX_PER_RUN)
        )
    ).all()
    station = await _station_changes(
        conn, {r.station_id for r in rows if r.cause == OutageCause.FAULTED.value}
    )
    for r in rows:
        ended = max(_ended(r, station.get(r.station_id)) or r.started_at, r.started_at)
        await conn.execute(update(OUTAGE).where(OUTAGE.c.id == r.id).values(ended_at=ended))
    return len(rows)


def _ended(r: Any, station: tuple[datetime, datetime | None] | None) -> datetime | None:
    """A faulted outage lasts until both the port and its station are up again: the port's
    recovery, or the station's when the station was Faulted during the outage (or caused it)."""
    port = None if r.station_wide else r.status_since
    if station is None:
        return port
    changed, faulted = station
    # A station already Faulted when a port's own outage began had opened one on it already.
    station_faulted_meanwhile = r.station_wide or (faulted is not None and faulted >= r.started_at)
    if not station_faulted_meanwhile:
        return port
    return changed if port is None else max(changed, port)
