"""Every query of station health: gathering the score's inputs for the whole fleet (one
grouped query per input, whatever the number of stations), keeping the results, and reading
them back scoped to the caller (network:read in the station's organisation).

Where each input comes from, and why:
- faults: `connector_status_event` rows that report Faulted or an error code. Only changes
  are written there, so a row is one fault event, not a repeat after a reconnect.
- failed sessions: sessions started in the window and ended with < 0.1 kWh or an error stop
  reason, out of all ended ones; plus remote starts the station refused or never started
  (`charging_request` failed for a station-side reason — not a declined card).
- reboots: BootNotification frames in the OCPP message log (`ocpp_message`), kept 14 days by
  default. The station row keeps only the last boot, and the gateway's hot path stays as is.
  With the message log switched off reboots read as none.
- heartbeat gaps: heartbeats are deliberately not logged (gateway/message_log.py), and the
  station row keeps only the last time it was heard. What records a heartbeat gap is the
  offline detection: a station silent for 2 × its interval plus a grace gets an offline
  `port_outage` per connector, started when it was last heard. One episode = one gap.
- low power: when a session ends, the worker averages its power samples (total, no phase)
  taken together with an SoC below the low-SoC setting and keeps that beside the connector's
  rated power (`session_power_check`, api/service/health_sessions.py); a session averaging
  under a share of rated power is underpowered (a weak module, a derated cable, a hot
  cabinet). Done per session so the job never scans a week of meter samples.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, case, func, literal, or_, select
from sqlalchemy import text as sql_text
from sqlalchemy.ext.asyncio import AsyncConnection

from api.auth.principal import Principal
from api.auth.roles import Permission
from api.service.failure_rules import ERROR_STOP_REASONS, OFFLINE_START_PREFIX, START_FAILURE_PREFIXES
from api.service.health import HealthInputs, HealthPolicy, distinct_reboots
from schema.db import insert_on_conflict
from schema.enums import MessageDirection, TransactionState
from schema.health_models import SessionPowerCheck, StationHealth
from schema.incident_models import OutageCause, PortOutage
from schema.models import (
    FAULT_STATUS_SQL,
    ChargingStation,
    Connector,
    ConnectorStatusEvent,
    MeterSample,
    OcppMessage,
    Transaction,
)
from schema.request_models import ChargingRequest, ChargingRequestState

HEALTH = StationHealth.__table__  # type: ignore[attr-defined]
CHECK = SessionPowerCheck.__table__  # type: ignore[attr-defined]
STATION = ChargingStation.__table__  # type: ignore[attr-defined]
CONNECTOR = Connector.__table__  # type: ignore[attr-defined]
STATUS = ConnectorStatusEvent.__table__  # type: ignore[attr-defined]
TRANSACTION = Transaction.__table__  # type: ignore[attr-defined]
REQUEST = ChargingRequest.__table__  # type: ignore[attr-defined]
MESSAGE = OcppMessage.__table__  # type: ignore[attr-defined]
OUTAGE = PortOutage.__table__  # type: ignore[attr-defined]
SAMPLE = MeterSample.__table__  # type: ignore[attr-defined]

# Literals, not bound parameters: the partial indexes they match are only provably usable
# with the values in the statement itself.
BOOT_SQL = "ocpp_message.action = 'BootNotification'"
OCPP_CALL = 2
POWER_IMPORT = "Power.Active.Import"
SOC = "SoC"
KILO_UNITS = ("kW",)
# Failed start requests the station is to blame for: the connector's failures, and here also
# starts refused for the station being unreachable (the score weighs how often drivers were let
# down, whatever the cause).
STATION_FAILURE_PREFIXES = (*START_FAILURE_PREFIXES, OFFLINE_START_PREFIX)
# Rows per upsert statement when storing scores.
WRITE_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Window:
    since: datetime
    until: datetime


async def gather_inputs(
    conn: AsyncConnection, policy: HealthPolicy, window: Window
) -> dict[int, HealthInputs]:
    """Every station's inputs over the window (stations with no activity get all zeros)."""
    ids = await conn.execute(select(STATION.c.id).order_by(STATION.c.id))
    stations = [int(row.id) for row in ids]
    faults = await _fault_counts(conn, window)
    sessions = await _session_counts(conn, window, policy.min_session_energy_wh)
    requests = await _failed_request_counts(conn, window)
    boots = await _boot_times(conn, window)
    gaps = await _offline_episodes(conn, window)
    power = await _low_power_sessions(conn, window, policy.low_power_fraction)
    out: dict[int, HealthInputs] = {}
    for sid in stations:
        failed, ended = sessions.get(sid, (0, 0))
        refused = requests.get(sid, 0)
        under, low_soc = power.get(sid, (0, 0))
        out[sid] = HealthInputs(
            faults=faults.get(sid, 0),
            failed_sessions=failed + refused,
            session_attempts=ended + refused,
            reboots=distinct_reboots(boots.get(sid, ()), policy.reboot_merge_s),
            heartbeat_gaps=gaps.get(sid, 0),
            underpowered_sessions=under,
            low_soc_sessions=low_soc,
        )
    return out


