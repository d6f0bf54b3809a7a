"""Operator commands to stations: who may send which, the sending, and the trail it leaves.

Every command is checked against the caller's permission in the station's organisation,
sent through the bus to whichever gateway holds the station, classified (accepted, rejected
with the station's word, offline, timed out, not supported), and written to the command log
with its latency and to the audit log. Bulk variants send to many stations at once and write
their trail in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit import service as audit
from api.audit.service import Actor
from api.auth.roles import Permission
from api.control.service import CommandOutcome, send
from api.network import repository as network
from schema.bus import Bus
from schema.commands import (
    CancelReservation,
    ChangeAvailability,
    ChangeConfiguration,
    ClearCache,
    ClearChargingProfile,
    Command,
    DataTransfer,
    GetBaseReport,
    GetCompositeSchedule,
    GetConfiguration,
    GetDiagnostics,
    GetLocalListVersion,
    GetTransactionStatus,
    RemoteStart,
    RemoteStop,
    ReserveNow,
    Reset,
    SendLocalList,
    SetChargingProfile,
    TriggerMessage,
    UnlockConnector,
    UpdateFirmware,
)
from schema.control_models import StationCommand
from schema.errors import BusUnavailable, Forbidden, InvalidInput, NotFound
from schema.events import StationCommandCompleted
from schema.models import ChargingStation
from schema.timeutil import utcnow

log = logging.getLogger(__name__)
P = Permission
# What each command needs in the station's organisation. Reading and diagnosing (reset,
# triggers, configuration reads, firmware, logs) is a technician's job; changing what the
# station does for drivers (availability, limits, configuration, reservations) is control.
PERMISSION_OF: dict[type[Command], Permission] = {
    RemoteStart: P.STATIONS_CONTROL,
    RemoteStop: P.STATIONS_CONTROL,
    Reset: P.STATIONS_DIAGNOSE,
    TriggerMessage: P.STATIONS_DIAGNOSE,
    UnlockConnector: P.STATIONS_CONTROL,
    ChangeAvailability: P.STATIONS_CONTROL,
    GetConfiguration: P.STATIONS_DIAGNOSE,
    ChangeConfiguration: P.STATIONS_CONTROL,
    ClearCache: P.STATIONS_DIAGNOSE,
    DataTransfer: P.STATIONS_CONTROL,
    UpdateFirmware: P.STATIONS_DIAGNOSE,
    GetDiagnostics: P.STATIONS_DIAGNOSE,
    SendLocalList: P.STATIONS_CONTROL,
    GetLocalListVersion: P.STATIONS_DIAGNOSE,
    ReserveNow: P.STATIONS_CONTROL,
    CancelReservation: P.STATIONS_CONTROL,
    SetChargingProfile: P.STATIONS_CONTROL,
    ClearChargingProfile: P.STATIONS_CONTROL,
    GetCompositeSchedule: P.STATIONS_DIAGNOSE,
    GetTransactionStatus: P.STATIONS_DIAGNOSE,
    GetBaseReport: P.STATIONS_DIAGNOSE,
}
# A bulk command names at most this many stations: a rollout larger than this is a campaign.
MAX_BULK_STATIONS = 1_000
# Commands in flight at once for one bulk request: each is a bus round trip to a gateway;
# more would only queue on the gateways' sockets.
BULK_CONCURRENCY = 200
MAX_MESSAGE_CHARS = 300


@dataclass(frozen=True, slots=True)
class CommandResult:
    station_id: int
    outcome: CommandOutcome
    message: str
    station_status: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    command: StationCommand | None = None


@dataclass(frozen=True, slots=True)
class BulkResult:
    bulk_id: str
    results: list[CommandResult]


# Configuration keys that hold the station's credentials: ChargeNet sets them itself (password
# rotation keeps the new password's hash, so the station is not locked out), and their values
# never reach the command log.
SECRET_KEYS = frozenset({"authorizationkey", "basicauthpassword"})
REDACTED = "(redacted)"


def _is_secret(key: str) -> bool:
    """Case-insensitive: chargers match configuration keys without regard to case. A 2.0.1
    key naming the variable (SecurityCtrlr.BasicAuthPassword) counts too."""
    return key.lower().rsplit(".", 1)[-1].split("/", 1)[0] in SECRET_KEYS


def _check(actor: Actor, station: ChargingStation, command: Command, permission: Permission | None) -> None:
    needed = permission or PERMISSION_OF[type(command)]
    if not actor.principal.can(needed, station.organization_id):
        raise Forbidden(f"requires {needed.value} at this station's organisation")
    if permission is None and isinstance(command, ChangeConfiguration) and _is_secret(command.key):
        raise InvalidInput(f"{command.key} is the station's password: use rotateStationPassword")


def _logged_payload(command: Command) -> dict[str, Any]:
    payload = {k: v for k, v in command.to_dict().items() if k != "name"}
    if isinstance(command, ChangeConfiguration) and _is_secret(command.key):
        payload["value"] = REDACTED
    return _jsonable(payload)  # type: ignore[no-any-return]


async def _stations(
    db: async_sessionmaker[AsyncSession], actor: Actor, station_ids: Sequence[int]
) -> dict[int, ChargingStation]:
    async with db() as s:
        found = await network.stations_by_ids(s, actor.principal, list(station_ids))
    missing = [i for i in station_ids if i not in found]
    if missing:
        raise NotFound("no such station" if len(station_ids) == 1 else f"no such stations: {missing[:10]}")
    return found


async def _send_one(
    bus: Bus, actor: Actor, station: ChargingStation, command: Command, timeout: float, bulk_id: str | None
) -> tuple[CommandResult, StationCommand]:
    requested_at = utcnow()
    t0 = time.perf_counter()
    outcome, message, reply = await send(bus, station.charge_point_id, command, timeout)
    latency_ms = round((time.perf_counter() - t0) * 1000)
    p = actor.principal
    row = StationCommand(
        organization_id=station.organization_id,
        station_id=station.id or 0,
        name=command.name,
        payload=_logged_payload(command),
        actor_kind=p.kind.value,
        actor_user_id=p.user_id,
        actor_api_key_id=p.api_key_id,
        actor_label=p.actor_label[:120],
        bulk_id=bulk_id,
        requested_at=requested_at,
        completed_at=utcnow(),
        latency_ms=latency_ms,
        outcome=outcome.value,
        station_status=None if reply is None else reply.status[:30],
        message=message[:MAX_MESSAGE_CHARS],
        reply=None if reply is None else _jsonable(reply.detail),
    )
    result = CommandResult(
        station_id=station.id or 0,
        outcome=outcome,
        message=message,
        station_status=None if reply is None else reply.status,
        detail={} if reply is None else reply.detail,
        command=row,
    )
    return result, row


def _audit_entry(actor: Actor, row: StationCommand) -> Any:
    return audit.entry(
        actor,
        action=f"station.command.{row.name}",
        result=row.outcome,
        organization_id=row.organization_id,
        target_type="station",
        target_id=row.station_id,
        detail={"station_status": row.station_status, "latency_ms": row.latency_ms, "bulk_id": row.bulk_id},
    )


async def _record(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    rows: list[StationCommand],
    bus: Bus | None = None,
    stations: dict[int, ChargingStation] | None = None,
) -> None:
    """The command log and the audit log, in one transaction after the commands ran; then the
    results go out live (stationEvents) to operators watching these stations."""
    async with db() as s:
        s.add_all(rows)
        s.add_all([_audit_entry(actor, r) for r in rows])
        await s.commit()  # ids are filled in by the insert (RETURNING), no re-read needed
    if bus is None or stations is None:
        return
    events = [
        StationCommandCompleted(
            station_id=r.station_id,
            charge_point_id=stations[r.station_id].charge_point_id,
            location_id=stations[r.station_id].location_id,
            at=r.completed_at,
            command_id=r.id or 0,
            name=r.name,
            outcome=r.outcome,
            station_status=r.station_status,
            latency_ms=r.latency_ms,
        )
        for r in rows
    ]
    try:
        await bus.publish(events)
    except BusUnavailable:
        log.warning("command results not announced live: the bus is unavailable")


async def run(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    actor: Actor,
    *,
    station_id: int,
    command: Command,
    timeout_s: float,
    permission: Permission | None = None,
) -> CommandResult:
    """Send one command to one station the caller may command; never raises for the
    station's behaviour (that is the result's outcome). `permission` overrides the
    command's own for services that send on their own account (password rotation)."""
    station = (await _stations(db, actor, [station_id]))[station_id]
    _check(actor, station, command, permission)
    return await send_logged(db, bus, actor, station, command, timeout_s)


