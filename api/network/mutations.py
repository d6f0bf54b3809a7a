"""Operator mutations that shape the network: registering stations, approving ones that
connected unannounced, and rotating a station's password."""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.control.types import CommandPayload, command_fields
from api.network import provisioning
from api.network.types import StationNode, parse_global_id


@strawberry.input
class ConnectorSpecInput:
    connector_id: int
    connector_type: str = "Type2"
    current_type: str = strawberry.field(default="AC", description="AC or DC.")
    max_power_w: int = 22_000


@strawberry.input
class RegisterStationInput:
    location_id: relay.GlobalID
    charge_point_id: str = strawberry.field(description="The identity the station connects with.")
    connectors: list[ConnectorSpecInput]
    security_profile: int = strawberry.field(
        default=1,
        description="0 none (development only), 1 Basic auth, 2 TLS + Basic auth, 3 TLS client certificate.",
    )


@strawberry.type
class RegisterStationPayload:
    station: StationNode
    password: str | None = strawberry.field(
        description="The station's Basic-auth password (profiles 1 and 2). Shown this once; only "
        "its hash is stored."
    )


@strawberry.input
class ApproveStationInput:
    station_id: relay.GlobalID
    location_id: relay.GlobalID | None = strawberry.field(
        default=None, description="Required for a station that connected unannounced."
    )


@strawberry.type
class RotatePasswordPayload(CommandPayload):
    password: str | None = strawberry.field(
        description="The new password, when the station accepted it (shown this once). Until the "
        "station connects with it, its old password keeps working."
    )


@strawberry.type
class NetworkMutation:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Register a station at a location (network:manage); returns its password once.",
    )
    async def register_station(self, info: Info, input: RegisterStationInput) -> RegisterStationPayload:
        ctx = info.context
        station, password = await provisioning.register_station(
            ctx.db,
            ctx.actor,
            location_id=parse_global_id(input.location_id, "Location"),
            charge_point_id=input.charge_point_id,
            connectors=[
                provisioning.ConnectorSpec(c.connector_id, c.connector_type, c.current_type, c.max_power_w)
                for c in input.connectors
            ],
            security_profile=input.security_profile,
        )
        return RegisterStationPayload(station=StationNode.from_model(station), password=password)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Accept a Pending station into the network (network:manage); its next "
        "BootNotification is Accepted.",
    )
    async def approve_station(self, info: Info, input: ApproveStationInput) -> StationNode:
        ctx = info.context
        station = await provisioning.decide_registration(
            ctx.db,
            ctx.actor,
            station_id=parse_global_id(input.station_id, "Station"),
            location_id=None if input.location_id is None else parse_global_id(input.location_id, "Location"),
            accept=True,
        )
        return StationNode.from_model(station)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Refuse a station (network:manage); its BootNotification is answered Rejected.",
    )
    async def reject_station(self, info: Info, station_id: relay.GlobalID) -> StationNode:
        ctx = info.context
        station = await provisioning.decide_registration(
            ctx.db,
            ctx.actor,
            station_id=parse_global_id(station_id, "Station"),
            location_id=None,
            accept=False,
        )
        return StationNode.from_model(station)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Give a station a new password over OCPP (network:manage) without locking it out.",
    )
    async def rotate_station_password(self, info: Info, station_id: relay.GlobalID) -> RotatePasswordPayload:
        ctx = info.context
        result, password = await provisioning.rotate_password(
            ctx.db,
            ctx.bus,
            ctx.actor,
            station_id=parse_global_id(station_id, "Station"),
            timeout_s=ctx.settings.command_timeout_s,
        )
        return RotatePasswordPayload(**command_fields(result), password=password)