async def _fault_counts(conn: AsyncConnection, w: Window) -> dict[int, int]:
    stmt = (
        select(STATUS.c.station_id, func.count())
        .where(
            STATUS.c.received_at >= w.since,
            STATUS.c.received_at < w.until,
            sql_text(f"({FAULT_STATUS_SQL})"),  # the partial index ix_status_event_fault_time
        )
        .group_by(STATUS.c.station_id)
    )
    return {int(r[0]): int(r[1]) for r in await conn.execute(stmt)}


async def _session_counts(conn: AsyncConnection, w: Window, min_energy_wh: int) -> dict[int, tuple[int, int]]:
    failed = or_(
        TRANSACTION.c.energy_wh < min_energy_wh,
        TRANSACTION.c.stop_reason.in_(sorted(ERROR_STOP_REASONS)),
    )
    stmt = (
        select(
            TRANSACTION.c.station_id,
            func.sum(case((failed, 1), else_=0)),
            func.count(),
        )
        .where(
            TRANSACTION.c.started_at >= w.since,
            TRANSACTION.c.started_at < w.until,
            TRANSACTION.c.state == TransactionState.COMPLETED.value,
        )
        .group_by(TRANSACTION.c.station_id)
    )
    return {int(r[0]): (int(r[1] or 0), int(r[2])) for r in await conn.execute(stmt)}


async def _failed_request_counts(conn: AsyncConnection, w: Window) -> dict[int, int]:
    blamed = or_(*(REQUEST.c.failure_reason.startswith(p) for p in STATION_FAILURE_PREFIXES))
    stmt = (
        select(REQUEST.c.station_id, func.count())
        .where(
            REQUEST.c.state == ChargingRequestState.FAILED.value,
            REQUEST.c.created_at >= w.since,
            REQUEST.c.created_at < w.until,
            blamed,
        )
        .group_by(REQUEST.c.station_id)
    )
    return {int(r[0]): int(r[1]) for r in await conn.execute(stmt)}


async def _boot_times(conn: AsyncConnection, w: Window) -> dict[int, list[datetime]]:
    stmt = (
        select(STATION.c.id, MESSAGE.c.logged_at)
        .select_from(MESSAGE.join(STATION, STATION.c.charge_point_id == MESSAGE.c.charge_point_id))
        .where(
            sql_text(BOOT_SQL),  # the partial index ix_ocpp_message_boot
            MESSAGE.c.direction == MessageDirection.IN.value,
            MESSAGE.c.message_type == OCPP_CALL,
            MESSAGE.c.logged_at >= w.since,
            MESSAGE.c.logged_at < w.until,
        )
    )
    out: dict[int, list[datetime]] = defaultdict(list)
    for row in await conn.execute(stmt):
        out[int(row.id)].append(row.logged_at)
    return out


async def _offline_episodes(conn: AsyncConnection, w: Window) -> dict[int, int]:
    """Offline outages overlapping the window; one row per connector, so an episode is a
    distinct start time of the station."""
    episodes = (
        select(OUTAGE.c.station_id, OUTAGE.c.started_at)
        .where(
            OUTAGE.c.cause == OutageCause.OFFLINE.value,
            OUTAGE.c.started_at < w.until,
            or_(OUTAGE.c.ended_at.is_(None), OUTAGE.c.ended_at >= w.since),
        )
        .distinct()
        .subquery()
    )
    stmt = select(episodes.c.station_id, func.count()).group_by(episodes.c.station_id)
    return {int(r[0]): int(r[1]) for r in await conn.execute(stmt)}


async def _low_power_sessions(
    conn: AsyncConnection, w: Window, fraction: float
) -> dict[int, tuple[int, int]]:
    """Per station: (underpowered sessions, sessions with power sampled at low SoC), from the
    checks written as sessions ended."""
    under = CHECK.c.low_soc_avg_power_w < CHECK.c.rated_power_w * literal(fraction)
    stmt = (
        select(CHECK.c.station_id, func.sum(case((under, 1), else_=0)), func.count())
        .where(CHECK.c.stopped_at >= w.since, CHECK.c.stopped_at < w.until)
        .group_by(CHECK.c.station_id)
    )
    return {int(r[0]): (int(r[1] or 0), int(r[2])) for r in await conn.execute(stmt)}


