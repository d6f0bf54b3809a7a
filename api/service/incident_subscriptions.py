"""`fleetAlerts`: an organisation's incidents as they open and change, for its operators
(network:read there). The stream listens only to that organisation's incident topic, so it
cannot carry another tenant's incidents."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.auth.roles import Permission
from api.orgs.types import parse_organization_id
from api.service import incident_repository as repo
from api.service.incident_types import FleetAlert
from schema.errors import Forbidden
from schema.events import IncidentChanged, organization_incidents_topic

# A fleet screen's first page; an operator with more open incidents pages `incidents`.
MAX_SNAPSHOT_ALERTS = 100


@strawberry.type
class IncidentsSubscription:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="Incidents of one organisation as they open, recur, recover, are acknowledged, "
        "commented on or resolved (network:read there), after the unresolved ones as they stand "
        "(change `snapshot`, newest first).",
    )
    async def fleet_alerts(
        self, info: Info, organization_id: relay.GlobalID
    ) -> AsyncGenerator[FleetAlert, None]:
        org = parse_organization_id(organization_id)
        if not info.context.principal.can(Permission.NETWORK_READ, org):
            raise Forbidden("requires network:read in the organisation")
        # Subscribe before reading the snapshot so no change falls between the two.
        sub = info.context.bus.subscribe(organization_incidents_topic(org))
        try:
            async with info.context.db() as s:
                current = await repo.unresolved_alerts(s, org, MAX_SNAPSHOT_ALERTS)
            for row in current:
                yield FleetAlert.snapshot(row)
            async for event in sub:
                if isinstance(event, IncidentChanged) and event.organization_id == org:
                    yield FleetAlert.from_event(event)
        finally:
            sub.close()
