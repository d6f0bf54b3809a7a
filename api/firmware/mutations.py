"""Creating a firmware campaign and starting, pausing, resuming or aborting it: parse, call
the service, shape. Each needs stations:diagnose in the campaign's organisation."""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.firmware import service
from api.firmware.repository import StationFilter
from api.firmware.types import FirmwareCampaignPayload, campaign_nodes
from api.network.types import parse_global_id
from api.orgs.types import parse_organization_id
from schema.campaign_models import FirmwareCampaign


@strawberry.input(description="Which stations take part; the criteria combine (AND), each list is any-of.")
class FirmwareCampaignFilterInput:
    station_ids: list[relay.GlobalID] | None = None
    location_ids: list[relay.GlobalID] | None = None
    vendor: str | None = None
    model: str | None = None
    firmware_versions: list[str] | None = strawberry.field(
        default=None, description="Only stations currently running one of these versions."
    )


@strawberry.input
class CreateFirmwareCampaignInput:
    organization_id: relay.GlobalID | None = strawberry.field(
        default=None, description="Default: the caller's only organisation with stations:diagnose."
    )
    name: str
    location: str = strawberry.field(description="URL the stations download the firmware from.")
    target_version: str | None = strawberry.field(
        default=None, description="The version stations must boot with to count as installed."
    )
    stations: FirmwareCampaignFilterInput = strawberry.field(
        description="Resolved once, now: stations added later do not join the campaign."
    )
    wave_size: int = 10
    wave_interval_seconds: int | None = strawberry.field(
        default=None, description="Omit: the next wave goes when the previous one has finished."
    )
    max_failure_percent: int = 20
    station_timeout_seconds: int = service.DEFAULT_STATION_TIMEOUT_S
    retries: int | None = None
    retry_interval_seconds: int | None = None
    start: bool = strawberry.field(default=False, description="Start at once instead of as a draft.")


def _filter(f: FirmwareCampaignFilterInput) -> StationFilter:
    return StationFilter(
        station_ids=tuple(parse_global_id(i, "Station") for i in f.station_ids or ()),
        location_ids=tuple(parse_global_id(i, "Location") for i in f.location_ids or ()),
        vendor=f.vendor or None,
        model=f.model or None,
        firmware_versions=tuple(f.firmware_versions or ()),
    )


async def _payload(info: Info, campaign: FirmwareCampaign) -> FirmwareCampaignPayload:
    node = (await campaign_nodes(info, [campaign.id or 0]))[0]
    assert node is not None  # the caller just acted on it with stations:diagnose
    return FirmwareCampaignPayload(campaign=node)


async def _transition(info: Info, id: relay.GlobalID, action: str) -> FirmwareCampaignPayload:
    ctx = info.context
    campaign = await service.transition(ctx.db, ctx.actor, parse_global_id(id, "FirmwareCampaign"), action)
    return await _payload(info, campaign)


@strawberry.type
class FirmwareCampaignMutation:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Roll out firmware to a filtered set of the organisation's stations in waves "
        "(stations:diagnose). EMPTY_STATION_FILTER when nothing matches.",
    )
    async def create_firmware_campaign(
        self, info: Info, input: CreateFirmwareCampaignInput
    ) -> FirmwareCampaignPayload:
        ctx = info.context
        spec = service.CampaignSpec(
            name=input.name,
            location=input.location,
            target_version=input.target_version,
            wave_size=input.wave_size,
            wave_interval_s=input.wave_interval_seconds,
            max_failure_percent=input.max_failure_percent,
            station_timeout_s=input.station_timeout_seconds,
            retries=input.retries,
            retry_interval_s=input.retry_interval_seconds,
        )
        campaign = await service.create_campaign(
            ctx.db,
            ctx.actor,
            organization_id=None
            if input.organization_id is None
            else parse_organization_id(input.organization_id),
            spec=spec,
            station_filter=_filter(input.stations),
            start=input.start,
        )
        return await _payload(info, campaign)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Start a draft campaign: its first wave goes out at the worker's next run.",
    )
    async def start_firmware_campaign(self, info: Info, id: relay.GlobalID) -> FirmwareCampaignPayload:
        return await _transition(info, id, "start")

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Send no further waves; stations already updating are still followed.",
    )
    async def pause_firmware_campaign(self, info: Info, id: relay.GlobalID) -> FirmwareCampaignPayload:
        return await _transition(info, id, "pause")

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Continue a paused campaign; failures so far no longer count against the threshold.",
    )
    async def resume_firmware_campaign(self, info: Info, id: relay.GlobalID) -> FirmwareCampaignPayload:
        return await _transition(info, id, "resume")

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Stop for good: every station not yet sent to is skipped (updates already sent "
        "are not recalled, and are still followed).",
    )
    async def abort_firmware_campaign(self, info: Info, id: relay.GlobalID) -> FirmwareCampaignPayload:
        return await _transition(info, id, "abort")
