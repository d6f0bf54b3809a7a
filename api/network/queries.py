"""Network queries: locations, stations (filters, nearby search), one station."""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsPublic
from api.enums import ConnectorStatusGQL
from api.network import repository
from api.network.types import LocationNode, StationNode, parse_global_id
from api.pagination import Connection, build_connection, clamp_first, decode_cursor, selects, wants_total
from schema.errors import InvalidInput


@strawberry.input(description="A circle around a point: stations within radiusKm, nearest first.")
class GeoRadius:
    latitude: float
    longitude: float
    radius_km: float = 10.0


@strawberry.type
class NetworkQuery:
    @strawberry.field(permission_classes=[IsPublic], description="Locations, by id.")
    async def locations(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[LocationNode]:
        n = clamp_first(first)
        async with info.context.db() as s:
            rows, has_next, total = await repository.page_locations(
                s,
                info.context.principal,
                first=n,
                after=decode_cursor("loc", after),
                count=wants_total(info),
            )
        return build_connection(
            [LocationNode.from_model(r) for r in rows],
            kind="loc",
            keys=[r.id or 0 for r in rows],
            has_next=has_next,
            total=total,
        )

    @strawberry.field(
        permission_classes=[IsPublic], description="Stations, by id or (with `near`) nearest first."
    )
    async def stations(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        location_id: relay.GlobalID | None = None,
        status: ConnectorStatusGQL | None = None,
        online: bool | None = None,
        near: GeoRadius | None = None,
    ) -> Connection[StationNode]:
        n = clamp_first(first)
        f = repository.StationFilter(
            location_id=parse_global_id(location_id, "Location") if location_id else None,
            connector_status=status.value if status else None,
            online=online,
        )
        async with info.context.db() as s:
            if near is None:
                page = await repository.page_stations(
                    s,
                    info.context.principal,
                    f,
                    first=n,
                    after=decode_cursor("st", after),
                    count=wants_total(info),
                )
                kind = "st"
            else:
                offset = decode_cursor("near", after) or 0
                page = await repository.page_stations_near(
                    s,
                    info.context.principal,
                    f,
                    repository.Near(near.latitude, near.longitude, near.radius_km),
                    first=n,
                    offset=offset,
                )
                kind = "near"
        nodes = [
            StationNode.from_model(r, distance_km=page.distances_km.get(r.id or 0)) for r in page.stations
        ]
        if nodes and selects(info, "connectors"):
            async with info.context.db() as s:
                found = await repository.connectors_by_station_ids(
                    s, info.context.principal, [n.id for n in nodes]
                )
            for node in nodes:
                node._connectors = found.get(node.id, [])
        return build_connection(nodes, kind=kind, keys=page.keys, has_next=page.has_next, total=page.total)

    @strawberry.field(
        permission_classes=[IsPublic], description="One station, by id or by its OCPP charge point id."
    )
    async def station(
        self, info: Info, id: relay.GlobalID | None = None, charge_point_id: str | None = None
    ) -> StationNode | None:
        if (id is None) == (charge_point_id is None):
            raise InvalidInput("give exactly one of id or chargePointId")
        if id is not None:
            row = await info.context.loaders.station_by_id.load(parse_global_id(id, "Station"))
        else:
            async with info.context.db() as s:
                row = await repository.station_by_charge_point_id(
                    s, info.context.principal, charge_point_id or ""
                )
        return StationNode.from_model(row) if row else None

    @strawberry.field(permission_classes=[IsPublic])
    async def location(self, info: Info, id: relay.GlobalID) -> LocationNode | None:
        row = await info.context.loaders.location_by_id.load(parse_global_id(id, "Location"))
        return LocationNode.from_model(row) if row else None
