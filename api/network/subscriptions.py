"""Live station status: a snapshot first, then every change."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import TypeVar

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsPublic
from api.enums import ConnectorStatusGQL
from api.network import repository
from api.network.types import (
    ConnectorStatusView,
    StationStatusUpdate,
    parse_global_id,
    station_global_id,
)
from schema.bus import BusResumed
from schema.errors import InvalidInput
from schema.events import ConnectorState, Event, StationStatusChanged, location_topic, station_topic
from schema.models import ChargingStation, Connector
from schema.timeutil import utcnow

T = TypeVar("T")


def status_update(e: StationStatusChanged) -> StationStatusUpdate:
    return StationStatusUpdate(
        station_id=station_global_id(e.station_id),
        charge_point_id=e.charge_point_id,
        online=e.online,
        status=ConnectorStatusGQL(e.station_status),
        error_code=e.station_error_code,
        connectors=[
            ConnectorStatusView(
                connector_id=c.connector_id,
                status=ConnectorStatusGQL(c.status),
                error_code=c.error_code,
                status_since=c.status_since,
            )
            for c in e.connectors
        ],
        changed_connector_id=e.changed_connector_id,
        reason=e.reason,
        at=e.at,
        _station_pk=e.station_id,
    )


def snapshot_event(s: ChargingStation, connectors: list[Connector]) -> StationStatusChanged:
    """The stored state, shaped like a change so clients parse one payload type."""
    return StationStatusChanged(
        station_id=s.id or 0,
        charge_point_id=s.charge_point_id,
        location_id=s.location_id,
        at=utcnow(),
        online=s.online,
        station_status=s.status,
        station_error_code=s.error_code,
        connectors=tuple(
            ConnectorState(c.connector_id, c.status, c.error_code, c.status_since) for c in connectors
        ),
        changed_connector_id=None,
        reason="snapshot",
    )


async def status_snapshot(
    info: Info, station_id: int | None, location_id: int | None
) -> list[StationStatusUpdate]:
    async with info.context.db() as s:
        snapshot = await repository.station_snapshots(
            s, info.context.principal, station_id=station_id, location_id=location_id
        )
    return [status_update(snapshot_event(station, connectors)) for station, connectors in snapshot]


def _status_only(event: Event) -> StationStatusUpdate | None:
    return status_update(event) if isinstance(event, StationStatusChanged) else None


async def station_stream(
    info: Info, station_id: int | None, location_id: int | None, convert: Callable[[Event], T | None]
) -> AsyncGenerator[StationStatusUpdate | T, None]:
    """The stored status of a station (or a location's stations), then each event `convert`
    turns into something to send; after a bus outage the stored status again."""
    # Subscribe before reading the snapshot so no change falls between the two.
    sub = info.context.bus.subscribe(
        station_topic(station_id) if station_id else location_topic(location_id or 0)
    )
    try:
        for update in await status_snapshot(info, station_id, location_id):
            yield update
        async for event in sub:
            if isinstance(event, BusResumed):
                # The bus was down and changes may have been missed: the stored state again.
                for update in await status_snapshot(info, station_id, location_id):
                    yield update
                continue
            converted = convert(event)
            if converted is not None:
                yield converted
    finally:
        sub.close()


@strawberry.type
class NetworkSubscription:
    @strawberry.subscription(
        permission_classes=[IsPublic],
        description="Status of one station or of every station at a "
        "location: first the current state, then each change.",
    )
    async def station_status_changed(
        self,
        info: Info,
        station_id: relay.GlobalID | None = None,
        location_id: relay.GlobalID | None = None,
    ) -> AsyncGenerator[StationStatusUpdate, None]:
        if (station_id is None) == (location_id is None):
            raise InvalidInput("give exactly one of stationId or locationId")
        sid = parse_global_id(station_id, "Station") if station_id else None
        lid = parse_global_id(location_id, "Location") if location_id else None
        async for update in station_stream(info, sid, lid, _status_only):
            yield update
