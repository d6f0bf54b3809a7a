"""The worker's job that drives firmware campaigns (one replica at a time, like every
scheduled job).

Each run, for every campaign that has something to do:

1. Stations whose update is under way advance from what their station rows say (see
   `api.firmware.tracking`): a failure status or silence beyond the campaign's timeout fails
   them; Installed (or, with a target version, a boot on that version) completes them. This
   goes on while a campaign is paused or after it was aborted: what was sent is still followed.
2. A running campaign pauses itself when the failed share of a wave (failed or rejected, out of
   the wave's stations not skipped) exceeds `max_failure_percent`. Waves before a resume no
   longer count: the operator who resumed has seen them.
3. Stations that were offline when their wave went out are sent again once their station is
   online, up to MAX_SEND_ATTEMPTS times (then failed). They never hold back the next wave.
   Stations of a claimed wave that a crashed run never sent to are sent too.
4. The next wave goes out when it is due: at once for the first; then `wave_interval_s` after
   the previous one, or — without an interval — when every station of the previous wave has
   finished (installed, failed, rejected, skipped) or is offline. The wave is claimed by a
   conditional update first, so two runs never send it twice.
5. With every wave sent and nothing in flight, the campaign completes once each offline
   station has had `station_timeout_s` since its last attempt to come back; those that did not
   stay `offline`.

Commands go through `api.control.operations.send_logged_many` on behalf of whoever started
or last resumed the campaign, so the command log and audit log show who and why (their
`bulk_id` is `campaign:<id>`); should that person or key no longer hold stations:diagnose in
the organisation, the campaign pauses instead of sending. Every station's step is announced
on the bus as a StationReported (`FirmwareCampaignProgress`), which operators see in
`stationEvents`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit.service import Actor
from api.auth.principal import Principal, PrincipalKind
from api.auth.roles import Permission
from api.control import operations
from api.control.service import CommandOutcome
from api.firmware.repository import FAILURES, FINISHED, IN_FLIGHT, execute, may_still_run
from api.firmware.tracking import progress
from api.worker.processor import is_transient
from schema.bus import Bus
from schema.campaign_models import (
    CampaignState,
    CampaignStationState,
    FirmwareCampaign,
    FirmwareCampaignStation,
)
from schema.commands import UpdateFirmware
from schema.db import session_factory
from schema.errors import BusUnavailable
from schema.events import Event, StationReported
from schema.models import ChargingStation
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

CS = CampaignStationState
# Often enough that a wave follows its predecessor within half a minute; each run is a few
# indexed queries per active campaign.
PROGRESS_INTERVAL_S = 15.0
# An offline station is sent the update again each time it is seen online, this many times in all.
MAX_SEND_ATTEMPTS = 5
# Campaigns advanced per run, oldest first; more wait for the next run (a run sends at most
# one wave each, and campaigns end by themselves, so none waits for ever).
MAX_CAMPAIGNS_PER_RUN = 100
# Stations sent again per campaign and run: a wave's worth of stations coming back at once
# after an outage goes out over a few runs rather than in one burst.
MAX_RESENDS_PER_RUN = 1_000
PROGRESS_ACTION = "FirmwareCampaignProgress"
CFS = FirmwareCampaignStation
ST = ChargingStation


def bulk_id(campaign_id: int) -> str:
    """The command log's cause for a campaign's commands."""
    return f"campaign:{campaign_id}"


@dataclass
class ProgressReport:
    sent: int = 0
    advanced: int = 0
    paused: list[int] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)


async def advance_campaigns(
    engine: AsyncEngine, bus: Bus, *, command_timeout_s: float, now: datetime | None = None
) -> ProgressReport:
    """One run of the job; `now` (default: the clock) decides what is due and what timed out,
    so tests step through waves without waiting for them."""
    now = now or utcnow()
    db = session_factory(engine)
    report = ProgressReport()
    for campaign in await _active(db):
        try:
            await _advance(db, bus, campaign, now, command_timeout_s, report)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.exception("firmware campaign %s could not advance", campaign.id)
    if report.sent or report.advanced or report.paused or report.completed:
        log.info(
            "firmware campaigns: %d commands sent, %d stations advanced, paused %s, completed %s",
            report.sent,
            report.advanced,
            report.paused,
            report.completed,
        )
    return report


async def _active(db: async_sessionmaker[AsyncSession]) -> list[FirmwareCampaign]:
    in_flight = exists().where(
        col(CFS.campaign_id) == col(FirmwareCampaign.id), col(CFS.state).in_([s.value for s in IN_FLIGHT])
    )
    stmt = (
        select(FirmwareCampaign)
        .where(or_(col(FirmwareCampaign.state) == CampaignState.RUNNING.value, in_flight))
        .order_by(col(FirmwareCampaign.id))
        .limit(MAX_CAMPAIGNS_PER_RUN)
    )
    async with db() as s:
        return list((await execute(s, stmt)).scalars().all())


async def _advance(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    c: FirmwareCampaign,
    now: datetime,
    timeout_s: float,
    report: ProgressReport,
) -> None:
    await _track(db, bus, c, now, report)
    if c.state != CampaignState.RUNNING.value:
        return
    if await _over_threshold(db, c, now, report):
        return
    if not await _authority_holds(db, c, now, report):
        return
    await _retry_offline(db, bus, c, now, timeout_s, report)
    if c.current_wave < c.wave_count:
        if await _next_wave_due(db, c, now):
            await _send_wave(db, bus, c, now, timeout_s, report)
        return
    await _complete_if_done(db, c, now, report)


# --- 1. following each station ---


async def _track(
    db: async_sessionmaker[AsyncSession], bus: Bus, c: FirmwareCampaign, now: datetime, report: ProgressReport
) -> None:
    columns: list[Any] = [
        CFS,
        ST.firmware_status,
        ST.firmware_status_at,
        ST.firmware_version,
        ST.last_boot_at,
        ST.charge_point_id,
        ST.location_id,
    ]
    stmt = (
        select(*columns)
        .join(ST, col(ST.id) == col(CFS.station_id))
        .where(col(CFS.campaign_id) == c.id, col(CFS.state).in_([s.value for s in IN_FLIGHT]))
    )
    events: list[Event] = []
    async with db() as s:
        for row in (await execute(s, stmt)).all():
            member: FirmwareCampaignStation = row[0]
            p = progress(member, row, target_version=c.target_version, timeout_s=c.station_timeout_s, now=now)
            before = (
                member.state,
                member.last_firmware_status,
                member.last_firmware_status_at,
                member.message,
            )
            if before == (p.state.value, p.status, p.status_at, p.message):
                continue
            moved = member.state != p.state.value
            member.state, member.last_firmware_status = p.state.value, p.status
            member.last_firmware_status_at, member.message = p.status_at, p.message
            member.updated_at = now
            s.add(member)
            if moved:
                report.advanced += 1
                events.append(_event(c, member, row.charge_point_id, row.location_id))
        await s.commit()
    await _publish(bus, events)


# --- 2. the failure threshold ---


async def _over_threshold(
    db: async_sessionmaker[AsyncSession], c: FirmwareCampaign, now: datetime, report: ProgressReport
) -> bool:
    stmt = (
        select(col(CFS.wave), col(CFS.state), func.count())
        .where(
            col(CFS.campaign_id) == c.id,
            col(CFS.wave) > c.tolerated_wave,
            col(CFS.wave) <= c.current_wave,
        )
        .group_by(col(CFS.wave), col(CFS.state))
    )
    waves: dict[int, dict[str, int]] = {}
    async with db() as s:
        for r in (await execute(s, stmt)).all():
            waves.setdefault(int(r[0]), {})[str(r[1])] = int(r[2])
        for wave, counts in sorted(waves.items()):
            total = sum(n for state, n in counts.items() if state != CS.SKIPPED.value)
            failed = sum(counts.get(state.value, 0) for state in FAILURES)
            if total and failed * 100 > c.max_failure_percent * total:
                reason = (
                    f"wave {wave}: {failed} of {total} stations failed, "
                    f"more than the {c.max_failure_percent}% allowed"
                )
                if await _set_state(s, c, CampaignState.PAUSED, now, paused_reason=reason):
                    await s.commit()
                    report.paused.append(c.id or 0)
                    log.warning("firmware campaign %s paused itself: %s", c.id, reason)
                return True
    return False


async def _set_state(
    s: AsyncSession, c: FirmwareCampaign, state: CampaignState, now: datetime, **values: Any
) -> bool:
    """Move a running campaign on, unless an operator changed its state meanwhile."""
    t = FirmwareCampaign
    result = await execute(
        s,
        update(t)
        .where(col(t.id) == c.id, col(t.state) == CampaignState.RUNNING.value)
        .values(state=state.value, updated_at=now, **values),
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- 3. and 4. sending ---


async def _authority_holds(
    db: async_sessionmaker[AsyncSession], c: FirmwareCampaign, now: datetime, report: ProgressReport
) -> bool:
    """Nothing goes out for someone who may no longer send it: the campaign pauses, and an
    operator who resumes it takes it over."""
    async with db() as s:
        if await may_still_run(s, c, now):
            return True
        reason = f"{c.run_by_label} no longer holds stations:diagnose here; resume to continue"[:200]
        if await _set_state(s, c, CampaignState.PAUSED, now, paused_reason=reason):
            await s.commit()
            report.paused.append(c.id or 0)
            log.warning("firmware campaign %s paused itself: %s", c.id, reason)
    return False


async def _retry_offline(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    c: FirmwareCampaign,
    now: datetime,
    timeout_s: float,
    report: ProgressReport,
) -> None:
    """Offline stations seen online again, and stations of an already claimed wave that were
    never sent to (the run that claimed it died mid-wave: after twice the longest a wave can
    take to send, no run can still be sending it)."""
    back_online = and_(col(CFS.state) == CS.OFFLINE.value, col(ST.online).is_(True))
    orphaned_waves = c.current_wave - 1
    sending_s = math.ceil(c.wave_size / operations.BULK_CONCURRENCY) * timeout_s
    if c.wave_sent_at is not None and now - c.wave_sent_at > timedelta(seconds=2 * sending_s):
        orphaned_waves = c.current_wave
    orphaned = and_(col(CFS.state) == CS.QUEUED.value, col(CFS.wave) <= orphaned_waves)
    stmt = (
        select(CFS)
        .join(ST, col(ST.id) == col(CFS.station_id))
        .where(col(CFS.campaign_id) == c.id, col(CFS.wave) <= c.current_wave, or_(back_online, orphaned))
        .order_by(col(CFS.id))
        .limit(MAX_RESENDS_PER_RUN)
    )
    async with db() as s:
        members: list[FirmwareCampaignStation] = list((await execute(s, stmt)).scalars().all())
    if members:
        await _send(db, bus, c, members, now, timeout_s, report)


async def _next_wave_due(db: async_sessionmaker[AsyncSession], c: FirmwareCampaign, now: datetime) -> bool:
    if c.current_wave == 0:
        return True
    if c.wave_interval_s is not None:
        return c.wave_sent_at is None or now >= c.wave_sent_at + timedelta(seconds=c.wave_interval_s)
    done = [s.value for s in FINISHED] + [CS.OFFLINE.value]
    stmt = select(func.count()).where(
        col(CFS.campaign_id) == c.id, col(CFS.wave) == c.current_wave, col(CFS.state).not_in(done)
    )
    async with db() as s:
        return int((await execute(s, stmt)).scalar_one()) == 0


async def _send_wave(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    c: FirmwareCampaign,
    now: datetime,
    timeout_s: float,
    report: ProgressReport,
) -> None:
    wave = c.current_wave + 1
    t = FirmwareCampaign
    async with db() as s:
        claimed = await execute(
            s,
            update(t)
            .where(
                col(t.id) == c.id,
                col(t.state) == CampaignState.RUNNING.value,
                col(t.current_wave) == wave - 1,
            )
            .values(current_wave=wave, wave_sent_at=now, updated_at=now),
        )
        await s.commit()
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return  # paused, aborted or sent by another run meanwhile
        members: list[FirmwareCampaignStation] = list(
            (
                await execute(
                    s,
                    select(CFS).where(
                        col(CFS.campaign_id) == c.id, col(CFS.wave) == wave, col(CFS.state) == CS.QUEUED.value
                    ),
                )
            )
            .scalars()
            .all()
        )
    c.current_wave, c.wave_sent_at = wave, now
    log.info("firmware campaign %s: wave %d of %d to %d stations", c.id, wave, c.wave_count, len(members))
    await _send(db, bus, c, members, now, timeout_s, report)


def _campaign_actor(c: FirmwareCampaign) -> Actor:
    """Whoever started or last resumed the campaign, holding exactly what UpdateFirmware needs
    in its organisation (checked by `may_still_run` before anything is sent): the command and
    audit logs name them, and the campaign as bulk id."""
    principal = Principal(
        PrincipalKind(c.run_by_kind or PrincipalKind.PLATFORM.value),
        user_id=c.run_by_user_id,
        api_key_id=c.run_by_api_key_id,
        grants={c.organization_id: frozenset({Permission.STATIONS_DIAGNOSE})},
    )
    return Actor(principal)


# What each command outcome makes of the station: refusals are final, not reaching it is retried.
SEND_OUTCOMES = {
    CommandOutcome.ACCEPTED: CS.SENT,
    CommandOutcome.REJECTED: CS.REJECTED,
    CommandOutcome.NOT_SUPPORTED: CS.REJECTED,
    CommandOutcome.STATION_OFFLINE: CS.OFFLINE,
    CommandOutcome.TIMED_OUT: CS.OFFLINE,
    CommandOutcome.FAILED: CS.OFFLINE,
}


async def _send(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    c: FirmwareCampaign,
    members: Sequence[FirmwareCampaignStation],
    now: datetime,
    timeout_s: float,
    report: ProgressReport,
) -> None:
    if not members:
        return  # a wave of stations all skipped up front
    ids = [m.station_id for m in members]
    query = select(ST).where(col(ST.id).in_(ids), col(ST.organization_id) == c.organization_id)
    async with db() as s:
        found: list[ChargingStation] = list((await execute(s, query)).scalars().all())
    stations = {st.id: st for st in found}
    reachable = [m for m in members if m.station_id in stations]
    command = UpdateFirmware(
        location=c.location,
        retrieve_at=utcnow(),  # the station's clock, not the job's `now`
        retries=c.retries,
        retry_interval_s=c.retry_interval_s,
    )
    results = await operations.send_logged_many(
        db,
        bus,
        _campaign_actor(c),
        [stations[m.station_id] for m in reachable],
        command,
        timeout_s,
        bulk_id=bulk_id(c.id or 0),
    )
    report.sent += len(results)
    events: list[Event] = []
    async with db() as s:
        for m in members:
            if m.station_id not in stations:
                m.state, m.message = CS.SKIPPED.value, "the station left the organisation"
            m.updated_at = now
        for m, result in zip(reachable, results, strict=True):
            state = SEND_OUTCOMES[result.outcome]
            m.attempts += 1
            if state is CS.OFFLINE and m.attempts >= MAX_SEND_ATTEMPTS:
                state = CS.FAILED
            m.state = state.value
            m.message = None if state is CS.SENT else result.message[:200]
            if result.command is not None:
                m.command_id = result.command.id
                m.sent_at = result.command.requested_at
            st = stations[m.station_id]
            events.append(_event(c, m, st.charge_point_id, st.location_id))
        s.add_all(members)
        await s.commit()
    await _publish(bus, events)


# --- 5. the end ---


async def _complete_if_done(
    db: async_sessionmaker[AsyncSession], c: FirmwareCampaign, now: datetime, report: ProgressReport
) -> None:
    open_states = [CS.QUEUED.value, *(s.value for s in IN_FLIGHT)]
    waiting = or_(
        col(CFS.state).in_(open_states),
        and_(
            col(CFS.state) == CS.OFFLINE.value,
            col(CFS.sent_at) > now - timedelta(seconds=c.station_timeout_s),
        ),
    )
    async with db() as s:
        count = select(func.count()).where(col(CFS.campaign_id) == c.id, waiting)
        left: int = (await execute(s, count)).scalar_one()
        if left:
            return
        if await _set_state(s, c, CampaignState.COMPLETED, now, finished_at=now):
            await execute(
                s,
                update(CFS)
                .where(col(CFS.campaign_id) == c.id, col(CFS.state) == CS.OFFLINE.value)
                .values(message="offline until the campaign ended", updated_at=now),
            )
            await s.commit()
            report.completed.append(c.id or 0)
            log.info("firmware campaign %s completed", c.id)


# --- announcing ---


def _event(
    c: FirmwareCampaign, m: FirmwareCampaignStation, charge_point_id: str, location_id: int | None
) -> Event:
    return StationReported(
        station_id=m.station_id,
        charge_point_id=charge_point_id,
        location_id=location_id,
        at=utcnow(),
        action=PROGRESS_ACTION,
        detail={
            "campaign_id": c.id,
            "campaign": c.name,
            "wave": m.wave,
            "state": m.state,
            "firmware_status": m.last_firmware_status,
            "message": m.message,
        },
    )


async def _publish(bus: Bus, events: list[Event]) -> None:
    if not events:
        return
    try:
        await bus.publish(events)
    except BusUnavailable:
        log.warning("firmware campaign progress not announced live: the bus is unavailable")