async def check_session_power(
    conn: AsyncConnection, transaction_id: int, *, stopped_at: datetime, low_soc_percent: float
) -> bool:
    """Record the ended session's average power while the SoC was below `low_soc_percent`
    (power and SoC sampled together, total power: no phase). False when it had no such
    samples; a repeated call changes nothing."""
    power, soc = SAMPLE.alias("power"), SAMPLE.alias("soc")
    power_w = case((power.c.unit.in_(KILO_UNITS), power.c.value * 1000.0), else_=power.c.value)
    row = (
        await conn.execute(
            select(
                power.c.station_id,
                func.avg(power_w).label("avg_w"),
                func.max(CONNECTOR.c.max_power_w).label("rated_w"),
                func.count().label("samples"),
            )
            .select_from(
                power.join(
                    soc,
                    and_(
                        soc.c.station_id == power.c.station_id,
                        soc.c.connector_id == power.c.connector_id,
                        soc.c.sampled_at == power.c.sampled_at,
                        soc.c.measurand == SOC,
                    ),
                ).join(
                    CONNECTOR,
                    and_(
                        CONNECTOR.c.station_id == power.c.station_id,
                        CONNECTOR.c.connector_id == power.c.connector_id,
                    ),
                )
            )
            .where(
                power.c.transaction_id == transaction_id,
                power.c.measurand == POWER_IMPORT,
                power.c.phase == "",
                soc.c.value < low_soc_percent,
            )
            .group_by(power.c.station_id)
        )
    ).first()
    if row is None:
        return False
    await conn.execute(
        insert_on_conflict(conn, CHECK)
        .values(
            transaction_id=transaction_id,
            station_id=row.station_id,
            stopped_at=stopped_at,
            low_soc_avg_power_w=round(row.avg_w),
            rated_power_w=int(row.rated_w),
            samples=int(row.samples),
        )
        .on_conflict_do_nothing(index_elements=["transaction_id"])
    )
    return True


# -- the stored scores -----------------------------------------------------------------------


async def previous_states(conn: AsyncConnection) -> dict[int, tuple[bool, datetime | None]]:
    """Each scored station's hysteresis state: degraded, and since when."""
    stmt = select(HEALTH.c.station_id, HEALTH.c.degraded, HEALTH.c.degraded_since)
    return {int(r[0]): (bool(r[1]), r[2]) for r in await conn.execute(stmt)}


async def store(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or replace each station's row."""
    for start in range(0, len(rows), WRITE_CHUNK):
        chunk = rows[start : start + WRITE_CHUNK]
        stmt = insert_on_conflict(conn, HEALTH)
        stmt = stmt.on_conflict_do_update(
            index_elements=["station_id"],
            set_={c: stmt.excluded[c] for c in chunk[0] if c != "station_id"},
        )
        await conn.execute(stmt, list(chunk))


def _readable(principal: Principal) -> Any:
    """Health rows of stations in organisations where the caller holds network:read."""
    stmt = select(HEALTH, STATION.c.organization_id).join(STATION, STATION.c.id == HEALTH.c.station_id)
    orgs = principal.organizations_with(Permission.NETWORK_READ)
    if orgs is None:
        return stmt
    return stmt.where(STATION.c.organization_id.in_(orgs)) if orgs else stmt.where(False)  # type: ignore[arg-type]


async def health_by_station_ids(
    conn: AsyncConnection, principal: Principal, station_ids: Sequence[int]
) -> dict[int, Row[Any]]:
    rows = await conn.execute(_readable(principal).where(HEALTH.c.station_id.in_(list(station_ids))))
    return {int(r.station_id): r for r in rows}


async def unhealthy(
    conn: AsyncConnection, principal: Principal, organization_id: int, *, below: int | None, limit: int
) -> list[Row[Any]]:
    """The organisation's stations scoring below `below` (None: degraded), worst first."""
    which = HEALTH.c.degraded.is_(True) if below is None else HEALTH.c.score < below
    stmt = (
        _readable(principal)
        .where(STATION.c.organization_id == organization_id, which)
        .order_by(HEALTH.c.score, HEALTH.c.station_id)
        .limit(limit)
    )
    return list(await conn.execute(stmt))
