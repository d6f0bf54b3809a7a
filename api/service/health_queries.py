"""Station health in GraphQL: one station's score and why, and an organisation's worst."""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import Has
from api.auth.roles import Permission
from api.network.types import parse_global_id
from api.orgs.types import parse_organization_id
from api.service import health_reads
from api.service.health_types import StationHealthNode

DEFAULT_UNHEALTHY = 50


@strawberry.type
class HealthQuery:
    @strawberry.field(
        permission_classes=[Has(Permission.NETWORK_READ)],
        description="A station's health score and its inputs (network:read in its organisation); "
        "null when the caller may not see the station or it has not been scored yet.",
    )
    async def station_health(self, info: Info, station_id: relay.GlobalID) -> StationHealthNode | None:
        row = await info.context.loaders.health_by_station.load(parse_global_id(station_id, "Station"))
        return StationHealthNode.from_row(row) if row else None

    @strawberry.field(
        permission_classes=[Has(Permission.NETWORK_READ)],
        description="An organisation's stations scoring below `below`, worst first; without `below`, "
        "the stations degraded now (an early-warning incident is or was open).",
    )
    async def unhealthy_stations(
        self,
        info: Info,
        organization_id: relay.GlobalID,
        below: int | None = None,
        first: int = DEFAULT_UNHEALTHY,
    ) -> list[StationHealthNode]:
        rows = await health_reads.unhealthy_stations(
            info.context.db,
            info.context.principal,
            parse_organization_id(organization_id),
            below=below,
            first=first,
        )
        return [StationHealthNode.from_row(r) for r in rows]
