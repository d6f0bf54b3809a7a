"""Every query of remote control, scoped to who asks: the command trail and stored
station configuration are operator data (network:read in the station's organisation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, false, or_, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.auth.principal import Principal
from api.auth.roles import Permission
from api.orgs.repository import Page, page, rows
from schema.control_models import StationCommand, StationConfigurationKey
from schema.models import ChargingStation
from schema.request_models import ChargingRequest, StationFile

Stmt = Select[Any]


def readable_commands(principal: Principal) -> Stmt:
    orgs = principal.organizations_with(Permission.NETWORK_READ)
    stmt = select(StationCommand)
    if orgs is None:
        return stmt
    return stmt.where(col(StationCommand.organization_id).in_(orgs)) if orgs else stmt.where(false())


def readable_requests(principal: Principal) -> Stmt:
    """A driver's own charging requests; an organisation's for holders of sessions:read."""
    stmt = select(ChargingRequest)
    orgs = principal.organizations_with(Permission.SESSIONS_READ)
    if orgs is None:
        return stmt
    conditions = []
    if principal.is_user:
        conditions.append(col(ChargingRequest.user_id) == principal.user_id)
    if orgs:
        conditions.append(col(ChargingRequest.organization_id).in_(orgs))
    return stmt.where(or_(*conditions)) if conditions else stmt.where(false())


async def requests_by_ids(session: AsyncSession, principal: Principal, ids: Sequence[int]) -> dict[int, Any]:
    found = await rows(session, readable_requests(principal).where(col(ChargingRequest.id).in_(list(ids))))
    return {r.id: r for r in found}


def readable_configuration(principal: Principal, station_id: int) -> Stmt:
    orgs = principal.organizations_with(Permission.NETWORK_READ)
    station = select(col(ChargingStation.id)).where(col(ChargingStation.id) == station_id)
    if orgs is not None:
        station = (
            station.where(col(ChargingStation.organization_id).in_(orgs)) if orgs else station.where(false())
        )
    return (
        select(StationConfigurationKey)
        .where(col(StationConfigurationKey.station_id).in_(station.scalar_subquery()))
        .order_by(col(StationConfigurationKey.key))
    )


async def page_commands(
    session: AsyncSession,
    principal: Principal,
    *,
    station_id: int | None,
    organization_id: int | None,
    first: int,
    after: int | None,
    count: bool,
) -> Page:
    stmt = readable_commands(principal)
    if station_id is not None:
        stmt = stmt.where(col(StationCommand.station_id) == station_id)
    if organization_id is not None:
        stmt = stmt.where(col(StationCommand.organization_id) == organization_id)
    return await page(
        session, stmt, col(StationCommand.id), first=first, after=after, newest_first=True, count=count
    )


async def commands_by_ids(session: AsyncSession, principal: Principal, ids: Sequence[int]) -> dict[int, Any]:
    found = await rows(session, readable_commands(principal).where(col(StationCommand.id).in_(list(ids))))
    return {r.id: r for r in found}


def readable_files(principal: Principal) -> Stmt:
    """Uploaded files are diagnostics: stations:diagnose in the station's organisation."""
    orgs = principal.organizations_with(Permission.STATIONS_DIAGNOSE)
    stmt = select(StationFile)
    if orgs is None:
        return stmt
    return stmt.where(col(StationFile.organization_id).in_(orgs)) if orgs else stmt.where(false())


async def station_files(
    session: AsyncSession, principal: Principal, *, station_id: int | None = None, file_id: int | None = None
) -> list[Any]:
    stmt = readable_files(principal)
    if station_id is not None:
        stmt = stmt.where(col(StationFile.station_id) == station_id)
    if file_id is not None:
        stmt = stmt.where(col(StationFile.id) == file_id)
    return await rows(session, stmt.order_by(col(StationFile.id).desc()).limit(100))


async def configuration(session: AsyncSession, principal: Principal, station_id: int) -> list[Any]:
    return await rows(session, readable_configuration(principal, station_id))