async def send_logged(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    actor: Actor,
    station: ChargingStation,
    command: Command,
    timeout_s: float,
) -> CommandResult:
    """Send, then write the command log and audit entry and announce the result — for callers
    that have decided who may act themselves (`run` checks the command's permission first)."""
    result, row = await _send_one(bus, actor, station, command, timeout_s, None)
    await _record(db, actor, [row], bus, {station.id or 0: station})
    return result


async def run_bulk(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    actor: Actor,
    *,
    station_ids: Sequence[int],
    command: Command,
    timeout_s: float,
) -> BulkResult:
    """The same command to many stations at once, one result per station in the order given.

    All or nothing on access: a station the caller may not command fails the whole request
    before anything is sent, so a rollout never half-happens because of a typo in its list.
    """
    unique = list(dict.fromkeys(station_ids))
    if not unique:
        raise InvalidInput("name at least one station")
    if len(unique) > MAX_BULK_STATIONS:
        raise InvalidInput(f"at most {MAX_BULK_STATIONS} stations per bulk command")
    stations = await _stations(db, actor, unique)
    for station in stations.values():
        _check(actor, station, command, None)
    bulk_id = str(uuid.uuid4())
    results = await send_logged_many(
        db, bus, actor, [stations[i] for i in unique], command, timeout_s, bulk_id=bulk_id
    )
    return BulkResult(bulk_id, results)


async def send_logged_many(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    actor: Actor,
    stations: Sequence[ChargingStation],
    command: Command,
    timeout_s: float,
    *,
    bulk_id: str,
) -> list[CommandResult]:
    """`send_logged` for many stations at once (at most BULK_CONCURRENCY in flight), one
    result per station in the order given, their log rows sharing `bulk_id` — the cause a
    reader of the command log sees (a bulk request, a firmware campaign)."""
    gate = asyncio.Semaphore(BULK_CONCURRENCY)

    async def one(station: ChargingStation) -> tuple[CommandResult, StationCommand]:
        async with gate:
            return await _send_one(bus, actor, station, command, timeout_s, bulk_id)

    done = await asyncio.gather(*(one(s) for s in stations))
    await _record(db, actor, [row for _, row in done], bus, {s.id or 0: s for s in stations})
    return [result for result, _ in done]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
