"""Every read of incidents for the API, scoped by who asks: operators with network:read see
their organisations' incidents; nobody else sees any (drivers hold no network:read)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, false, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.auth.principal import Principal
from api.auth.roles import Permission
from api.orgs.repository import Page, Stmt, by_ids, page, rows
from schema.account_models import UserAccount
from schema.incident_models import Incident, IncidentEntry, IncidentState
from schema.models import ChargingStation


def readable_incidents(principal: Principal) -> Stmt:
    stmt = select(Incident)
    orgs = principal.organizations_with(Permission.NETWORK_READ)
    if orgs is None:
        return stmt
    return stmt.where(col(Incident.organization_id).in_(orgs)) if orgs else stmt.where(false())


async def incidents_by_ids(s: AsyncSession, principal: Principal, ids: Sequence[int]) -> dict[int, Row[Any]]:
    return await by_ids(s, readable_incidents(principal), col(Incident.id), ids)


async def page_incidents(
    s: AsyncSession,
    principal: Principal,
    *,
    organization_id: int | None,
    states: Sequence[str],
    severities: Sequence[str],
    kinds: Sequence[str],
    station_id: int | None,
    first: int,
    after: int | None,
    count: bool,
) -> Page:
    """Newest first (ids grow with time)."""
    stmt = readable_incidents(principal)
    if organization_id is not None:
        stmt = stmt.where(col(Incident.organization_id) == organization_id)
    if states:
        stmt = stmt.where(col(Incident.state).in_(list(states)))
    if severities:
        stmt = stmt.where(col(Incident.severity).in_(list(severities)))
    if kinds:
        stmt = stmt.where(col(Incident.kind).in_(list(kinds)))
    if station_id is not None:
        stmt = stmt.where(col(Incident.station_id) == station_id)
    return await page(s, stmt, col(Incident.id), first=first, after=after, newest_first=True, count=count)


async def entries_by_incident_ids(
    s: AsyncSession, principal: Principal, ids: Sequence[int]
) -> dict[int, list[Row[Any]]]:
    """Each readable incident's timeline, oldest first, with the name of who acted."""
    readable = (
        readable_incidents(principal)
        .where(col(Incident.id).in_(list(ids)))
        .with_only_columns(col(Incident.id))
    )
    stmt: Stmt = (
        select(IncidentEntry, col(UserAccount.display_name).label("user_name"))
        .outerjoin(UserAccount, col(UserAccount.id) == col(IncidentEntry.user_id))
        .where(col(IncidentEntry.incident_id).in_(readable))
        .order_by(col(IncidentEntry.incident_id), col(IncidentEntry.at), col(IncidentEntry.id))
    )
    out: dict[int, list[Row[Any]]] = {}
    for r in await rows(s, stmt):
        out.setdefault(r.incident_id, []).append(r)
    return out


async def unresolved_alerts(s: AsyncSession, organization_id: int, limit: int) -> list[Row[Any]]:
    """The organisation's unresolved incidents, newest first, with their station's charge
    point id: what a fleet screen shows before the first change arrives. Callers authorise."""
    stmt: Stmt = (
        select(Incident, col(ChargingStation.charge_point_id))
        .join(ChargingStation, col(ChargingStation.id) == col(Incident.station_id))
        .where(
            col(Incident.organization_id) == organization_id,
            col(Incident.state) != IncidentState.RESOLVED.value,
        )
        .order_by(col(Incident.id).desc())
        .limit(limit)
    )
    return await rows(s, stmt)
