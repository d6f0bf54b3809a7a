"""Every query about the network, scoped to the caller.

Locations, stations and connector availability are public (a driver app shows them before
sign-in); fields that only operators may see are guarded in the GraphQL types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.auth.principal import Principal
from api.network.geo import MAX_RADIUS_KM, bounding_box, haversine_km
from api.reads import count_rows, read_rows
from schema.errors import InvalidInput
from schema.models import ChargingStation, Connector, Location


def readable_stations(_principal: Principal) -> SelectOfScalar[ChargingStation]:
    return select(ChargingStation)


def readable_locations(_principal: Principal) -> SelectOfScalar[Location]:
    return select(Location)


@dataclass(frozen=True, slots=True)
class Near:
    latitude: float
    longitude: float
    radius_km: float

    def check(self) -> None:
        if not (-90 <= self.latitude <= 90 and -180 <= self.longitude <= 180):
            raise InvalidInput("latitude/longitude out of range")
        if not (0 < self.radius_km <= MAX_RADIUS_KM):
            raise InvalidInput(f"radiusKm must be in (0, {MAX_RADIUS_KM:g}]")


@dataclass(frozen=True, slots=True)
class StationFilter:
    location_id: int | None = None
    connector_status: str | None = None
    online: bool | None = None


@dataclass(frozen=True, slots=True)
class StationPage:
    stations: list[ChargingStation]
    keys: list[int]
    has_next: bool
    total: int | None
    distances_km: dict[int, float]


def _conditions(f: StationFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.location_id is not None:
        conditions.append(col(ChargingStation.location_id) == f.location_id)
    if f.online is not None:
        conditions.append(col(ChargingStation.online) == f.online)
    if f.connector_status is not None:
        conditions.append(
            col(ChargingStation.id).in_(
                select(Connector.station_id).where(col(Connector.status) == f.connector_status)
            )
        )
    return conditions


def _filtered(principal: Principal, f: StationFilter) -> SelectOfScalar[ChargingStation]:
    return readable_stations(principal).where(*_conditions(f))


async def page_stations(
    session: AsyncSession,
    principal: Principal,
    f: StationFilter,
    *,
    first: int,
    after: int | None,
    count: bool = True,
) -> StationPage:
    """Keyset pagination by id: stable under inserts, cheap at any depth."""
    stmt = _filtered(principal, f)
    total = await count_rows(session, stmt) if count else None
    if after is not None:
        stmt = stmt.where(col(ChargingStation.id) > after)
    rows = await read_rows(session, stmt.order_by(col(ChargingStation.id)).limit(first + 1))
    has_next = len(rows) > first
    rows = rows[:first]
    return StationPage(rows, [r.id or 0 for r in rows], has_next, total, {})


async def page_stations_near(
    session: AsyncSession,
    principal: Principal,
    f: StationFilter,
    near: Near,
    *,
    first: int,
    offset: int,
) -> StationPage:
    """Nearest first. The bounding box narrows in SQL; the exact distance is computed here."""
    near.check()
    box = bounding_box(near.latitude, near.longitude, near.radius_km)
    readable = readable_stations(principal).with_only_columns(col(ChargingStation.id))
    stmt = (
        select(ChargingStation, Location.latitude, Location.longitude)
        .join(Location, col(Location.id) == ChargingStation.location_id)
        .where(col(ChargingStation.id).in_(readable), *_conditions(f))
        .where(col(Location.latitude).between(box.min_lat, box.max_lat))
    )
    if box.min_lon >= -180 and box.max_lon <= 180:
        stmt = stmt.where(col(Location.longitude).between(box.min_lon, box.max_lon))
    found: list[tuple[float, ChargingStation]] = []
    for station, lat, lon in (await session.exec(stmt)).all():
        d = haversine_km(near.latitude, near.longitude, lat, lon)
        if d <= near.radius_km:
            found.append((d, station))
    found.sort(key=lambda pair: (pair[0], pair[1].id))
    window = found[offset : offset + first]
    return StationPage(
        stations=[s for _, s in window],
        keys=list(range(offset + 1, offset + 1 + len(window))),
        has_next=offset + first < len(found),
        total=len(found),
        distances_km={s.id or 0: round(d, 3) for d, s in window},
    )


async def stations_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[int]
) -> dict[int, ChargingStation]:
    rows = await read_rows(session, readable_stations(principal).where(col(ChargingStation.id).in_(ids)))
    return {r.id: r for r in rows if r.id is not None}


async def station_by_charge_point_id(
    session: AsyncSession, principal: Principal, charge_point_id: str
) -> ChargingStation | None:
    rows = await read_rows(
        session, readable_stations(principal).where(col(ChargingStation.charge_point_id) == charge_point_id)
    )
    return rows[0] if rows else None


async def locations_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[int]
) -> dict[int, Location]:
    rows = await read_rows(session, readable_locations(principal).where(col(Location.id).in_(ids)))
    return {r.id: r for r in rows if r.id is not None}


async def page_locations(
    session: AsyncSession, principal: Principal, *, first: int, after: int | None, count: bool = True
) -> tuple[list[Location], bool, int | None]:
    stmt = readable_locations(principal)
    total = await count_rows(session, stmt) if count else None
    if after is not None:
        stmt = stmt.where(col(Location.id) > after)
    rows = await read_rows(session, stmt.order_by(col(Location.id)).limit(first + 1))
    return rows[:first], len(rows) > first, total


async def connectors_by_station_ids(
    session: AsyncSession, principal: Principal, station_ids: Sequence[int]
) -> dict[int, list[Connector]]:
    readable = readable_stations(principal).with_only_columns(col(ChargingStation.id))
    rows = await read_rows(
        session,
        select(Connector)
        .where(col(Connector.station_id).in_(station_ids), col(Connector.station_id).in_(readable))
        .order_by(col(Connector.station_id), col(Connector.connector_id)),
    )
    out: dict[int, list[Connector]] = {sid: [] for sid in station_ids}
    for c in rows:
        out.setdefault(c.station_id, []).append(c)
    return out


async def stations_by_location_ids(
    session: AsyncSession, principal: Principal, location_ids: Sequence[int]
) -> dict[int, list[ChargingStation]]:
    rows = await read_rows(
        session,
        readable_stations(principal)
        .where(col(ChargingStation.location_id).in_(location_ids))
        .order_by(col(ChargingStation.id)),
    )
    out: dict[int, list[ChargingStation]] = {lid: [] for lid in location_ids}
    for s in rows:
        if s.location_id is not None:
            out[s.location_id].append(s)
    return out


async def station_snapshots(
    session: AsyncSession,
    principal: Principal,
    *,
    station_id: int | None = None,
    location_id: int | None = None,
) -> list[tuple[ChargingStation, list[Connector]]]:
    """Current status of one station or every station of a location, with connectors."""
    stmt = readable_stations(principal)
    if station_id is not None:
        stmt = stmt.where(col(ChargingStation.id) == station_id)
    if location_id is not None:
        stmt = stmt.where(col(ChargingStation.location_id) == location_id)
    stations = await read_rows(session, stmt.order_by(col(ChargingStation.id)))
    connectors = await connectors_by_station_ids(session, principal, [s.id or 0 for s in stations])
    return [(s, connectors.get(s.id or 0, [])) for s in stations]
