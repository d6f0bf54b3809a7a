"""Operators and technicians classify outages (stations:control or workorders:manage)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.network.types import parse_global_id
from api.service import exclusions
from api.service.uptime_types import ExclusionReasonGQL, OutageExclusionNode


@strawberry.type
class UptimeMutation:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Exclude [start, end) on one port (or every port of the station when "
        "connectorId is omitted) from uptime, with the reason; audited.",
    )
    async def exclude_outage(
        self,
        info: Info,
        station_id: relay.GlobalID,
        start: datetime,
        end: datetime,
        reason: ExclusionReasonGQL,
        connector_id: int | None = None,
        note: str | None = None,
    ) -> OutageExclusionNode:
        row = await exclusions.exclude(
            info.context.db,
            info.context.actor,
            exclusions.ExclusionRequest(
                station_id=parse_global_id(station_id, "Station"),
                connector_id=connector_id,
                start=start,
                end=end,
                reason=reason,
                note=note,
            ),
        )
        return OutageExclusionNode.from_row(row)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Withdraw an exclusion: its minutes count against uptime again; audited.",
    )
    async def revoke_outage_exclusion(
        self, info: Info, id: relay.GlobalID, note: str | None = None
    ) -> OutageExclusionNode:
        row = await exclusions.revoke(
            info.context.db, info.context.actor, parse_global_id(id, "OutageExclusion"), note
        )
        return OutageExclusionNode.from_row(row)
