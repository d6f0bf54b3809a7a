"""Operators act on incidents: acknowledge, comment, resolve (typed errors: NOT_FOUND,
FORBIDDEN, INCIDENT_STATE_CONFLICT, INVALID_INPUT)."""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.network.types import parse_global_id
from api.service import incident_actions
from api.service.incident_types import IncidentNode


def _pk(id: relay.GlobalID) -> int:
    return parse_global_id(id, "Incident")


@strawberry.type
class IncidentsMutation:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Someone owns the problem now (an open incident; stations:control or workorders:manage).",
    )
    async def acknowledge_incident(self, info: Info, id: relay.GlobalID) -> IncidentNode:
        ctx = info.context
        row = await incident_actions.acknowledge(ctx.db, ctx.bus, ctx.actor, _pk(id))
        return IncidentNode.from_row(row)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="A note on the incident's timeline (stations:control or workorders:manage).",
    )
    async def comment_on_incident(self, info: Info, id: relay.GlobalID, text: str) -> IncidentNode:
        ctx = info.context
        row = await incident_actions.comment(ctx.db, ctx.bus, ctx.actor, _pk(id), text)
        return IncidentNode.from_row(row)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Close the incident with what was done (stations:control or workorders:manage).",
    )
    async def resolve_incident(self, info: Info, id: relay.GlobalID, resolution: str) -> IncidentNode:
        ctx = info.context
        row = await incident_actions.resolve(ctx.db, ctx.bus, ctx.actor, _pk(id), resolution)
        return IncidentNode.from_row(row)
