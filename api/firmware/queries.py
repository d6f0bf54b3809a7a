"""Firmware campaigns a caller may see: their organisations' where they hold stations:diagnose."""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.firmware import repository
from api.firmware.types import CampaignStateGQL, FirmwareCampaignNode
from api.orgs.types import parse_organization_id
from api.pagination import Connection, build_connection, clamp_first, decode_cursor, wants_total


@strawberry.type
class FirmwareCampaignQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Firmware campaigns, newest first (stations:diagnose in their organisation).",
    )
    async def firmware_campaigns(
        self,
        info: Info,
        organization_id: relay.GlobalID | None = None,
        state: CampaignStateGQL | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[FirmwareCampaignNode]:
        async with info.context.db() as s:
            p = await repository.page_campaigns(
                s,
                info.context.principal,
                organization_id=None if organization_id is None else parse_organization_id(organization_id),
                state=state,
                first=clamp_first(first),
                after=decode_cursor("firmware-campaign", after),
                count=wants_total(info),
            )
            counts = await repository.state_counts(s, [r.id for r in p.rows])
        return build_connection(
            [FirmwareCampaignNode.from_row(r, counts[r.id]) for r in p.rows],
            kind="firmware-campaign",
            keys=[r.id for r in p.rows],
            has_next=p.has_next,
            total=p.total,
        )
