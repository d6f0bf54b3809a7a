"""Keeping each station's local authorization list equal to its organisation's tokens.

`sync_station` brings one station up to date:

1. A station that does not keep a list (no LocalAuthListManagement in 1.6, no
   LocalAuthListCtrlr in 2.0.1, or the list switched off) is skipped with that reason.
2. GetLocalListVersion first, always: it is cheap, and it is the only way to notice that the
   station lost or replaced its list (a factory reset, another CSMS, an operator on site).
3. If ChargeNet has never installed a list there, or the station's version differs from the
   one ChargeNet installed, or the caller asks for it: a Full update. Otherwise a Differential
   one with just the tokens added, changed or removed since the installed snapshot; nothing
   to send means the station is up to date.
4. Versions rise from the larger of the station's and ChargeNet's: installed + 1 per message.
   A list longer than the station takes per message (SendLocalListMaxLength / ItemsPerMessage)
   goes as several messages, each with its own version (a Full with the first part, then
   Differentials); a list longer than the station holds is cut (entries.py says how).
5. VersionMismatch to a Differential (the station moved on without us): one Full resend.
   Failed, Rejected, a timeout or an offline station leave the update pending; the worker
   retries (api/localauth/jobs.py). What the station accepted before a failure is kept: the
   snapshot follows each accepted message.

Every command goes through `api.control.operations.send_logged`, so the command log and audit
log show each GetLocalListVersion and SendLocalList, with the operator or "system" (the
worker) as the actor. One sync per station at a time in this process; across processes the
version check of step 2 catches an interleaving, at the price of a Full update.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit.service import Actor
from api.auth.principal import Principal
from api.auth.roles import Permission
from api.control import operations
from api.control.service import CommandOutcome
from api.localauth import capability, entries
from api.localauth import repository as repo
from api.localauth.entries import ListEntry
from api.network import repository as network
from schema.bus import Bus
from schema.commands import GetLocalListVersion, SendLocalList, UpdateType
from schema.errors import Forbidden, InvalidInput, NotFound
from schema.local_auth_models import LocalAuthListState
from schema.models import ChargingStation
from schema.timeutil import utcnow

# Stations per syncLocalAuthList request: each sync is a few round trips; a larger rollout is
# the worker's job (every managed station follows its organisation's tokens by itself).
MAX_STATIONS_PER_REQUEST = 100
# Syncs in flight at once for one request or worker run.
SYNC_CONCURRENCY = 10
MAX_MESSAGE_CHARS = 300
VERSION_MISMATCH = "VersionMismatch"


class SyncOutcome(StrEnum):
    UPDATED = "UPDATED"  # the station now holds the organisation's list
    UP_TO_DATE = "UP_TO_DATE"  # it already did: nothing sent but the version check
    NOT_SUPPORTED = "NOT_SUPPORTED"  # the station keeps no local list (or has it switched off)
    STATION_OFFLINE = "STATION_OFFLINE"
    TIMED_OUT = "TIMED_OUT"
    FAILED = "FAILED"  # the station refused (Failed, Rejected) or the command could not run


# After these the update is still owed: the worker retries.
RETRIED = frozenset({SyncOutcome.STATION_OFFLINE, SyncOutcome.TIMED_OUT, SyncOutcome.FAILED})


@dataclass(frozen=True, slots=True)
class SyncResult:
    station_id: int
    outcome: SyncOutcome
    message: str
    update_type: UpdateType | None = None
    # The version the station holds afterwards, as far as ChargeNet knows.
    version: int | None = None
    entries_sent: int = 0
    messages_sent: int = 0
    # Tokens of the organisation not on the list (too long for the station, over its maximum).
    left_out: int = 0

    @property
    def pending(self) -> bool:
        return self.outcome in RETRIED


@dataclass(frozen=True, slots=True)
class ListStatus:
    station_id: int
    managed: bool
    version: int | None = None
    entry_count: int = 0
    synced_at: datetime | None = None
    attempted_at: datetime | None = None
    pending: bool = False
    last_result: str | None = None
    last_message: str | None = None


# One sync per station at a time in this process (the worker and an operator may meet). One
# small lock per station ever synced here: bounded by the fleet size.
_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)


def _from_command(result: operations.CommandResult) -> tuple[SyncOutcome, str]:
    if result.outcome is CommandOutcome.NOT_SUPPORTED or result.station_status == "NotSupported":
        return SyncOutcome.NOT_SUPPORTED, "this station does not support local authorization lists"
    if result.outcome is CommandOutcome.STATION_OFFLINE:
        return SyncOutcome.STATION_OFFLINE, result.message
    if result.outcome is CommandOutcome.TIMED_OUT:
        return SyncOutcome.TIMED_OUT, result.message
    return SyncOutcome.FAILED, result.message


class _Sync:
    """One station's sync: the facts read once, the messages sent, the snapshot kept."""

    def __init__(
        self,
        db: async_sessionmaker[AsyncSession],
        bus: Bus,
        actor: Actor,
        station: ChargingStation,
        timeout_s: float,
    ) -> None:
        self.db, self.bus, self.actor, self.station, self.timeout_s = db, bus, actor, station, timeout_s
        self.station_id = station.id or 0
        self.started = utcnow()
        self.installed: dict[str, ListEntry] = {}
        self.loaded = False  # `installed` holds the stored snapshot
        self.version: int | None = None
        self.entries_sent = 0
        self.messages_sent = 0
        self.left_out = 0

    async def run(self, *, full: bool) -> SyncResult:
        async with self.db() as s:
            config = await repo.configuration(s, self.station_id, capability.KEYS)
            state = await repo.state(s, self.station_id)
        known = None if state is None else state.version
        self.version = known
        limits = capability.limits_of(self.station, config)
        if not limits.supported:
            return await self.finish(SyncOutcome.NOT_SUPPORTED, limits.reason)
        asked = await self.send(GetLocalListVersion())
        if asked.outcome is not CommandOutcome.ACCEPTED:
            return await self.finish(*_from_command(asked))
        on_station = int(asked.detail.get("version", 0))
        if on_station < 0:  # 1.6 §5.10: -1 means the list is switched off
            return await self.finish(
                SyncOutcome.NOT_SUPPORTED, "the local authorization list is switched off on the station"
            )
        async with self.db() as s:
            tokens = await repo.organization_tokens(s, self.station.organization_id)
            self.installed = await repo.installed(s, self.station_id)
        self.loaded = True
        desired = entries.desired_entries(
            tokens, now=self.started, max_id_length=limits.max_id_length, max_entries=limits.max_entries
        )
        self.left_out = desired.left_out
        base = max(on_station, known or 0)
        if not full and known is not None and known == on_station:
            updates = entries.changes(self.installed, desired.entries)
            if not updates:
                return await self.finish(SyncOutcome.UP_TO_DATE, "the station's list is up to date")
            plan = entries.differential_plan(updates, base_version=base, per_message=limits.per_message)
            outcome = await self.send_plan(plan)
            if outcome is None:
                return await self.finish(
                    SyncOutcome.UPDATED, "differential update accepted", UpdateType.DIFFERENTIAL
                )
            if outcome.station_status != VERSION_MISMATCH:
                return await self.finish(*_from_command(outcome), update_type=UpdateType.DIFFERENTIAL)
            base = max(base, self.version or 0) + 1  # the station is past what we sent
        plan = entries.full_plan(desired.entries, base_version=base, per_message=limits.per_message)
        outcome = await self.send_plan(plan)
        if outcome is None:
            return await self.finish(SyncOutcome.UPDATED, "full update accepted", UpdateType.FULL)
        return await self.finish(*_from_command(outcome), update_type=UpdateType.FULL)

    async def send(self, command: GetLocalListVersion | SendLocalList) -> operations.CommandResult:
        return await operations.send_logged(
            self.db, self.bus, self.actor, self.station, command, self.timeout_s
        )

    async def send_plan(self, plan: Sequence[SendLocalList]) -> operations.CommandResult | None:
        """Send the messages in order; the failing command's result, or None when all passed."""
        for command in plan:
            result = await self.send(command)
            if result.outcome is not CommandOutcome.ACCEPTED:
                return result
            self.installed = entries.apply(self.installed, command)
            self.version = command.version
            self.entries_sent += len(command.entries)
            self.messages_sent += 1
            async with self.db() as s:
                await repo.apply_to_installed(s, self.station_id, command)
                await self._save(s, version=self.version)
                await s.commit()
        return None

    async def _save(self, s: AsyncSession, **values: Any) -> LocalAuthListState:
        row = await repo.state(s, self.station_id) or LocalAuthListState(station_id=self.station_id)
        for name, value in values.items():
            setattr(row, name, value)
        if self.loaded:
            row.entry_count = len(self.installed)
        row.attempted_at = self.started
        s.add(row)
        return row

    async def finish(
        self, outcome: SyncOutcome, message: str, update_type: UpdateType | None = None
    ) -> SyncResult:
        result = SyncResult(
            station_id=self.station_id,
            outcome=outcome,
            message=message,
            update_type=update_type,
            version=self.version,
            entries_sent=self.entries_sent,
            messages_sent=self.messages_sent,
            left_out=self.left_out,
        )
        done = outcome in (SyncOutcome.UPDATED, SyncOutcome.UP_TO_DATE)
        async with self.db() as s:
            values: dict[str, Any] = {
                "last_result": outcome.value,
                "last_message": message[:MAX_MESSAGE_CHARS],
                "pending": result.pending,
            }
            if done:
                values["synced_at"] = utcnow()
            await self._save(s, **values)
            await s.commit()
        return result


