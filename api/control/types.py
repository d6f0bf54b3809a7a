"""GraphQL shapes of remote control: inputs of each operation, their typed results, and the
command trail."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeAlias

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.control import repository
from api.control.mutations import CommandOutcomeGQL
from api.control.operations import BulkResult, CommandResult
from api.network.types import StationNode, int_ids, station_node
from api.orgs.types import AuditActor
from schema.commands import ProfilePurpose, RateUnit, ResetKind
from schema.control_models import StationCommand

strawberry.enum(ResetKind, name="ResetKind")
strawberry.enum(RateUnit, name="ChargingRateUnit", description="A (amperes) or W (watts).")
strawberry.enum(
    ProfilePurpose,
    name="ChargingLimitPurpose",
    description="StationMax caps the whole station; TxDefault applies to every session on the "
    "connector; Tx to one running session only.",
)
ResetKindGQL: TypeAlias = ResetKind
RateUnitGQL: TypeAlias = RateUnit
ProfilePurposeGQL: TypeAlias = ProfilePurpose


@strawberry.enum(name="TriggerableMessage", description="What a station can be asked to send now.")
class TriggerableMessage(StrEnum):
    BOOT_NOTIFICATION = "BootNotification"
    HEARTBEAT = "Heartbeat"
    STATUS_NOTIFICATION = "StatusNotification"
    METER_VALUES = "MeterValues"
    FIRMWARE_STATUS_NOTIFICATION = "FirmwareStatusNotification"
    DIAGNOSTICS_STATUS_NOTIFICATION = "DiagnosticsStatusNotification"


@strawberry.type(name="StationCommand", description="One command sent to a station and its answer.")
class StationCommandNode(relay.Node):
    id: relay.NodeID[int]
    name: str = strawberry.field(description="Reset, ChangeConfiguration, UpdateFirmware…")
    payload: str = strawberry.field(description="The command's arguments as a JSON object.")
    actor: AuditActor
    requested_at: datetime
    completed_at: datetime
    latency_ms: int = strawberry.field(description="From sending to the station's answer (or giving up).")
    outcome: CommandOutcomeGQL
    station_status: str | None = strawberry.field(description="The station's own word, if it answered.")
    message: str
    reply: str | None = strawberry.field(description="What the station returned, as a JSON object.")
    bulk_id: str | None = strawberry.field(description="Shared by the commands of one bulk request.")
    _station_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, r: StationCommand | Any) -> StationCommandNode:
        return cls(
            id=r.id or 0,
            name=r.name,
            payload=json.dumps(r.payload),
            actor=AuditActor.from_row(r),
            requested_at=r.requested_at,
            completed_at=r.completed_at,
            latency_ms=r.latency_ms,
            outcome=CommandOutcomeGQL(r.outcome),
            station_status=r.station_status,
            message=r.message,
            reply=None if r.reply is None else json.dumps(r.reply),
            bulk_id=r.bulk_id,
            _station_id=r.station_id,
        )

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return await station_node(info, self._station_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[StationCommandNode | None]:
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            found = await repository.commands_by_ids(s, info.context.principal, ids)
        return [cls.from_row(found[i]) if i in found else None for i in ids]


@strawberry.type
class ConfigurationKey:
    key: str
    value: str | None
    readonly: bool
    read_at: datetime | None = strawberry.field(
        default=None, description="When the station reported it (stored copies only)."
    )


@strawberry.type(description="The outcome of one command to one station.")
class CommandPayload:
    outcome: CommandOutcomeGQL
    message: str
    station_status: str | None = strawberry.field(
        description="The station's own answer (Accepted, Rejected, Scheduled, RebootRequired…)."
    )
    command: StationCommandNode | None = strawberry.field(description="The entry in the command log.")
    _station_id: strawberry.Private[int]

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return await station_node(info, self._station_id)


def command_fields(result: CommandResult) -> dict[str, Any]:
    return {
        "outcome": result.outcome,
        "message": result.message,
        "station_status": result.station_status,
        "command": None if result.command is None else StationCommandNode.from_row(result.command),
        "_station_id": result.station_id,
    }


def command_payload(result: CommandResult) -> CommandPayload:
    return CommandPayload(**command_fields(result))


@strawberry.type
class ConfigurationPayload(CommandPayload):
    keys: list[ConfigurationKey]
    unknown_keys: list[str]


@strawberry.type
class DataTransferPayload(CommandPayload):
    data: str | None = strawberry.field(description="The station's answer data, if any.")


@strawberry.type(description="A file a station uploaded on request (diagnostics, logs).")
class StationFileNode:
    id: relay.GlobalID
    kind: str
    status: str = strawberry.field(description="requested until the station uploads it, then uploaded.")
    file_name: str | None
    content_type: str | None
    size_bytes: int
    requested_at: datetime
    uploaded_at: datetime | None
    _content: strawberry.Private[bytes | None]

    @classmethod
    def from_row(cls, r: Any) -> StationFileNode:
        return cls(
            id=relay.GlobalID("StationFile", str(r.id)),
            kind=r.kind,
            status=r.status,
            file_name=r.file_name,
            content_type=r.content_type,
            size_bytes=r.size_bytes,
            requested_at=r.requested_at,
            uploaded_at=r.uploaded_at,
            _content=r.content,
        )

    @strawberry.field(description="The file itself, base64-encoded (null until uploaded).")
    def content_base64(self) -> str | None:
        return None if self._content is None else base64.b64encode(self._content).decode()


@strawberry.type
class DiagnosticsPayload(CommandPayload):
    file_name: str | None = strawberry.field(description="The file the station will upload, if any.")
    _file_id: strawberry.Private[int | None] = None

    @strawberry.field(description="Where ChargeNet receives it (when no location was given).")
    async def file(self, info: Info) -> StationFileNode | None:
        if self._file_id is None:
            return None
        async with info.context.db() as s:
            found = await repository.station_files(s, info.context.principal, file_id=self._file_id)
        return StationFileNode.from_row(found[0]) if found else None


@strawberry.type
class LocalListVersionPayload(CommandPayload):
    version: int | None = strawberry.field(description="0: no local list installed.")


@strawberry.type
class SchedulePeriod:
    start_seconds: int
    limit: float
    phases: int | None


@strawberry.type
class ChargingSchedule:
    unit: RateUnitGQL
    start_at: datetime | None
    duration_seconds: int | None
    periods: list[SchedulePeriod]

    @classmethod
    def from_detail(cls, d: dict[str, Any]) -> ChargingSchedule:
        start = d.get("start_at")
        return cls(
            unit=RateUnit(d["unit"]),
            start_at=datetime.fromisoformat(start) if isinstance(start, str) else start,
            duration_seconds=d.get("duration_s"),
            periods=[
                SchedulePeriod(start_seconds=p["start_s"], limit=p["limit"], phases=p.get("phases"))
                for p in d["periods"]
            ],
        )


@strawberry.type
class CompositeSchedulePayload(CommandPayload):
    schedule: ChargingSchedule | None = strawberry.field(
        description="The limits the station will apply over the requested window."
    )


@strawberry.type
class BulkCommandResult:
    outcome: CommandOutcomeGQL
    message: str
    station_status: str | None
    _station_id: strawberry.Private[int]

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return await station_node(info, self._station_id)


@strawberry.type(description="One command to many stations: a result per station, in the order given.")
class BulkCommandPayload:
    bulk_id: str = strawberry.field(description="Find these commands in the log with commands(bulkId:).")
    results: list[BulkCommandResult]

    @strawberry.field(description="How many stations accepted.")
    def accepted(self) -> int:
        return sum(1 for r in self.results if r.outcome is CommandOutcomeGQL.ACCEPTED)


def bulk_payload(bulk: BulkResult) -> BulkCommandPayload:
    return BulkCommandPayload(
        bulk_id=bulk.bulk_id,
        results=[
            BulkCommandResult(
                outcome=r.outcome,
                message=r.message,
                station_status=r.station_status,
                _station_id=r.station_id,
            )
            for r in bulk.results
        ],
    )
