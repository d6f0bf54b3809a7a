"""What people do with incidents: acknowledge, comment, resolve (stations:control or
workorders:manage in the incident's organisation). Each action commits, is audited — a
refused or failed one too, with its error code — and is announced on `fleetAlerts`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit import service as audit
from api.audit.service import Actor
from api.auth.roles import Permission
from api.service import incident_repository as repo
from api.service import incidents
from api.service.errors import IncidentStateConflict
from api.service.incidents import IncidentChange
from api.service.offline import publish
from schema.bus import Bus
from schema.errors import ChargeNetError, Forbidden, InvalidInput, NotFound
from schema.incident_models import IncidentState
from schema.timeutil import utcnow

# Who may act on an incident: whoever runs the stations, or maintains them.
ACTING_PERMISSIONS = (Permission.STATIONS_CONTROL, Permission.WORK_ORDERS)
MAX_RESOLUTION = 500

Step = Callable[[AsyncConnection, int], Awaitable[IncidentChange]]


async def acknowledge(
    db: async_sessionmaker[AsyncSession], bus: Bus, actor: Actor, incident_id: int
) -> Row[Any]:
    async def step(conn: AsyncConnection, user_id: int) -> IncidentChange:
        return await incidents.acknowledge(conn, incident_id, at=utcnow(), user_id=user_id)

    return await _act(
        db, bus, actor, incident_id, "incident.acknowledge", step, {}, frozenset({IncidentState.OPEN})
    )


async def comment(
    db: async_sessionmaker[AsyncSession], bus: Bus, actor: Actor, incident_id: int, text: str
) -> Row[Any]:
    async def step(conn: AsyncConnection, user_id: int) -> IncidentChange:
        return await incidents.comment(conn, incident_id, at=utcnow(), user_id=user_id, text=text)

    return await _act(db, bus, actor, incident_id, "incident.comment", step, {"chars": len(text)})


async def resolve(
    db: async_sessionmaker[AsyncSession], bus: Bus, actor: Actor, incident_id: int, resolution: str
) -> Row[Any]:
    body = resolution.strip()
    if not body or len(body) > MAX_RESOLUTION:
        raise InvalidInput(f"a resolution needs 1–{MAX_RESOLUTION} characters")

    async def step(conn: AsyncConnection, user_id: int) -> IncidentChange:
        return await incidents.resolve(conn, incident_id, at=utcnow(), user_id=user_id, resolution=body)

    unresolved = frozenset({IncidentState.OPEN, IncidentState.ACKNOWLEDGED})
    return await _act(db, bus, actor, incident_id, "incident.resolve", step, {"resolution": body}, unresolved)


async def _act(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    actor: Actor,
    incident_id: int,
    action: str,
    step: Step,
    detail: dict[str, Any],
    states: frozenset[str] = frozenset(IncidentState),
) -> Row[Any]:
    principal = actor.principal
    org: int | None = None
    try:
        async with db() as s:
            found = (await repo.incidents_by_ids(s, principal, [incident_id])).get(incident_id)
            if found is None:
                raise NotFound("no such incident")
            org = found.organization_id
            if not any(principal.can(p, org) for p in ACTING_PERMISSIONS):
                raise Forbidden("requires stations:control or workorders:manage in its organisation")
            if principal.user_id is None:
                raise Forbidden("a personal account is required: the timeline says who acted")
            if found.state not in states:
                raise IncidentStateConflict(f"the incident is {found.state}")
            change = await step(await s.connection(), principal.user_id)
            await s.commit()
            row = (await repo.incidents_by_ids(s, principal, [incident_id]))[incident_id]
    except ChargeNetError as exc:
        await _audit(db, actor, action, exc.code, org, incident_id, detail)
        raise
    await _audit(db, actor, action, "OK", org, incident_id, detail)
    await publish(bus, [change.event])
    return row


async def _audit(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    action: str,
    result: str,
    org: int | None,
    incident_id: int,
    detail: dict[str, Any],
) -> None:
    await audit.record(
        db,
        audit.entry(
            actor,
            action=action,
            result=result,
            organization_id=org,
            target_type="incident",
            target_id=incident_id,
            detail=detail,
        ),
    )
