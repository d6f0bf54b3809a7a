"""Every query of configuration templates, drift and the device model, scoped to who asks.

Templates and the configuration they are compared with are diagnostics: `stations:diagnose`
in the template's (and the station's) organisation. Statements built here cannot return
another tenant's template, entries, stored configuration or device model, whatever ids they
are given.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, Select, delete, false, func, insert, tuple_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.auth.principal import Principal
from api.auth.roles import Permission
from api.orgs.repository import Page, page, rows
from schema.control_models import StationConfigurationKey
from schema.device_models import DeviceModelVariable
from schema.models import ChargingStation
from schema.template_models import ConfigurationTemplate, ConfigurationTemplateEntry

Stmt = Select[Any]
T = ConfigurationTemplate
E = ConfigurationTemplateEntry
DM = DeviceModelVariable


def _scoped(stmt: Stmt, org_col: Any, orgs: frozenset[int] | None) -> Stmt:
    if orgs is None:
        return stmt
    return stmt.where(org_col.in_(orgs)) if orgs else stmt.where(false())


def readable_templates(principal: Principal) -> Stmt:
    orgs = principal.organizations_with(Permission.STATIONS_DIAGNOSE)
    return _scoped(select(T), col(T.organization_id), orgs)


def diagnosable_stations(principal: Principal) -> Stmt:
    orgs = principal.organizations_with(Permission.STATIONS_DIAGNOSE)
    return _scoped(select(ChargingStation), col(ChargingStation.organization_id), orgs)


async def page_templates(
    session: AsyncSession,
    principal: Principal,
    *,
    organization_id: int | None,
    first: int,
    after: int | None,
    count: bool,
) -> Page:
    stmt = readable_templates(principal)
    if organization_id is not None:
        stmt = stmt.where(col(T.organization_id) == organization_id)
    return await page(session, stmt, col(T.id), first=first, after=after, newest_first=False, count=count)


async def templates_by_ids(session: AsyncSession, principal: Principal, ids: Sequence[int]) -> dict[int, Any]:
    found = await rows(session, readable_templates(principal).where(col(T.id).in_(list(ids))))
    return {r.id: r for r in found}


async def entries_of(session: AsyncSession, template_ids: Sequence[int]) -> dict[int, list[Row[Any]]]:
    """The entries of templates the caller has already been allowed to read."""
    found = await rows(
        session, select(E).where(col(E.template_id).in_(list(template_ids))).order_by(col(E.key))
    )
    by_template: dict[int, list[Row[Any]]] = defaultdict(list)
    for r in found:
        by_template[r.template_id].append(r)
    return by_template


async def templates_for_models(
    session: AsyncSession, models: set[tuple[int | None, str | None, str | None]]
) -> list[Row[Any]]:
    """Every template of these (organisation, vendor, model) triples: the candidates among
    which each station's governing template is chosen."""
    triples = [(o, v, m) for o, v, m in models if o is not None and v is not None and m is not None]
    if not triples:
        return []
    stmt = select(T).where(
        tuple_(col(T.organization_id), col(T.vendor), col(T.model)).in_(triples)  # type: ignore[arg-type]
    )
    return await rows(session, stmt.order_by(col(T.id)))


async def stations_of_model(session: AsyncSession, template: Any, *, limit: int) -> list[Row[Any]]:
    """Stations of the template's organisation with its vendor and model (firmware is checked
    by the caller, with the other templates that may govern them)."""
    stmt = (
        select(ChargingStation)
        .where(
            col(ChargingStation.organization_id) == template.organization_id,
            col(ChargingStation.vendor) == template.vendor,
            col(ChargingStation.model) == template.model,
        )
        .order_by(col(ChargingStation.id))
        .limit(limit)
    )
    return await rows(session, stmt)


async def stored_configuration(
    session: AsyncSession, station_ids: Sequence[int], keys: set[str]
) -> dict[int, list[Row[Any]]]:
    """Stored configuration of stations the caller has already been allowed to diagnose, only
    the `keys` (lower case) a template asks about: a fleet's full configuration is ~50 rows a
    station, a template a handful."""
    if not keys:
        return {}
    stmt = select(StationConfigurationKey).where(
        col(StationConfigurationKey.station_id).in_(list(station_ids)),
        func.lower(col(StationConfigurationKey.key)).in_(sorted(keys)),
    )
    by_station: dict[int, list[Row[Any]]] = defaultdict(list)
    for r in await rows(session, stmt):
        by_station[r.station_id].append(r)
    return by_station


async def stations(session: AsyncSession, ids: Sequence[int]) -> list[Row[Any]]:
    """Stations by id for the worker, which acts for no caller."""
    return await rows(session, select(ChargingStation).where(col(ChargingStation.id).in_(list(ids))))


async def diagnosable_station(
    session: AsyncSession, principal: Principal, station_id: int
) -> Row[Any] | None:
    found = await rows(session, diagnosable_stations(principal).where(col(ChargingStation.id) == station_id))
    return found[0] if found else None


# --- writes (one mutation's session; the mutation commits) ---


async def name_taken(
    session: AsyncSession, organization_id: int, name: str, *, but: int | None = None
) -> bool:
    stmt = select(T.id).where(
        col(T.organization_id) == organization_id, func.lower(col(T.name)) == name.lower()
    )
    if but is not None:
        stmt = stmt.where(col(T.id) != but)
    return (await session.exec(stmt.limit(1))).first() is not None


async def replace_entries(session: AsyncSession, template_id: int, entries: list[dict[str, Any]]) -> None:
    await session.exec(delete(E).where(col(E.template_id) == template_id))  # type: ignore[call-overload]
    if entries:
        await session.exec(insert(E), params=[{"template_id": template_id, **e} for e in entries])  # type: ignore[call-overload]


async def delete_template(session: AsyncSession, template_id: int) -> None:
    await session.exec(delete(E).where(col(E.template_id) == template_id))  # type: ignore[call-overload]
    await session.exec(delete(T).where(col(T.id) == template_id))  # type: ignore[call-overload]


# --- the device model ---


async def device_model(
    session: AsyncSession,
    principal: Principal,
    station_id: int,
    *,
    component: str | None,
    variable: str | None,
    limit: int,
) -> list[Row[Any]]:
    """The station's stored device model in address order, at most `limit` attributes."""
    orgs = principal.organizations_with(Permission.STATIONS_DIAGNOSE)
    station: Stmt = _scoped(
        select(col(ChargingStation.id)).where(col(ChargingStation.id) == station_id),  # type: ignore[arg-type]
        col(ChargingStation.organization_id),
        orgs,
    )
    stmt = select(DM).where(col(DM.station_id).in_(station.scalar_subquery()))
    if component:
        stmt = stmt.where(func.lower(col(DM.component_name)) == component.strip().lower())
    if variable:
        stmt = stmt.where(func.lower(col(DM.variable_name)) == variable.strip().lower())
    order = (
        col(DM.component_name),
        col(DM.component_instance),
        col(DM.evse_id),
        col(DM.connector_id),
        col(DM.variable_name),
        col(DM.variable_instance),
        col(DM.attribute_type),
    )
    return await rows(session, stmt.order_by(*order).limit(limit))
