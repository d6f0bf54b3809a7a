"""`stationEvents`: everything an operator's station screen follows live — status, boots,
firmware and diagnostics progress, configuration reads and command results — in one stream.

Operator data (network:read in the station's organisation): the subscription is refused for
a station or location the caller may not read, and the stream never carries another tenant's
events because it only listens to the requested station's or location's topic.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.auth.roles import Permission
from api.control.mutations import CommandOutcomeGQL
from api.network import repository
from api.network.subscriptions import station_stream, status_update
from api.network.types import (
    StationNode,
    StationStatusUpdate,
    parse_global_id,
    station_global_id,
    station_node,
)
from schema.errors import Forbidden, InvalidInput, NotFound
from schema.events import (
    Event,
    StationCommandCompleted,
    StationReported,
    StationStatusChanged,
)


@strawberry.type(
    description="Something the station reported: firmware or diagnostics progress, "
    "a configuration read, an event or security notice, vendor data."
)
class StationReport:
    station_id: strawberry.ID
    charge_point_id: str
    action: str = strawberry.field(description="FirmwareStatusNotification, ConfigurationRead, …")
    detail: str = strawberry.field(description="The specifics as a JSON object.")
    at: datetime
    _station_pk: strawberry.Private[int]

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return await station_node(info, self._station_pk)


@strawberry.type(description="A command to the station got its answer (see the command log for all).")
class StationCommandResult:
    station_id: strawberry.ID
    charge_point_id: str
    command_id: relay.GlobalID
    name: str
    outcome: CommandOutcomeGQL
    station_status: str | None
    latency_ms: int
    at: datetime


StationEvent = Annotated[
    StationStatusUpdate | StationReport | StationCommandResult, strawberry.union("StationEvent")
]


async def _check_access(info: Info, station_id: int | None, location_id: int | None) -> None:
    async with info.context.db() as s:
        if station_id is not None:
            found = (await repository.stations_by_ids(s, info.context.principal, [station_id])).get(
                station_id
            )
            org = None if found is None else found.organization_id
            missing = found is None
        else:
            place = (await repository.locations_by_ids(s, info.context.principal, [location_id or 0])).get(
                location_id or 0
            )
            org = None if place is None else place.organization_id
            missing = place is None
    if missing:
        raise NotFound("no such station" if station_id is not None else "no such location")
    if not info.context.principal.can(Permission.NETWORK_READ, org):
        raise Forbidden("requires network:read in its organisation")


def _report(e: StationReported) -> StationReport:
    return StationReport(
        station_id=station_global_id(e.station_id),
        charge_point_id=e.charge_point_id,
        action=e.action,
        detail=json.dumps(e.detail, default=str),
        at=e.at,
        _station_pk=e.station_id,
    )


def _command(e: StationCommandCompleted) -> StationCommandResult:
    return StationCommandResult(
        station_id=station_global_id(e.station_id),
        charge_point_id=e.charge_point_id,
        command_id=relay.GlobalID("StationCommand", str(e.command_id)),
        name=e.name,
        outcome=CommandOutcomeGQL(e.outcome),
        station_status=e.station_status,
        latency_ms=e.latency_ms,
        at=e.at,
    )


OperatorEvent = StationStatusUpdate | StationReport | StationCommandResult


def _operator_event(event: Event) -> OperatorEvent | None:
    if isinstance(event, StationStatusChanged):
        return status_update(event)
    if isinstance(event, StationReported):
        return _report(event)
    if isinstance(event, StationCommandCompleted):
        return _command(event)
    return None


@strawberry.type
class StationEventsSubscription:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="One station's or one location's events for operators (network:read): the "
        "current status first, then status changes, boots, firmware/diagnostics progress, "
        "configuration reads and command results as they happen.",
    )
    async def station_events(
        self,
        info: Info,
        station_id: relay.GlobalID | None = None,
        location_id: relay.GlobalID | None = None,
    ) -> AsyncGenerator[StationEvent, None]:
        if (station_id is None) == (location_id is None):
            raise InvalidInput("give exactly one of stationId or locationId")
        sid = parse_global_id(station_id, "Station") if station_id else None
        lid = parse_global_id(location_id, "Location") if location_id else None
        await _check_access(info, sid, lid)
        stream: AsyncGenerator[OperatorEvent, None] = station_stream(info, sid, lid, _operator_event)
        async for event in stream:
            yield event
