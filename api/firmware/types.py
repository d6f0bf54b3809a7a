"""GraphQL shapes of firmware campaigns: the campaign and campaign-station nodes, their
states, counts, and the mutations' payload."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeAlias

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.firmware import repository
from api.network.types import StationNode, int_ids, station_node
from api.orgs.types import connection
from api.pagination import Connection, clamp_first, decode_cursor, wants_total
from schema.campaign_models import CampaignState, CampaignStationState

strawberry.enum(
    CampaignState,
    name="FirmwareCampaignState",
    description="DRAFT until started; PAUSED by an operator or by the failure threshold "
    "(see pausedReason); ABORTED skipped every station not yet sent to.",
)
strawberry.enum(
    CampaignStationState,
    name="FirmwareCampaignStationState",
    description="QUEUED until its wave; SENT: accepted UpdateFirmware; OFFLINE: not reachable when "
    "its wave went out, sent again when it is seen online while the campaign runs; FAILED: a failure "
    "status, the wrong version after reboot, or silence beyond the timeout.",
)
CampaignStateGQL: TypeAlias = CampaignState
CampaignStationStateGQL: TypeAlias = CampaignStationState


@strawberry.type(description="How many of the campaign's stations are in each state.")
class FirmwareCampaignCounts:
    total: int
    queued: int
    sent: int
    rejected: int
    offline: int
    downloading: int
    downloaded: int
    installing: int
    installed: int
    failed: int
    skipped: int

    @classmethod
    def from_counts(cls, counts: dict[str, int]) -> FirmwareCampaignCounts:
        by_state = {s.name.lower(): counts.get(s.value, 0) for s in CampaignStationState}
        return cls(total=sum(counts.values()), **by_state)


@strawberry.type(
    name="FirmwareCampaignStation",
    description="One station of a campaign: its wave and how far its update got.",
)
class FirmwareCampaignStationNode(relay.Node):
    id: relay.NodeID[int]
    wave: int
    state: CampaignStationStateGQL
    attempts: int = strawberry.field(description="How often UpdateFirmware was sent to it.")
    sent_at: datetime | None = strawberry.field(description="When it was last sent UpdateFirmware.")
    last_firmware_status: str | None = strawberry.field(
        description="The station's last FirmwareStatusNotification since then (Downloading, Installed…)."
    )
    last_firmware_status_at: datetime | None
    message: str | None = strawberry.field(description="Why it failed, was skipped, or is waiting.")
    updated_at: datetime
    command_id: relay.GlobalID | None = strawberry.field(
        description="The StationCommand in the command log that sent the update."
    )
    _station_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, r: Any) -> FirmwareCampaignStationNode:
        return cls(
            id=r.id,
            wave=r.wave,
            state=CampaignStationState(r.state),
            attempts=r.attempts,
            sent_at=r.sent_at,
            last_firmware_status=r.last_firmware_status,
            last_firmware_status_at=r.last_firmware_status_at,
            message=r.message,
            updated_at=r.updated_at,
            command_id=None if r.command_id is None else relay.GlobalID("StationCommand", str(r.command_id)),
            _station_id=r.station_id,
        )

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return await station_node(info, self._station_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[FirmwareCampaignStationNode | None]:
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            found = await repository.campaign_stations_by_ids(s, info.context.principal, ids)
        return [cls.from_row(found[i]) if i in found else None for i in ids]


@strawberry.type(
    name="FirmwareCampaign",
    description="A firmware image rolled out to a frozen list of stations in waves.",
)
class FirmwareCampaignNode(relay.Node):
    id: relay.NodeID[int]
    organization_id: relay.GlobalID
    name: str
    location: str = strawberry.field(description="The URL stations download the firmware from.")
    target_version: str | None = strawberry.field(
        description="A station counts as installed once it boots with this version; without it, "
        "its own Installed status is enough."
    )
    state: CampaignStateGQL
    wave_size: int
    wave_interval_seconds: int | None = strawberry.field(
        description="Between waves; null: the next wave goes when the previous one has finished."
    )
    max_failure_percent: int = strawberry.field(
        description="More failed stations than this share of a wave pauses the campaign."
    )
    station_timeout_seconds: int = strawberry.field(description="A sent station silent this long is failed.")
    current_wave: int = strawberry.field(description="The last wave sent; 0 before the first.")
    wave_count: int
    wave_sent_at: datetime | None
    paused_reason: str | None
    created_by: str = strawberry.field(description="Who created it (user:…, api_key:…, platform).")
    run_by: str | None = strawberry.field(
        description="Who started or last resumed it: its commands are sent on their behalf, while "
        "they hold stations:diagnose here (else it pauses)."
    )
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: FirmwareCampaignCounts

    @classmethod
    def from_row(cls, r: Any, counts: dict[str, int]) -> FirmwareCampaignNode:
        return cls(
            id=r.id,
            organization_id=relay.GlobalID("Organization", str(r.organization_id)),
            name=r.name,
            location=r.location,
            target_version=r.target_version,
            state=CampaignState(r.state),
            wave_size=r.wave_size,
            wave_interval_seconds=r.wave_interval_s,
            max_failure_percent=r.max_failure_percent,
            station_timeout_seconds=r.station_timeout_s,
            current_wave=r.current_wave,
            wave_count=r.wave_count,
            wave_sent_at=r.wave_sent_at,
            paused_reason=r.paused_reason,
            created_by=r.created_by_label,
            run_by=r.run_by_label,
            created_at=r.created_at,
            updated_at=r.updated_at,
            started_at=r.started_at,
            finished_at=r.finished_at,
            counts=FirmwareCampaignCounts.from_counts(counts),
        )

    @strawberry.field(description="The campaign's stations in wave order, optionally one state or wave.")
    async def stations(
        self,
        info: Info,
        state: CampaignStationStateGQL | None = None,
        wave: int | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[FirmwareCampaignStationNode]:
        async with info.context.db() as s:
            p = await repository.page_campaign_stations(
                s,
                info.context.principal,
                self.id,
                state=state,
                wave=wave,
                first=clamp_first(first),
                after=decode_cursor("campaign-station", after),
                count=wants_total(info),
            )
        return connection(FirmwareCampaignStationNode.from_row, p, "campaign-station")

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[FirmwareCampaignNode | None]:
        ids = int_ids(node_ids)
        return await campaign_nodes(info, ids)


async def campaign_nodes(info: Info, ids: list[int]) -> list[FirmwareCampaignNode | None]:
    """Campaigns the caller may see, with their counts read in one query."""
    async with info.context.db() as s:
        found = await repository.campaigns_by_ids(s, info.context.principal, ids)
        counts = await repository.state_counts(s, list(found))
    return [FirmwareCampaignNode.from_row(found[i], counts[i]) if i in found else None for i in ids]


@strawberry.type(description="The campaign as it stands after the change.")
class FirmwareCampaignPayload:
    campaign: FirmwareCampaignNode
