"""GraphQL shapes of incidents and their timelines (operators with network:read)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.network.types import StationNode, int_ids, station_node
from api.orgs.types import user_global_id
from api.service import incident_repository as repo

if TYPE_CHECKING:
    from api.service.work_order_types import WorkOrderNode
from schema.events import IncidentChanged


@strawberry.enum(description="What is wrong.")
class IncidentKindGQL(Enum):
    OFFLINE = "offline"
    FAULT = "fault"
    NOT_CHARGING = "not_charging"
    DEGRADED = "degraded"
    SECURITY = "security"
    DRIVER_REPORT = "driver_report"


@strawberry.enum
class IncidentSeverityGQL(Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@strawberry.enum
class IncidentStateGQL(Enum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@strawberry.type(
    description="One line of an incident's timeline: evidence from the station or what a person did."
)
class IncidentEntry:
    at: datetime
    kind: str = strawberry.field(
        description="opened | evidence | recovered | acknowledged | comment | resolved | reopened"
    )
    text: str | None
    detail: str = strawberry.field(description="The station facts behind it, as a JSON object.")
    user_id: relay.GlobalID | None = strawberry.field(description="Who acted; null: the system.")
    user_name: str | None

    @classmethod
    def from_row(cls, r: Any) -> IncidentEntry:
        return cls(
            at=r.at,
            kind=r.kind,
            text=r.text,
            detail=json.dumps(r.detail or {}, default=str),
            user_id=user_global_id(r.user_id),
            user_name=r.user_name,
        )


@strawberry.type(name="Incident", description="Something wrong with a station (network:read).")
class IncidentNode(relay.Node):
    id: relay.NodeID[int]
    kind: IncidentKindGQL
    severity: IncidentSeverityGQL
    state: IncidentStateGQL
    title: str
    connector_id: int | None = strawberry.field(description="Null: the station as a whole.")
    error_code: str | None
    vendor_error_code: str | None = strawberry.field(description="As the station reported it.")
    auto_resolve: bool = strawberry.field(
        description="False: the station recovering is noted, but a person must resolve it."
    )
    occurrences: int
    opened_at: datetime
    last_seen_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    resolution: str | None
    acknowledged_by: relay.GlobalID | None
    resolved_by: relay.GlobalID | None = strawberry.field(description="Null when resolved: automatically.")
    organization_id: strawberry.Private[int | None]
    _station_pk: strawberry.Private[int]

    @classmethod
    def from_row(cls, r: Any) -> IncidentNode:
        return cls(
            id=r.id,
            kind=IncidentKindGQL(r.kind),
            severity=IncidentSeverityGQL(r.severity),
            state=IncidentStateGQL(r.state),
            title=r.title,
            connector_id=r.connector_id,
            error_code=r.error_code,
            vendor_error_code=r.vendor_error_code,
            auto_resolve=r.auto_resolve,
            occurrences=r.occurrences,
            opened_at=r.opened_at,
            last_seen_at=r.last_seen_at,
            acknowledged_at=r.acknowledged_at,
            resolved_at=r.resolved_at,
            resolution=r.resolution,
            acknowledged_by=user_global_id(r.acknowledged_by),
            resolved_by=user_global_id(r.resolved_by),
            organization_id=r.organization_id,
            _station_pk=r.station_id,
        )

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return await station_node(info, self._station_pk)

    @strawberry.field(description="The timeline, oldest first.")
    async def entries(self, info: Info) -> list[IncidentEntry]:
        found = await info.context.loaders.incident_entries.load(self.id)
        return [IncidentEntry.from_row(r) for r in found]

    @strawberry.field(
        description="The work orders raised for it that the caller may read: all of them with "
        "workorders:manage in the organisation, a technician's own; none without the permission."
    )
    async def work_orders(
        self, info: Info
    ) -> list[Annotated[WorkOrderNode, strawberry.lazy("api.service.work_order_types")]]:
        from api.service.work_order_loaders import loaders
        from api.service.work_order_types import WorkOrderNode

        rows = await loaders(info).by_incident.load(int(self.id))
        return [WorkOrderNode.from_row(r) for r in rows]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[IncidentNode | None]:
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            found = await repo.incidents_by_ids(s, info.context.principal, ids)
        return [cls.from_row(found[i]) if i in found else None for i in ids]


@strawberry.type(description="An incident opened, recurred, was acknowledged, commented on or resolved.")
class FleetAlert:
    change: str = strawberry.field(
        description="opened | recurred | recovered | acknowledged | commented | resolved"
    )
    incident_id: relay.GlobalID
    kind: IncidentKindGQL
    severity: IncidentSeverityGQL
    state: IncidentStateGQL
    title: str
    connector_id: int | None
    charge_point_id: str
    at: datetime
    _station_pk: strawberry.Private[int]

    @classmethod
    def snapshot(cls, r: Any) -> FleetAlert:
        """An unresolved incident as it stands when the stream starts (change "snapshot")."""
        return cls(
            change="snapshot",
            incident_id=relay.GlobalID("Incident", str(r.id)),
            kind=IncidentKindGQL(r.kind),
            severity=IncidentSeverityGQL(r.severity),
            state=IncidentStateGQL(r.state),
            title=r.title,
            connector_id=r.connector_id,
            charge_point_id=r.charge_point_id,
            at=r.last_seen_at,
            _station_pk=r.station_id,
        )

    @classmethod
    def from_event(cls, e: IncidentChanged) -> FleetAlert:
        return cls(
            change=e.change,
            incident_id=relay.GlobalID("Incident", str(e.incident_id)),
            kind=IncidentKindGQL(e.incident_kind),
            severity=IncidentSeverityGQL(e.severity),
            state=IncidentStateGQL(e.state),
            title=e.title,
            connector_id=e.connector_id,
            charge_point_id=e.charge_point_id,
            at=e.at,
            _station_pk=e.station_id,
        )

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return await station_node(info, self._station_pk)
