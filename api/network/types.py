"""GraphQL types of the network. Operator-only fields name the permission they need."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import HasOnObject
from api.auth.roles import Permission
from api.control.requests import qr_code
from api.enums import ConnectorStatusGQL
from api.service.health_types import StationHealthNode
from schema.models import ChargingStation, Connector, Location


def int_ids(node_ids: Iterable[str]) -> list[int]:
    """Node ids as integers, one per id in order (-1 for one that is not a number, which no
    row has), so `resolve_nodes` answers stay aligned with what was asked."""
    out = []
    for nid in node_ids:
        try:
            out.append(int(nid))
        except ValueError:
            out.append(-1)
    return out


@strawberry.type(name="Location", description="A site with one or more charging stations.")
class LocationNode(relay.Node):
    id: relay.NodeID[int]
    name: str
    address: str
    city: str
    country: str
    latitude: float
    longitude: float
    time_zone: str = strawberry.field(description="IANA time zone, e.g. Europe/Berlin.")

    @classmethod
    def from_model(cls, m: Location) -> LocationNode:
        return cls(
            id=m.id or 0,
            name=m.name,
            address=m.address,
            city=m.city,
            country=m.country,
            latitude=m.latitude,
            longitude=m.longitude,
            time_zone=m.time_zone,
        )

    @strawberry.field(description="Stations at this location, by id.")
    async def stations(self, info: Info) -> list[StationNode]:
        rows = await info.context.loaders.stations_by_location.load(self.id)
        return [StationNode.from_model(s) for s in rows]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[LocationNode | None]:
        rows = await info.context.loaders.location_by_id.load_many(int_ids(node_ids))
        return [cls.from_model(r) if r else None for r in rows]


@strawberry.type(name="Connector", description="One plug of a station (an EVSE in OCPP 1.6).")
class ConnectorNode:
    connector_id: int = strawberry.field(description="OCPP connector number, from 1.")
    connector_type: str
    current_type: str
    max_power_w: int
    status: ConnectorStatusGQL
    error_code: str
    status_since: datetime | None
    qr_code: str = strawberry.field(
        description="The stable public code printed on the connector; startCharging(qrCode:) takes it."
    )

    @classmethod
    def from_model(cls, m: Connector, *, charge_point_id: str) -> ConnectorNode:
        return cls(
            connector_id=m.connector_id,
            connector_type=m.connector_type,
            current_type=m.current_type,
            max_power_w=m.max_power_w,
            status=ConnectorStatusGQL(m.status),
            error_code=m.error_code,
            status_since=m.status_since,
            qr_code=qr_code(charge_point_id, m.connector_id),
        )


@strawberry.type(name="Station", description="A charging station (an OCPP charge point).")
class StationNode(relay.Node):
    id: relay.NodeID[int]
    charge_point_id: str
    vendor: str | None
    model: str | None
    ocpp_version: str | None
    online: bool
    last_seen_at: datetime | None
    status: ConnectorStatusGQL = strawberry.field(
        description="Status of the station as a whole (connector 0)."
    )
    error_code: str
    distance_km: float | None = strawberry.field(
        default=None, description="Distance from the point of a nearby search."
    )
    _model: strawberry.Private[ChargingStation]
    # Set by list resolvers that loaded the page's connectors in one query up front.
    _connectors: strawberry.Private[list[Connector] | None] = None

    @property
    def organization_id(self) -> int | None:
        """The owner, for operator-only fields (not exposed: a Python property, not a field)."""
        return self._model.organization_id

    @classmethod
    def from_model(cls, m: ChargingStation, *, distance_km: float | None = None) -> StationNode:
        return cls(
            id=m.id or 0,
            charge_point_id=m.charge_point_id,
            vendor=m.vendor,
            model=m.model,
            ocpp_version=m.ocpp_version,
            online=m.online,
            last_seen_at=m.last_seen_at,
            status=ConnectorStatusGQL(m.status),
            error_code=m.error_code,
            distance_km=distance_km,
            _model=m,
        )

    @strawberry.field(permission_classes=[HasOnObject(Permission.NETWORK_READ)])
    def serial_number(self) -> str | None:
        return self._model.serial_number

    @strawberry.field(permission_classes=[HasOnObject(Permission.NETWORK_READ)])
    def firmware_version(self) -> str | None:
        return self._model.firmware_version

    @strawberry.field(
        permission_classes=[HasOnObject(Permission.NETWORK_READ)],
        description="OCPP feature profiles the station reported (null until its configuration was "
        "read); commands outside them answer NOT_SUPPORTED without reaching the station.",
    )
    def feature_profiles(self) -> list[str] | None:
        text = self._model.feature_profiles
        return None if text is None else [p for p in text.split(",") if p]

    @strawberry.field(
        permission_classes=[HasOnObject(Permission.NETWORK_READ)],
        description="Accepted, Pending or Rejected at BootNotification.",
    )
    def registration_status(self) -> str:
        return self._model.registration_status

    @strawberry.field(permission_classes=[HasOnObject(Permission.NETWORK_READ)])
    def last_boot_at(self) -> datetime | None:
        return self._model.last_boot_at

    @strawberry.field(permission_classes=[HasOnObject(Permission.NETWORK_READ)])
    def firmware_status(self) -> str | None:
        return self._model.firmware_status

    @strawberry.field(
        permission_classes=[HasOnObject(Permission.NETWORK_READ)],
        description="The station's health score and why (null until the worker first scored it).",
    )
    async def health(self, info: Info) -> StationHealthNode | None:
        row = await info.context.loaders.health_by_station.load(self.id)
        return StationHealthNode.from_row(row) if row else None

    @strawberry.field
    async def location(self, info: Info) -> LocationNode | None:
        if self._model.location_id is None:
            return None
        row = await info.context.loaders.location_by_id.load(self._model.location_id)
        return LocationNode.from_model(row) if row else None

    @strawberry.field
    def connectors(self, info: Info) -> list[ConnectorNode]:
        """Synchronous when the page prefetched connectors (a page of 100 stations then costs
        no per-station awaitable); otherwise batched through the DataLoader."""
        if self._connectors is not None:
            return [
                ConnectorNode.from_model(c, charge_point_id=self.charge_point_id) for c in self._connectors
            ]
        return self._load_connectors(info)  # type: ignore[return-value]  # awaited by graphql-core

    async def _load_connectors(self, info: Info) -> list[ConnectorNode]:
        rows = await info.context.loaders.connectors_by_station.load(self.id)
        return [ConnectorNode.from_model(c, charge_point_id=self.charge_point_id) for c in rows]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[StationNode | None]:
        rows = await info.context.loaders.station_by_id.load_many(int_ids(node_ids))
        return [cls.from_model(r) if r else None for r in rows]


@strawberry.type(description="A connector's status inside a live station update.")
class ConnectorStatusView:
    connector_id: int
    status: ConnectorStatusGQL
    error_code: str
    status_since: datetime | None


@strawberry.type(description="The full live status of one station after a change.")
class StationStatusUpdate:
    station_id: strawberry.ID
    charge_point_id: str
    online: bool
    status: ConnectorStatusGQL
    error_code: str
    connectors: list[ConnectorStatusView]
    changed_connector_id: int | None = strawberry.field(
        description="The connector that changed; null for a snapshot or a station-wide change."
    )
    reason: str = strawberry.field(description="snapshot, connected, disconnected, booted or status.")
    at: datetime
    _station_pk: strawberry.Private[int]

    @strawberry.field(description="The station itself (read when asked for).")
    async def station(self, info: Info) -> StationNode | None:
        row = await info.context.loaders.station_by_id.load(self._station_pk)
        return StationNode.from_model(row) if row else None


async def station_node(info: Info, pk: int) -> StationNode | None:
    """A station by id through the request's (caller-scoped) loader: the `station` field of
    every type that points at one."""
    row = await info.context.loaders.station_by_id.load(pk)
    return StationNode.from_model(row) if row else None


def station_global_id(pk: int) -> strawberry.ID:
    return strawberry.ID(str(relay.GlobalID("Station", str(pk))))


def parse_global_id(value: Any, expected: str) -> int:
    """Accept a GlobalID of the expected type; anything else is a typed input error."""
    from schema.errors import InvalidInput

    try:
        gid = value if isinstance(value, relay.GlobalID) else relay.GlobalID.from_id(str(value))
        if gid.type_name != expected:
            raise ValueError(gid.type_name)
        return int(gid.node_id)
    except (ValueError, TypeError):
        raise InvalidInput(f"not a {expected} id: {value!s:.60}") from None
