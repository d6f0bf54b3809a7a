"""Maintenance settings, inspection plans and drivers' problem reports over GraphQL.

Settings and plans are managed by work-order managers of the organisation; drivers report
problems and follow their own reports; operators read the reports of their organisations.
"""

from __future__ import annotations

import strawberry
from sqlalchemy import select
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import Has, IsUser
from api.auth.roles import Permission
from api.network.types import parse_global_id
from api.orgs.repository import page
from api.orgs.types import connection, parse_organization_id
from api.pagination import Connection, clamp_first, decode_cursor, wants_total
from api.service import driver_reports as reports
from api.service import inspections
from api.service import work_order_access as access
from api.service import work_orders as wo
from api.service.maintenance_types import (
    InspectionPlanNode,
    ProblemCategoryGQL,
    ProblemReportNode,
    readable_plans,
)
from api.service.work_order_jobs import publish
from api.service.work_order_mutations import PhotoInput
from api.service.work_order_queries import settings_view
from api.service.work_order_types import WorkOrderSettings, WorkOrderSeverityGQL
from schema.errors import Forbidden, NotFound
from schema.incident_models import IncidentSeverity
from schema.timeutil import utcnow

# A driver's own list: the app shows recent reports, not an archive.
MAX_MY_REPORTS = 100


@strawberry.input
class WorkOrderSettingsInput:
    organization_id: relay.GlobalID
    sla_critical_minutes: int
    sla_high_minutes: int
    sla_medium_minutes: int
    sla_low_minutes: int
    auto_create_for: list[WorkOrderSeverityGQL]


@strawberry.input
class InspectionPlanInput:
    organization_id: relay.GlobalID
    name: str
    vendor: str | None = None
    model: str | None = None
    location_id: relay.GlobalID | None = None
    every_days: int | None = None
    every_sessions: int | None = None
    every_kwh: int | None = None
    checklist: list[str] = strawberry.field(default_factory=list)
    severity: WorkOrderSeverityGQL = WorkOrderSeverityGQL.LOW


@strawberry.input
class ReportProblemInput:
    station_id: relay.GlobalID
    category: ProblemCategoryGQL
    text: str
    connector_id: int | None = None
    photo: PhotoInput | None = None


async def _require_manager(info: Info, organization_id: int) -> None:
    p = info.context.principal
    if not (p.everywhere or organization_id in p.grants):
        raise NotFound("no such organization")
    async with info.context.db() as s:
        r = await access.reach(await s.connection(), p)
    if not r.may_manage(organization_id):
        raise Forbidden("requires workorders:manage as a manager of this organisation")