async def sync_station(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    actor: Actor,
    station: ChargingStation,
    *,
    full: bool = False,
    timeout_s: float,
) -> SyncResult:
    """Bring one station's list up to date (see the module docstring); never raises for the
    station's behaviour. The caller has checked that `actor` may control the station."""
    async with _locks[station.id or 0]:
        return await _Sync(db, bus, actor, station, timeout_s).run(full=full)


async def sync_many(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    actor: Actor,
    stations: Sequence[ChargingStation],
    *,
    full: bool = False,
    timeout_s: float,
) -> list[SyncResult]:
    gate = asyncio.Semaphore(SYNC_CONCURRENCY)

    async def one(station: ChargingStation) -> SyncResult:
        async with gate:
            return await sync_station(db, bus, actor, station, full=full, timeout_s=timeout_s)

    return list(await asyncio.gather(*(one(st) for st in stations)))


async def sync_stations(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    actor: Actor,
    *,
    station_ids: Sequence[int],
    full: bool = False,
    timeout_s: float,
) -> list[SyncResult]:
    """An operator's sync of several stations, one result each in the order given. All or
    nothing on access (as bulk commands): one station the caller may not control refuses the
    request before anything is sent. The first sync puts a station under management: from then
    on the worker keeps it in step by itself."""
    unique = list(dict.fromkeys(station_ids))
    if not unique:
        raise InvalidInput("name at least one station")
    if len(unique) > MAX_STATIONS_PER_REQUEST:
        raise InvalidInput(f"at most {MAX_STATIONS_PER_REQUEST} stations per request")
    async with db() as s:
        found = await network.stations_by_ids(s, actor.principal, unique)
    missing = [i for i in unique if i not in found]
    if missing:
        raise NotFound("no such station" if len(unique) == 1 else f"no such stations: {missing[:10]}")
    for station in found.values():
        if not actor.principal.can(Permission.STATIONS_CONTROL, station.organization_id):
            raise Forbidden("requires stations:control at this station's organisation")
    return await sync_many(db, bus, actor, [found[i] for i in unique], full=full, timeout_s=timeout_s)


async def list_status(
    db: async_sessionmaker[AsyncSession], principal: Principal, station_id: int
) -> ListStatus:
    """What ChargeNet knows of a station's list; stations:diagnose at its organisation."""
    async with db() as s:
        station = (await network.stations_by_ids(s, principal, [station_id])).get(station_id)
        if station is None:
            raise NotFound("no such station")
        if not principal.can(Permission.STATIONS_DIAGNOSE, station.organization_id):
            raise Forbidden("requires stations:diagnose at this station's organisation")
        row = await repo.state(s, station_id)
    if row is None:
        return ListStatus(station_id=station_id, managed=False)
    return ListStatus(
        station_id=station_id,
        managed=True,
        version=row.version,
        entry_count=row.entry_count,
        synced_at=row.synced_at,
        attempted_at=row.attempted_at,
        pending=row.pending,
        last_result=row.last_result,
        last_message=row.last_message,
    )
