"""Incidents for operators with network:read in the incident's organisation, newest first."""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.network.types import parse_global_id
from api.orgs.types import connection, parse_organization_id
from api.pagination import Connection, clamp_first, decode_cursor, wants_total
from api.service import incident_repository as repo
from api.service.incident_types import IncidentKindGQL, IncidentNode, IncidentSeverityGQL, IncidentStateGQL


@strawberry.type
class IncidentsQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Incidents of the organisations where the caller has network:read, newest "
        "first; each filter narrows (a list: any of its values).",
    )
    async def incidents(
        self,
        info: Info,
        organization_id: relay.GlobalID | None = None,
        state: list[IncidentStateGQL] | None = None,
        severity: list[IncidentSeverityGQL] | None = None,
        kind: list[IncidentKindGQL] | None = None,
        station_id: relay.GlobalID | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[IncidentNode]:
        async with info.context.db() as s:
            p = await repo.page_incidents(
                s,
                info.context.principal,
                organization_id=None if organization_id is None else parse_organization_id(organization_id),
                states=[v.value for v in state or ()],
                severities=[v.value for v in severity or ()],
                kinds=[v.value for v in kind or ()],
                station_id=None if station_id is None else parse_global_id(station_id, "Station"),
                first=clamp_first(first),
                after=decode_cursor("incident", after),
                count=wants_total(info),
            )
        return connection(IncidentNode.from_row, p, "incident")

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="One incident with its timeline; null when the caller cannot read it.",
    )
    async def incident(self, info: Info, id: relay.GlobalID) -> IncidentNode | None:
        pk = parse_global_id(id, "Incident")
        async with info.context.db() as s:
            found = await repo.incidents_by_ids(s, info.context.principal, [pk])
        return IncidentNode.from_row(found[pk]) if pk in found else None
