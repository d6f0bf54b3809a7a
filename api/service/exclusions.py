"""Operators classify outages as excluded from uptime (23 CFR 680.116(b)(2): utility
interruptions, vehicle faults, scheduled maintenance, vandalism, natural disasters).

An exclusion is an interval on one port or on every port of a station, not a flag on one
outage: a storm that cut the power for six hours covers whatever outages the ports had then.
It is never deleted; revoking stamps who and when, and both actions land in the audit log in
the same transaction as the change, so the figure and its justification cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit import service as audit
from api.audit.service import Actor
from api.auth.principal import Principal
from api.auth.roles import Permission
from api.service import uptime_repository as repo
from schema.errors import Forbidden, InvalidInput, NotFound
from schema.incident_models import ExclusionReason, OutageExclusion
from schema.timeutil import utcnow

# Classifying outages is maintenance work: operators (stations:control) and technicians
# (workorders:manage) do it; viewers and finance only read the result.
CLASSIFIERS = (Permission.STATIONS_CONTROL, Permission.WORK_ORDERS)
MAX_NOTE = 500
# A natural disaster can keep a site dark for months; more than a year in one stroke is a typo.
MAX_EXCLUSION = timedelta(days=366)


@dataclass(frozen=True, slots=True)
class ExclusionRequest:
    station_id: int
    connector_id: int | None
    start: datetime
    end: datetime
    reason: ExclusionReason
    note: str | None


def may_classify(principal: Principal, organization_id: int | None) -> bool:
    return any(principal.can(p, organization_id) for p in CLASSIFIERS)


def _note(note: str | None) -> str | None:
    if note is None:
        return None
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"note: at most {MAX_NOTE} characters")
    return note or None


def _check(request: ExclusionRequest) -> None:
    if request.start.tzinfo is None or request.end.tzinfo is None:
        raise InvalidInput("start and end need a time zone offset")
    if request.end <= request.start:
        raise InvalidInput("end must be after start")
    if request.end - request.start > MAX_EXCLUSION:
        raise InvalidInput(f"an exclusion spans at most {MAX_EXCLUSION.days} days")


async def exclude(
    db: async_sessionmaker[AsyncSession], actor: Actor, request: ExclusionRequest
) -> OutageExclusion:
    """Record the exclusion; a station the caller cannot see is NOT_FOUND, one it can see but
    not classify is FORBIDDEN."""
    _check(request)
    note = _note(request.note)
    async with db() as s:
        conn = await s.connection()
        station = await repo.station(conn, request.station_id)
        principal = actor.principal
        if station is None or not principal.can(Permission.NETWORK_READ, station.organization_id):
            raise NotFound("no such station")
        if not may_classify(principal, station.organization_id):
            raise Forbidden("requires stations:control or workorders:manage at this organisation")
        if request.connector_id is not None and not await repo.connector_exists(
            conn, request.station_id, request.connector_id
        ):
            raise NotFound("no such connector on this station")
        row = OutageExclusion(
            organization_id=station.organization_id,
            station_id=request.station_id,
            connector_id=request.connector_id,
            started_at=request.start,
            ended_at=request.end,
            reason=request.reason.value,
            note=note,
            created_by=principal.user_id,
        )
        s.add(row)
        await s.flush()
        s.add(
            audit.entry(
                actor,
                action="uptime.exclude",
                result="OK",
                organization_id=station.organization_id,
                target_type="outage_exclusion",
                target_id=row.id,
                detail={
                    "station": station.charge_point_id,
                    "connector": request.connector_id,
                    "start": request.start.isoformat(),
                    "end": request.end.isoformat(),
                    "reason": request.reason.value,
                    "note": note,
                },
            )
        )
        await s.commit()
        return row


async def revoke(
    db: async_sessionmaker[AsyncSession], actor: Actor, exclusion_id: int, note: str | None
) -> OutageExclusion:
    """Withdraw an exclusion: its minutes count against uptime again. Revoking twice is an
    input error, so the audit log never shows a withdrawal that changed nothing."""
    note = _note(note)
    async with db() as s:
        row = await s.get(OutageExclusion, exclusion_id)
        principal = actor.principal
        if row is None or not principal.can(Permission.NETWORK_READ, row.organization_id):
            raise NotFound("no such exclusion")
        if not may_classify(principal, row.organization_id):
            raise Forbidden("requires stations:control or workorders:manage at this organisation")
        if row.revoked_at is not None:
            raise InvalidInput("this exclusion was revoked already")
        row.revoked_at = utcnow()
        row.revoked_by = principal.user_id
        s.add(row)
        s.add(
            audit.entry(
                actor,
                action="uptime.revoke_exclusion",
                result="OK",
                organization_id=row.organization_id,
                target_type="outage_exclusion",
                target_id=row.id,
                detail={"note": note, "reason": row.reason},
            )
        )
        await s.commit()
        await s.refresh(row)
        return row
