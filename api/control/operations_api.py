"""Operator mutations, one per station operation, and the command trail queries.

Each mutation parses its input into a version-neutral command and hands it to
`api.control.operations`; the station's OCPP version never shows here.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.control import operations, repository
from api.control.types import (
    BulkCommandPayload,
    ChargingSchedule,
    CommandPayload,
    CompositeSchedulePayload,
    ConfigurationKey,
    ConfigurationPayload,
    DataTransferPayload,
    DiagnosticsPayload,
    LocalListVersionPayload,
    ProfilePurposeGQL,
    RateUnitGQL,
    ResetKindGQL,
    StationCommandNode,
    StationFileNode,
    TriggerableMessage,
    bulk_payload,
    command_fields,
    command_payload,
)
from api.files import service as files
from api.network.types import parse_global_id
from api.orgs.types import connection, parse_organization_id
from api.pagination import Connection, clamp_first, decode_cursor, wants_total
from schema import commands as c
from schema.errors import InvalidInput
from schema.timeutil import utcnow

# Limits of the 1.6 and 2.0.1 messages, checked here so the caller gets a reason, not a CALLERROR.
MAX_SCHEDULE_SECONDS = 7 * 24 * 3600
MAX_LIMIT_AMPERES = 1_000.0
MAX_LIMIT_WATTS = 1_000_000.0
# Profile ids ChargeNet uses for the limits it sets: one per purpose, so setting a limit again
# replaces it on the station instead of stacking another profile.
LIMIT_PROFILE_IDS = {
    c.ProfilePurpose.STATION_MAX: 9001,
    c.ProfilePurpose.TX_DEFAULT: 9002,
    c.ProfilePurpose.TX: 9003,
}


def _station(value: relay.GlobalID) -> int:
    return parse_global_id(value, "Station")


async def _run(info: Info, station_id: relay.GlobalID, command: c.Command) -> operations.CommandResult:
    ctx = info.context
    return await operations.run(
        ctx.db,
        ctx.bus,
        ctx.actor,
        station_id=_station(station_id),
        command=command,
        timeout_s=ctx.settings.command_timeout_s,
    )


async def _bulk(info: Info, station_ids: list[relay.GlobalID], command: c.Command) -> BulkCommandPayload:
    ctx = info.context
    result = await operations.run_bulk(
        ctx.db,
        ctx.bus,
        ctx.actor,
        station_ids=[_station(s) for s in station_ids],
        command=command,
        timeout_s=ctx.settings.command_timeout_s,
    )
    return bulk_payload(result)


@strawberry.input
class StationInput:
    station_id: relay.GlobalID


@strawberry.input
class ResetStationInput:
    station_id: relay.GlobalID
    kind: ResetKindGQL = ResetKindGQL.SOFT


@strawberry.input
class ConnectorInput:
    station_id: relay.GlobalID
    connector_id: int


@strawberry.input
class ChangeAvailabilityInput:
    station_id: relay.GlobalID
    operative: bool = strawberry.field(description="false takes it out of service for drivers.")
    connector_id: int = strawberry.field(default=0, description="0 (default): the whole station.")


@strawberry.input
class TriggerMessageInput:
    station_id: relay.GlobalID
    message: TriggerableMessage
    connector_id: int | None = None


@strawberry.input
class ChangeConfigurationInput:
    station_id: relay.GlobalID
    key: str
    value: str


@strawberry.input
class ReadConfigurationInput:
    station_id: relay.GlobalID
    keys: list[str] | None = strawberry.field(default=None, description="Omit to read every key.")


@strawberry.input
class DataTransferInput:
    station_id: relay.GlobalID
    vendor_id: str
    message_id: str | None = None
    data: str | None = None


@strawberry.input
class UpdateFirmwareInput:
    station_id: relay.GlobalID
    location: str = strawberry.field(description="URL the station downloads the firmware from.")
    retrieve_at: datetime | None = strawberry.field(default=None, description="Default: now.")
    retries: int | None = None
    retry_interval_seconds: int | None = None


@strawberry.input
class BulkUpdateFirmwareInput:
    station_ids: list[relay.GlobalID]
    location: str
    retrieve_at: datetime | None = None


@strawberry.input
class RequestDiagnosticsInput:
    station_id: relay.GlobalID
    location: str | None = strawberry.field(
        default=None,
        description="URL the station uploads its diagnostics file to. Omit to have ChargeNet receive "
        "it (see stationFiles) at CHARGENET_UPLOAD_BASE_URL, or at the address this request used.",
    )
    start_at: datetime | None = None
    stop_at: datetime | None = None
    retries: int | None = None
    retry_interval_seconds: int | None = None


@strawberry.input
class SetChargingLimitInput:
    station_id: relay.GlobalID
    limit: float = strawberry.field(
        description="In `unit`, per connector (the whole station for StationMax)."
    )
    unit: RateUnitGQL = RateUnitGQL.AMPERES
    purpose: ProfilePurposeGQL = ProfilePurposeGQL.TX_DEFAULT
    connector_id: int = strawberry.field(default=0, description="0: every connector (StationMax: required).")
    transaction_id: relay.GlobalID | None = strawberry.field(default=None, description="Required for Tx.")
    duration_seconds: int | None = strawberry.field(default=None, description="Omit: until cleared.")
    phases: int | None = None


@strawberry.input
class ClearChargingLimitInput:
    station_id: relay.GlobalID
    purpose: ProfilePurposeGQL | None = strawberry.field(default=None, description="Omit: every limit.")
    connector_id: int | None = None


@strawberry.input
class CompositeScheduleInput:
    station_id: relay.GlobalID
    connector_id: int = 0
    duration_seconds: int = 86_400
    unit: RateUnitGQL | None = None


@strawberry.input
class BulkResetInput:
    station_ids: list[relay.GlobalID]
    kind: ResetKindGQL = ResetKindGQL.SOFT


@strawberry.input
class BulkAvailabilityInput:
    station_ids: list[relay.GlobalID]
    operative: bool


def _limit_command(i: SetChargingLimitInput) -> c.SetChargingProfile:
    purpose = c.ProfilePurpose(i.purpose)
    unit = c.RateUnit(i.unit)
    ceiling = MAX_LIMIT_AMPERES if unit is c.RateUnit.AMPERES else MAX_LIMIT_WATTS
    if not 0 <= i.limit <= ceiling:
        raise InvalidInput(f"limit must be between 0 and {ceiling:g} {unit.value}")
    if i.duration_seconds is not None and not 0 < i.duration_seconds <= MAX_SCHEDULE_SECONDS:
        raise InvalidInput(f"durationSeconds must be 1–{MAX_SCHEDULE_SECONDS}")
    if purpose is c.ProfilePurpose.STATION_MAX and i.connector_id != 0:
        raise InvalidInput("a StationMax limit applies to connector 0 (the whole station)")
    transaction_id = None if i.transaction_id is None else parse_global_id(i.transaction_id, "Transaction")
    if (purpose is c.ProfilePurpose.TX) != (transaction_id is not None):
        raise InvalidInput("a Tx limit needs transactionId, and only a Tx limit takes one")
    if i.phases is not None and i.phases not in (1, 2, 3):
        raise InvalidInput("phases is 1, 2 or 3")
    relative = purpose is c.ProfilePurpose.TX
    return c.SetChargingProfile(
        connector_id=i.connector_id,
        profile=c.ChargingProfile(
            profile_id=LIMIT_PROFILE_IDS[purpose],
            stack_level=0,
            purpose=purpose,
            kind="Relative" if relative else "Absolute",
            transaction_id=transaction_id,
            schedule=c.ChargingSchedule(
                unit=unit,
                periods=(c.SchedulePeriod(0, i.limit, i.phases),),
                duration_s=i.duration_seconds,
                start_at=None if relative else utcnow(),
            ),
        ),
    )


@strawberry.type
class ControlOperationsMutation:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Reboot a station (stations:diagnose)."
    )
    async def reset_station(self, info: Info, input: ResetStationInput) -> CommandPayload:
        return command_payload(await _run(info, input.station_id, c.Reset(kind=c.ResetKind(input.kind))))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Reboot many stations; a result per station (stations:diagnose on every one).",
    )
    async def bulk_reset_stations(self, info: Info, input: BulkResetInput) -> BulkCommandPayload:
        return await _bulk(info, input.station_ids, c.Reset(kind=c.ResetKind(input.kind)))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Release a cable stuck in a connector; a session on it is stopped (stations:control).",
    )
    async def unlock_connector(self, info: Info, input: ConnectorInput) -> CommandPayload:
        if input.connector_id < 1:
            raise InvalidInput("connectorId starts at 1")
        return command_payload(
            await _run(info, input.station_id, c.UnlockConnector(connector_id=input.connector_id))
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Take a station or connector out of service, or back (stations:control). "
        "stationStatus Scheduled: it changes when the running session ends.",
    )
    async def change_availability(self, info: Info, input: ChangeAvailabilityInput) -> CommandPayload:
        if input.connector_id < 0:
            raise InvalidInput("connectorId is 0 (the station) or a connector number")
        command = c.ChangeAvailability(connector_id=input.connector_id, operative=input.operative)
        return command_payload(await _run(info, input.station_id, command))

    @strawberry.mutation(permission_classes=[IsAuthenticated], description="The same for many stations.")
    async def bulk_change_availability(self, info: Info, input: BulkAvailabilityInput) -> BulkCommandPayload:
        return await _bulk(
            info, input.station_ids, c.ChangeAvailability(connector_id=0, operative=input.operative)
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Clear the station's cache of authorised tokens (stations:diagnose).",
    )
    async def clear_authorization_cache(self, info: Info, input: StationInput) -> CommandPayload:
        return command_payload(await _run(info, input.station_id, c.ClearCache()))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Ask the station to send a message now, e.g. its status (stations:diagnose).",
    )
    async def trigger_message(self, info: Info, input: TriggerMessageInput) -> CommandPayload:
        command = c.TriggerMessage(message=input.message.value, connector_id=input.connector_id)
        return command_payload(await _run(info, input.station_id, command))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Set one configuration key on the station (stations:control). stationStatus: "
        "Accepted, Rejected, RebootRequired or NotSupported (unknown key).",
    )
    async def change_configuration(self, info: Info, input: ChangeConfigurationInput) -> CommandPayload:
        command = c.ChangeConfiguration(key=input.key, value=input.value)
        return command_payload(await _run(info, input.station_id, command))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Read configuration keys from the station now (stations:diagnose); a full read "
        "also refreshes the stored copy (stationConfiguration).",
    )
    async def read_configuration(self, info: Info, input: ReadConfigurationInput) -> ConfigurationPayload:
        result = await _run(info, input.station_id, c.GetConfiguration(keys=tuple(input.keys or ())))
        return ConfigurationPayload(
            **command_fields(result),
            keys=[
                ConfigurationKey(key=k["key"], value=k.get("value"), readonly=bool(k.get("readonly")))
                for k in result.detail.get("configuration", ())
            ],
            unknown_keys=list(result.detail.get("unknown", ())),
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="A vendor-specific message (stations:control); data is the station's answer.",
    )
    async def data_transfer(self, info: Info, input: DataTransferInput) -> DataTransferPayload:
        command = c.DataTransfer(vendor_id=input.vendor_id, message_id=input.message_id, data=input.data)
        result = await _run(info, input.station_id, command)
        return DataTransferPayload(**command_fields(result), data=result.detail.get("data"))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Tell the station to install firmware from a URL (stations:diagnose); progress "
        "arrives as FirmwareStatusNotification.",
    )
    async def update_firmware(self, info: Info, input: UpdateFirmwareInput) -> CommandPayload:
        command = c.UpdateFirmware(
            location=input.location,
            retrieve_at=input.retrieve_at or utcnow(),
            retries=input.retries,
            retry_interval_s=input.retry_interval_seconds,
        )
        return command_payload(await _run(info, input.station_id, command))

    @strawberry.mutation(permission_classes=[IsAuthenticated], description="The same for many stations.")
    async def bulk_update_firmware(self, info: Info, input: BulkUpdateFirmwareInput) -> BulkCommandPayload:
        command = c.UpdateFirmware(location=input.location, retrieve_at=input.retrieve_at or utcnow())
        return await _bulk(info, input.station_ids, command)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Ask the station to upload its diagnostics to a URL (stations:diagnose).",
    )
    async def request_diagnostics(self, info: Info, input: RequestDiagnosticsInput) -> DiagnosticsPayload:
        location, file_id = input.location, None
        if location is None:
            ctx = info.context
            s = ctx.settings
            file_id, location = await files.upload_for(
                ctx.db,
                ctx.actor,
                _station(input.station_id),
                base_url=s.upload_base_url or str(ctx.request.base_url),
                kind="diagnostics",
            )
        command = c.GetDiagnostics(
            location=location,
            start_at=input.start_at,
            stop_at=input.stop_at,
            retries=input.retries,
            retry_interval_s=input.retry_interval_seconds,
        )
        result = await _run(info, input.station_id, command)
        return DiagnosticsPayload(
            **command_fields(result), file_name=result.detail.get("file_name"), _file_id=file_id
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="The version of the local authorisation list installed on the station.",
    )
    async def local_list_version(self, info: Info, input: StationInput) -> LocalListVersionPayload:
        result = await _run(info, input.station_id, c.GetLocalListVersion())
        return LocalListVersionPayload(**command_fields(result), version=result.detail.get("version"))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Limit the current or power a station or connector delivers (stations:control).",
    )
    async def set_charging_limit(self, info: Info, input: SetChargingLimitInput) -> CommandPayload:
        return command_payload(await _run(info, input.station_id, _limit_command(input)))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Remove limits set with setChargingLimit (stations:control).",
    )
    async def clear_charging_limit(self, info: Info, input: ClearChargingLimitInput) -> CommandPayload:
        purpose = None if input.purpose is None else c.ProfilePurpose(input.purpose)
        command = c.ClearChargingProfile(
            profile_id=None if purpose is None else LIMIT_PROFILE_IDS[purpose],
            connector_id=input.connector_id,
        )
        return command_payload(await _run(info, input.station_id, command))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="The limits the station will apply over a window, all profiles combined "
        "(stations:diagnose).",
    )
    async def composite_schedule(self, info: Info, input: CompositeScheduleInput) -> CompositeSchedulePayload:
        if not 0 < input.duration_seconds <= MAX_SCHEDULE_SECONDS:
            raise InvalidInput(f"durationSeconds must be 1–{MAX_SCHEDULE_SECONDS}")
        command = c.GetCompositeSchedule(
            connector_id=input.connector_id,
            duration_s=input.duration_seconds,
            unit=None if input.unit is None else c.RateUnit(input.unit),
        )
        result = await _run(info, input.station_id, command)
        schedule = result.detail.get("schedule")
        return CompositeSchedulePayload(
            **command_fields(result),
            schedule=None if schedule is None else ChargingSchedule.from_detail(schedule),
        )


@strawberry.type
class ControlQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Commands sent to stations, newest first: who, what, the answer and its latency "
        "(network:read in the station's organisation).",
    )
    async def commands(
        self,
        info: Info,
        station_id: relay.GlobalID | None = None,
        organization_id: relay.GlobalID | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[StationCommandNode]:
        async with info.context.db() as s:
            p = await repository.page_commands(
                s,
                info.context.principal,
                station_id=None if station_id is None else _station(station_id),
                organization_id=None if organization_id is None else parse_organization_id(organization_id),
                first=clamp_first(first),
                after=decode_cursor("command", after),
                count=wants_total(info),
            )
        return connection(StationCommandNode.from_row, p, "command")

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Files the station uploaded on request, newest first (stations:diagnose).",
    )
    async def station_files(self, info: Info, station_id: relay.GlobalID) -> list[StationFileNode]:
        async with info.context.db() as s:
            found = await repository.station_files(s, info.context.principal, station_id=_station(station_id))
        return [StationFileNode.from_row(r) for r in found]

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="The station's configuration as it last reported it (network:read); empty "
        "until read, which happens after its first boot.",
    )
    async def station_configuration(self, info: Info, station_id: relay.GlobalID) -> list[ConfigurationKey]:
        async with info.context.db() as s:
            found = await repository.configuration(s, info.context.principal, _station(station_id))
        return [
            ConfigurationKey(key=r.key, value=r.value, readonly=r.readonly, read_at=r.read_at) for r in found
        ]