@strawberry.type
class MaintenanceQuery:
    @strawberry.field(
        permission_classes=[Has(Permission.WORK_ORDERS)],
        description="Inspection plans of the organisations where the caller works on work orders.",
    )
    async def inspection_plans(
        self, info: Info, organization_id: relay.GlobalID | None = None
    ) -> list[InspectionPlanNode]:
        stmt = readable_plans(info.context.principal).order_by(inspections.PLAN.c.id)
        if organization_id is not None:
            stmt = stmt.where(inspections.PLAN.c.organization_id == parse_organization_id(organization_id))
        async with info.context.db() as s:
            rows = (await (await s.connection()).execute(stmt)).all()
        return [InspectionPlanNode.from_row(r) for r in rows]

    @strawberry.field(
        permission_classes=[Has(Permission.WORK_ORDERS)],
        description="Drivers' problem reports at the caller's organisations, newest first.",
    )
    async def problem_reports(
        self,
        info: Info,
        organization_id: relay.GlobalID | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[ProblemReportNode]:
        orgs = info.context.principal.organizations_with(Permission.WORK_ORDERS)
        stmt = select(reports.REPORT)
        if orgs is not None:
            stmt = stmt.where(reports.REPORT.c.organization_id.in_(orgs))
        if organization_id is not None:
            stmt = stmt.where(reports.REPORT.c.organization_id == parse_organization_id(organization_id))
        async with info.context.db() as s:
            p = await page(
                s,
                stmt,
                reports.REPORT.c.id,
                first=clamp_first(first),
                after=decode_cursor("problem_report", after),
                newest_first=True,
                count=wants_total(info),
            )
            status = await reports.statuses(await s.connection(), p.rows)
        return connection(lambda r: ProblemReportNode.from_row(r, status[r.id]), p, "problem_report")

    @strawberry.field(
        permission_classes=[IsUser],
        description="The caller's own problem reports and their status, newest first.",
    )
    async def my_problem_reports(self, info: Info) -> list[ProblemReportNode]:
        user_id = info.context.principal.user_id or 0
        async with info.context.db() as s:
            conn = await s.connection()
            stmt = reports.mine(user_id).order_by(reports.REPORT.c.id.desc()).limit(MAX_MY_REPORTS)
            rows = list((await conn.execute(stmt)).all())
            status = await reports.statuses(conn, rows)
        return [ProblemReportNode.from_row(r, status[r.id]) for r in rows]


@strawberry.type
class MaintenanceMutation:
    @strawberry.mutation(
        permission_classes=[Has(Permission.WORK_ORDERS)],
        description="The organisation's SLA per severity and automatic work orders (managers); "
        "applies to orders created from now on.",
    )
    async def update_work_order_settings(
        self, info: Info, input: WorkOrderSettingsInput
    ) -> WorkOrderSettings:
        org = parse_organization_id(input.organization_id)
        await _require_manager(info, org)
        rules = wo.Rules(
            sla_minutes={
                "critical": input.sla_critical_minutes,
                "high": input.sla_high_minutes,
                "medium": input.sla_medium_minutes,
                "low": input.sla_low_minutes,
            },
            auto_create=frozenset(s.value for s in input.auto_create_for),
        )
        async with info.context.db() as s:
            saved = await wo.save_rules(await s.connection(), org, rules, at=utcnow())
            await s.commit()
        return settings_view(saved)

    @strawberry.mutation(
        permission_classes=[Has(Permission.WORK_ORDERS)],
        description="A preventive maintenance plan (managers): give a vendor/model and/or location, and "
        "at least one of everyDays, everySessions, everyKwh.",
    )
    async def create_inspection_plan(self, info: Info, input: InspectionPlanInput) -> InspectionPlanNode:
        org = parse_organization_id(input.organization_id)
        await _require_manager(info, org)
        plan = inspections.PlanInput(
            name=input.name,
            vendor=input.vendor,
            model=input.model,
            location_id=None if input.location_id is None else parse_global_id(input.location_id, "Location"),
            every_days=input.every_days,
            every_sessions=input.every_sessions,
            every_kwh=input.every_kwh,
            checklist=tuple(input.checklist),
            severity=IncidentSeverity(input.severity.value),
        )
        async with info.context.db() as s:
            conn = await s.connection()
            plan_id = await inspections.create_plan(
                conn, org, plan, at=utcnow(), user_id=info.context.principal.user_id
            )
            row = (await conn.execute(select(inspections.PLAN).where(inspections.PLAN.c.id == plan_id))).one()
            await s.commit()
        return InspectionPlanNode.from_row(row)

    @strawberry.mutation(
        permission_classes=[Has(Permission.WORK_ORDERS)],
        description="Pause or resume a plan (managers); orders already created stay.",
    )
    async def set_inspection_plan_active(
        self, info: Info, id: relay.GlobalID, active: bool
    ) -> InspectionPlanNode:
        pk = parse_global_id(id, "InspectionPlan")
        async with info.context.db() as s:
            conn = await s.connection()
            row = (
                await conn.execute(readable_plans(info.context.principal).where(inspections.PLAN.c.id == pk))
            ).first()
            if row is None:
                raise NotFound("no such inspection plan")
        await _require_manager(info, row.organization_id)
        async with info.context.db() as s:
            conn = await s.connection()
            await inspections.set_active(conn, pk, active)
            row = (await conn.execute(select(inspections.PLAN).where(inspections.PLAN.c.id == pk))).one()
            await s.commit()
        return InspectionPlanNode.from_row(row)

    @strawberry.mutation(
        permission_classes=[IsUser],
        description="Report a problem at a station (a driver, from the app); the operator gets it as an "
        "incident. At most 5 reports an hour, one per connector per 10 minutes.",
    )
    async def report_problem(self, info: Info, input: ReportProblemInput) -> ProblemReportNode:
        ctx = info.context
        photo = None
        if input.photo is not None:
            photo = reports.Photo(input.photo.file_name, input.photo.content_type, input.photo.data_base64)
        async with ctx.db() as s:
            conn = await s.connection()
            report_id, events = await reports.report(
                conn,
                user_id=ctx.principal.user_id or 0,
                station_id=parse_global_id(input.station_id, "Station"),
                connector_id=input.connector_id,
                category=reports.ProblemCategory(input.category.value),
                text=input.text,
                photo=photo,
                at=utcnow(),
            )
            await s.commit()
        await publish(ctx.bus, events)
        async with ctx.db() as s:
            conn = await s.connection()
            row = (await conn.execute(select(reports.REPORT).where(reports.REPORT.c.id == report_id))).one()
            status = await reports.statuses(conn, [row])
        return ProblemReportNode.from_row(row, status[report_id])
