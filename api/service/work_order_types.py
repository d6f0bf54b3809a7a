"""GraphQL shapes of work orders, their checklist, parts, timeline and attachments, the
organisation's maintenance settings and the annual maintenance cost per station.

Money is in minor units of the order's currency. Whoever can read an order (its technician,
the organisation's work-order managers) sees its costs; finance reads the yearly totals.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import Any, TypeAlias

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.control.types import StationFileNode
from api.network.types import StationNode, int_ids, station_node
from api.orgs.types import user_global_id
from api.service import work_order_access as access
from api.service.work_order_loaders import loaders
from schema.maintenance_models import DONE_STATES, WorkOrderSource, WorkOrderState
from schema.timeutil import utcnow

# The domain's own enums, registered with strawberry (GraphQL values are the member names).
WorkOrderStateGQL: TypeAlias = strawberry.enum(WorkOrderState, name="WorkOrderState")  # type: ignore[valid-type]
WorkOrderSourceGQL: TypeAlias = strawberry.enum(WorkOrderSource, name="WorkOrderSource")  # type: ignore[valid-type]


# Its own enum rather than the incidents' severity: that one is registered by the incident API.
@strawberry.enum(name="WorkOrderSeverity")
class WorkOrderSeverityGQL(Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@strawberry.type(name="WorkOrderChecklistItem")
class ChecklistItem:
    id: strawberry.ID
    text: str
    done: bool
    done_by: relay.GlobalID | None
    done_at: datetime | None

    @classmethod
    def from_row(cls, r: Any) -> ChecklistItem:
        return cls(
            id=strawberry.ID(str(r.id)),
            text=r.text,
            done=r.done,
            done_by=user_global_id(r.done_by),
            done_at=r.done_at,
        )


@strawberry.type(name="WorkOrderPart", description="A part used on the job; costs in minor units.")
class PartView:
    name: str
    part_number: str | None
    quantity: int
    unit_cost: int
    total_cost: int
    added_by: relay.GlobalID | None
    added_at: datetime

    @classmethod
    def from_row(cls, r: Any) -> PartView:
        return cls(
            name=r.name,
            part_number=r.part_number,
            quantity=r.quantity,
            unit_cost=r.unit_cost,
            total_cost=r.quantity * r.unit_cost,
            added_by=user_global_id(r.added_by),
            added_at=r.added_at,
        )


@strawberry.type(
    name="WorkOrderEntry",
    description="The order's timeline: state changes (who, when), notes, station actions, parts, files.",
)
class EntryView:
    at: datetime
    kind: str = strawberry.field(
        description="state | note | action | part | attachment | checklist | labour | sla"
    )
    by: relay.GlobalID | None = strawberry.field(description="The person; null: ChargeNet itself.")
    from_state: WorkOrderStateGQL | None
    to_state: WorkOrderStateGQL | None
    text: str | None
    detail: str = strawberry.field(description="Specifics as a JSON object.")

    @classmethod
    def from_row(cls, r: Any) -> EntryView:
        return cls(
            at=r.at,
            kind=r.kind,
            by=user_global_id(r.user_id),
            from_state=None if r.from_state is None else WorkOrderStateGQL(r.from_state),
            to_state=None if r.to_state is None else WorkOrderStateGQL(r.to_state),
            text=r.text,
            detail=json.dumps(r.detail),
        )


@strawberry.type(name="WorkOrderAttachment")
class AttachmentView:
    kind: str = strawberry.field(description="photo | diagnostics")
    file: StationFileNode


async def _parts_cost(info: Info, work_order_id: int) -> int:
    return sum(r.quantity * r.unit_cost for r in await loaders(info).parts.load(work_order_id))


def sla_breached(r: Any, now: datetime) -> bool:
    if r.sla_breached_at is not None:
        return True
    return WorkOrderState(r.state) not in DONE_STATES and now > r.sla_due_at


@strawberry.type(name="WorkOrder", description="A maintenance job on a station, assigned to a technician.")
class WorkOrderNode(relay.Node):
    id: relay.NodeID[int]
    title: str
    description: str
    source: WorkOrderSourceGQL
    severity: WorkOrderSeverityGQL
    state: WorkOrderStateGQL
    connector_id: int | None = strawberry.field(description="Null: the station as a whole.")
    assignee_id: relay.GlobalID | None = strawberry.field(description="The technician's Account id.")
    incident_id: relay.GlobalID | None
    inspection_plan_id: relay.GlobalID | None
    problem_report_id: relay.GlobalID | None
    sla_due_at: datetime
    sla_breached: bool = strawberry.field(description="Past its due time before the work was done.")
    sla_breached_at: datetime | None
    currency: str
    labour_cost: int
    created_by: relay.GlobalID | None
    created_at: datetime
    assigned_at: datetime | None
    started_at: datetime | None
    resolved_at: datetime | None
    verified_at: datetime | None
    cancelled_at: datetime | None
    updated_at: datetime
    _station_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, r: Any) -> WorkOrderNode:
        def gid(kind: str, pk: int | None) -> relay.GlobalID | None:
            return None if pk is None else relay.GlobalID(kind, str(pk))

        return cls(
            id=r.id,
            title=r.title,
            description=r.description,
            source=WorkOrderSourceGQL(r.source),
            severity=WorkOrderSeverityGQL(r.severity),
            state=WorkOrderStateGQL(r.state),
            connector_id=r.connector_id,
            assignee_id=user_global_id(r.assignee_id),
            incident_id=gid("Incident", r.incident_id),
            inspection_plan_id=gid("InspectionPlan", r.inspection_plan_id),
            problem_report_id=gid("ProblemReport", r.driver_report_id),
            sla_due_at=r.sla_due_at,
            sla_breached=sla_breached(r, utcnow()),
            sla_breached_at=r.sla_breached_at,
            currency=r.currency,
            labour_cost=r.labour_cost,
            created_by=user_global_id(r.created_by),
            created_at=r.created_at,
            assigned_at=r.assigned_at,
            started_at=r.started_at,
            resolved_at=r.resolved_at,
            verified_at=r.verified_at,
            cancelled_at=r.cancelled_at,
            updated_at=r.updated_at,
            _station_id=r.station_id,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[WorkOrderNode | None]:
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            conn = await s.connection()
            r = await access.reach(conn, info.context.principal)
            found = {
                row.id: row
                for row in (
                    await conn.execute(access.readable(r).where(access.WORK_ORDER.c.id.in_(ids)))
                ).all()
            }
        return [cls.from_row(found[i]) if i in found else None for i in ids]

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return await station_node(info, self._station_id)

    @strawberry.field
    async def checklist(self, info: Info) -> list[ChecklistItem]:
        return [ChecklistItem.from_row(r) for r in await loaders(info).checklist.load(self.id)]

    @strawberry.field
    async def parts(self, info: Info) -> list[PartView]:
        return [PartView.from_row(r) for r in await loaders(info).parts.load(self.id)]

    @strawberry.field(description="Parts: the sum of quantity × unit cost.")
    async def parts_cost(self, info: Info) -> int:
        return await _parts_cost(info, self.id)

    @strawberry.field(description="Parts plus labour.")
    async def total_cost(self, info: Info) -> int:
        return self.labour_cost + await _parts_cost(info, self.id)

    @strawberry.field
    async def timeline(self, info: Info) -> list[EntryView]:
        return [EntryView.from_row(r) for r in await loaders(info).timeline.load(self.id)]

    @strawberry.field
    async def attachments(self, info: Info) -> list[AttachmentView]:
        rows = await loaders(info).attachments.load(self.id)
        return [AttachmentView(kind=r.attachment_kind, file=StationFileNode.from_row(r)) for r in rows]


@strawberry.type(description="An organisation's maintenance rules.")
class WorkOrderSettings:
    sla_critical_minutes: int
    sla_high_minutes: int
    sla_medium_minutes: int
    sla_low_minutes: int
    auto_create_for: list[WorkOrderSeverityGQL] = strawberry.field(
        description="Incident severities that get a work order automatically."
    )


@strawberry.type(description="What maintenance cost at one station in a year (NEVI reporting).")
class StationMaintenanceCost:
    currency: str
    work_orders: int = strawberry.field(description="Orders resolved that year.")
    parts_cost: int
    labour_cost: int
    total_cost: int
    _station_id: strawberry.Private[int]

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return await station_node(info, self._station_id)
