"""GraphQL shapes of inspection plans and drivers' problem reports."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeAlias

import strawberry
from sqlalchemy import select
from strawberry import relay
from strawberry.types import Info

from api.auth.principal import Principal
from api.auth.roles import Permission
from api.network.types import StationNode, int_ids, station_node
from api.service import driver_reports as reports
from api.service.inspections import PLAN
from api.service.work_order_types import WorkOrderSeverityGQL

ProblemCategoryGQL: TypeAlias = strawberry.enum(reports.ProblemCategory, name="ProblemCategory")  # type: ignore[valid-type]
ReportStatusGQL: TypeAlias = strawberry.enum(reports.ReportStatus, name="ProblemReportStatus")  # type: ignore[valid-type]


def readable_plans(principal: Principal) -> Any:
    orgs = principal.organizations_with(Permission.WORK_ORDERS)
    if orgs is None:
        return select(PLAN)
    return select(PLAN).where(PLAN.c.organization_id.in_(orgs))


@strawberry.type(
    name="InspectionPlan",
    description="Preventive maintenance for the stations of a vendor/model or location; due after "
    "whichever of its limits comes first.",
)
class InspectionPlanNode(relay.Node):
    id: relay.NodeID[int]
    name: str
    vendor: str | None
    model: str | None
    location_id: relay.GlobalID | None
    every_days: int | None
    every_sessions: int | None
    every_kwh: int | None
    checklist: list[str]
    severity: WorkOrderSeverityGQL
    active: bool
    created_at: datetime

    @classmethod
    def from_row(cls, r: Any) -> InspectionPlanNode:
        return cls(
            id=r.id,
            name=r.name,
            vendor=r.vendor,
            model=r.model,
            location_id=None if r.location_id is None else relay.GlobalID("Location", str(r.location_id)),
            every_days=r.every_days,
            every_sessions=r.every_sessions,
            every_kwh=None if r.every_wh is None else r.every_wh // 1000,
            checklist=list(r.checklist),
            severity=WorkOrderSeverityGQL(r.severity),
            active=r.active,
            created_at=r.created_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[InspectionPlanNode | None]:
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            stmt = readable_plans(info.context.principal).where(PLAN.c.id.in_(ids))
            found = {r.id: r for r in (await (await s.connection()).execute(stmt)).all()}
        return [cls.from_row(found[i]) if i in found else None for i in ids]


@strawberry.type(
    name="ProblemReport",
    description="A driver's report of a problem at a station and how far it got; never who sent it "
    "to the operator, never the operator's notes to the driver.",
)
class ProblemReportNode(relay.Node):
    id: relay.NodeID[int]
    connector_id: int | None
    category: ProblemCategoryGQL
    text: str
    status: ReportStatusGQL
    has_photo: bool
    created_at: datetime
    _station_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, r: Any, status: reports.ReportStatus) -> ProblemReportNode:
        return cls(
            id=r.id,
            connector_id=r.connector_id,
            category=ProblemCategoryGQL(r.category),
            text=r.text,
            status=status,
            has_photo=r.photo_file_id is not None,
            created_at=r.created_at,
            _station_id=r.station_id,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ProblemReportNode | None]:
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            conn = await s.connection()
            stmt = reports.readable_reports(info.context.principal).where(reports.REPORT.c.id.in_(ids))
            rows = (await conn.execute(stmt)).all()
            status = await reports.statuses(conn, list(rows))
        found = {r.id: r for r in rows}
        return [cls.from_row(found[i], status[i]) if i in found else None for i in ids]

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return await station_node(info, self._station_id)
