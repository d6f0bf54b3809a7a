"""Configuration templates, a station's drift from its template, and the 2.0.1 device model
(stations:diagnose in the organisation, like reading the station's configuration)."""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.configuration import repository, service
from api.configuration.device_model import MAX_ATTRIBUTES, group
from api.configuration.types import ConfigurationTemplateNode, DeviceModel, StationConfigurationDrift
from api.network.types import parse_global_id
from api.orgs.types import parse_organization_id
from api.pagination import Connection, build_connection, clamp_first, decode_cursor, wants_total


@strawberry.type
class ConfigurationQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Configuration templates of the organisations where the caller has "
        "stations:diagnose, oldest first.",
    )
    async def configuration_templates(
        self,
        info: Info,
        organization_id: relay.GlobalID | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[ConfigurationTemplateNode]:
        async with info.context.db() as s:
            p = await repository.page_templates(
                s,
                info.context.principal,
                organization_id=None if organization_id is None else parse_organization_id(organization_id),
                first=clamp_first(first),
                after=decode_cursor("configuration-template", after),
                count=wants_total(info),
            )
            entries = await repository.entries_of(s, [r.id for r in p.rows]) if p.rows else {}
        return build_connection(
            [ConfigurationTemplateNode.from_row(r, entries.get(r.id, [])) for r in p.rows],
            kind="configuration-template",
            keys=[r.id for r in p.rows],
            has_next=p.has_next,
            total=p.total,
        )

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="How the station's stored configuration differs from the template that governs "
        "it (stations:diagnose); null for a station the caller may not diagnose.",
    )
    async def configuration_drift(
        self, info: Info, station_id: relay.GlobalID
    ) -> StationConfigurationDrift | None:
        async with info.context.db() as s:
            governed = await service.station_drift(
                s, info.context.principal, parse_global_id(station_id, "Station")
            )
        return None if governed is None else StationConfigurationDrift.from_governed(governed)

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="An OCPP 2.0.1 station's device model as stored from its NotifyReport "
        f"(stations:diagnose), at most {MAX_ATTRIBUTES} attributes; component and variable narrow "
        "it by name (without regard to case). Null for a station the caller may not diagnose.",
    )
    async def device_model(
        self,
        info: Info,
        station_id: relay.GlobalID,
        component: str | None = None,
        variable: str | None = None,
    ) -> DeviceModel | None:
        principal = info.context.principal
        pk = parse_global_id(station_id, "Station")
        async with info.context.db() as s:
            if await repository.diagnosable_station(s, principal, pk) is None:
                return None
            found = await repository.device_model(
                s, principal, pk, component=component, variable=variable, limit=MAX_ATTRIBUTES + 1
            )
        shown = found[:MAX_ATTRIBUTES]
        return DeviceModel.from_components(
            group(shown), count=len(shown), truncated=len(found) > MAX_ATTRIBUTES
        )
