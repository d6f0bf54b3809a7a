"""Work order mutations. Managers (workorders:manage, not in the technician role) create,
assign, verify and cancel; the assigned technician — or a manager — starts, resolves, records
notes, checklist ticks, parts, labour and photos, and runs the station's remote actions.

Each mutation is one unit of work: authorise, call the service, commit, then announce the
change live (`workOrderUpdated`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import Has
from api.auth.roles import Permission
from api.control.types import CommandPayload, StationFileNode, command_fields
from api.network import repository as network
from api.network.types import parse_global_id
from api.orgs.types import parse_account_id
from api.service import work_order_access as access
from api.service import work_order_actions as actions
from api.service import work_order_details as details
from api.service import work_orders as wo
from api.service.driver_reports import REPORT
from api.service.work_order_jobs import publish
from api.service.work_order_queries import reload
from api.service.work_order_types import WorkOrderNode, WorkOrderSeverityGQL, WorkOrderStateGQL
from schema.errors import Forbidden, InvalidInput, NotFound
from schema.incident_models import IncidentSeverity
from schema.maintenance_models import WorkOrderSource, WorkOrderState
from schema.request_models import StationFile
from schema.timeutil import utcnow

S = WorkOrderState
# Moves only a manager makes: the technician does the work, someone else signs it off.
MANAGER_MOVES = frozenset({S.VERIFIED, S.CANCELLED})
Change = Callable[[AsyncConnection, Any], Awaitable[list[Any]]]


async def apply(info: Info, work_order_id: relay.GlobalID, change: Change, *, manager: bool) -> WorkOrderNode:
    """Authorise on the order, run `change`, commit, announce."""
    pk = parse_global_id(work_order_id, "WorkOrder")
    async with info.context.db() as s:
        conn = await s.connection()
        r = await access.reach(conn, info.context.principal)
        order = await (access.managed_order(conn, r, pk) if manager else access.readable_order(conn, r, pk))
        if not r.may_work_on(order):
            raise Forbidden("only the technician assigned to this work order (or a manager) works on it")
        events = await change(conn, order)
        await s.commit()
    await publish(info.context.bus, events)
    return await reload(info, pk)


@strawberry.input
class PhotoInput:
    file_name: str
    content_type: str = strawberry.field(description="image/jpeg, image/png, image/heic or image/webp.")
    data_base64: str = strawberry.field(description="The image, base64-encoded (at most 10 MB).")


@strawberry.input
class CreateWorkOrderInput:
    station_id: relay.GlobalID
    title: str
    severity: WorkOrderSeverityGQL
    connector_id: int | None = None
    description: str = ""
    incident_id: relay.GlobalID | None = strawberry.field(default=None, description="The incident it fixes.")
    problem_report_id: relay.GlobalID | None = strawberry.field(
        default=None, description="The driver's report it answers."
    )
    checklist: list[str] = strawberry.field(default_factory=list)
    assignee_id: relay.GlobalID | None = strawberry.field(default=None, description="Assign at once.")


@strawberry.input
class WorkOrderPartInput:
    name: str
    part_number: str | None = None
    quantity: int = 1
    unit_cost: int = strawberry.field(default=0, description="Minor units of the order's currency.")


StationActionGQL: TypeAlias = strawberry.enum(actions.StationAction, name="WorkOrderStationAction")  # type: ignore[valid-type]


@strawberry.input
class WorkOrderStationActionInput:
    work_order_id: relay.GlobalID
    action: StationActionGQL
    connector_id: int | None = strawberry.field(
        default=None, description="Unlock: required. Availability and trigger: null or 0 is the station."
    )


@strawberry.type
class WorkOrderActionPayload(CommandPayload):
    work_order: WorkOrderNode
    file: StationFileNode | None = strawberry.field(description="Diagnostics: the file the station uploads.")
    exclusion_recorded: bool = strawberry.field(
        description="Taking the station out of service during the visit was recorded as scheduled "
        "maintenance."
    )


async def _incident_for(conn: AsyncConnection, incident_pk: int, org: int, station_id: int) -> None:
    row = (
        await conn.execute(
            select(wo.INCIDENT.c.organization_id, wo.INCIDENT.c.station_id).where(
                wo.INCIDENT.c.id == incident_pk
            )
        )
    ).first()
    if row is None or row.organization_id != org:
        raise NotFound("no such incident")
    if row.station_id != station_id:
        raise InvalidInput("the incident is on another station")


async def _report_for(conn: AsyncConnection, report_pk: int, org: int) -> Any:
    row = (await conn.execute(select(REPORT).where(REPORT.c.id == report_pk))).first()
    if row is None or row.organization_id != org:
        raise NotFound("no such problem report")
    return row


@strawberry.type
class WorkOrderMutation:
    @strawberry.mutation(
        permission_classes=[Has(Permission.WORK_ORDERS)],
        description="A work order by hand, optionally for an incident or a driver's report (managers).",
    )
    async def create_work_order(self, info: Info, input: CreateWorkOrderInput) -> WorkOrderNode:
        ctx = info.context
        station_pk = parse_global_id(input.station_id, "Station")
        now = utcnow()
        user_id = ctx.principal.user_id
        async with ctx.db() as s:
            station = (await network.stations_by_ids(s, ctx.principal, [station_pk])).get(station_pk)
            conn = await s.connection()
            r = await access.reach(conn, ctx.principal)
            if (
                station is None
                or station.organization_id is None
                or not r.may_manage(station.organization_id)
            ):
                raise NotFound("no such station")
            org = station.organization_id
            incident_pk = (
                None if input.incident_id is None else parse_global_id(input.incident_id, "Incident")
            )
            report_pk = None
            source = WorkOrderSource.MANUAL
            if input.problem_report_id is not None:
                report_pk = parse_global_id(input.problem_report_id, "ProblemReport")
                report = await _report_for(conn, report_pk, org)
                incident_pk = incident_pk or report.incident_id
                source = WorkOrderSource.DRIVER_REPORT
            elif incident_pk is not None:
                source = WorkOrderSource.INCIDENT
            if incident_pk is not None:
                await _incident_for(conn, incident_pk, org, station_pk)
            made = await wo.create(
                conn,
                wo.NewWorkOrder(
                    station_id=station_pk,
                    connector_id=input.connector_id,
                    title=input.title,
                    description=input.description,
                    source=source,
                    severity=IncidentSeverity(input.severity.value),
                    incident_id=incident_pk,
                    driver_report_id=report_pk,
                    checklist=tuple(input.checklist),
                ),
                at=now,
                user_id=user_id,
            )
            if made is None:
                raise InvalidInput("that incident already has a work order")
            order_id, events = made
            if input.assignee_id is not None:
                order = (
                    await conn.execute(select(wo.WORK_ORDER).where(wo.WORK_ORDER.c.id == order_id))
                ).one()
                events += await wo.assign(
                    conn, order, parse_account_id(input.assignee_id), at=now, user_id=user_id
                )
            await s.commit()
        await publish(ctx.bus, events)
        return await reload(info, order_id)

    @strawberry.mutation(
        permission_classes=[Has(Permission.WORK_ORDERS)],
        description="Give the order to a technician of its organisation, or hand it over (managers).",
    )
    async def assign_work_order(
        self, info: Info, id: relay.GlobalID, assignee_id: relay.GlobalID
    ) -> WorkOrderNode:
        assignee = parse_account_id(assignee_id)
        user_id = info.context.principal.user_id
        return await apply(
            info, id, lambda conn, o: wo.assign(conn, o, assignee, at=utcnow(), user_id=user_id), manager=True
        )

    @strawberry.mutation(
        permission_classes=[Has(Permission.WORK_ORDERS)],
        description="Move the order on: IN_PROGRESS and RESOLVED by its technician (or a manager), "
        "VERIFIED and CANCELLED by a manager. Use assignWorkOrder to assign.",
    )
    async def change_work_order_state(
        self, info: Info, id: relay.GlobalID, state: WorkOrderStateGQL, note: str | None = None
    ) -> WorkOrderNode:
        to = S(state.value)
        user_id = info.context.principal.user_id
        return await apply(
            info,
            id,
            lambda conn, o: wo.transition(conn, o, to, at=utcnow(), user_id=user_id, note=note),
            manager=to in MANAGER_MOVES,
        )

    @strawberry.mutation(
        permission_classes=[Has(Permission.WORK_ORDERS)], description="A note on the timeline."
    )
    async def add_work_order_note(self, info: Info, id: relay.GlobalID, text: str) -> WorkOrderNode:
        user_id = info.context.principal.user_id
        return await apply(
            info,
            id,
            lambda conn, o: details.add_note(conn, o, text, at=utcnow(), user_id=user_id),
            manager=False,
        )

    @strawberry.mutation(
        permission_classes=[Has(Permission.WORK_ORDERS)], description="One more checklist item."
    )
    async def add_work_order_checklist_item(self, info: Info, id: relay.GlobalID, text: str) -> WorkOrderNode:
        user_id = info.context.principal.user_id
        return await apply(
            info,
            id,
            lambda conn, o: details.add_checklist_item(conn, o, text, at=utcnow(), user_id=user_id),
            manager=False,
        )

    @strawberry.mutation(
        permission_classes=[Has(Permission.WORK_ORDERS)], description="Tick (or untick) an item."
    )
    async def set_work_order_checklist_item(
        self, info: Info, id: relay.GlobalID, item_id: strawberry.ID, done: bool
    ) -> WorkOrderNode:
        user_id = info.context.principal.user_id
        if not str(item_id).isdigit():
            raise InvalidInput("not a checklist item id")
        item = int(item_id)
        return await apply(
            info,
            id,
            lambda conn, o: details.check_item(conn, o, item, done, at=utcnow(), user_id=user_id),
            manager=False,
        )

    @strawberry.mutation(
        permission_classes=[Has(Permission.WORK_ORDERS)], description="A part used on the job."
    )
    async def add_work_order_part(
        self, info: Info, id: relay.GlobalID, input: WorkOrderPartInput
    ) -> WorkOrderNode:
        user_id = info.context.principal.user_id
        part = details.NewPart(input.name, input.part_number, input.quantity, input.unit_cost)
        return await apply(
            info,
            id,
            lambda conn, o: details.add_part(conn, o, part, at=utcnow(), user_id=user_id),
            manager=False,
        )

    @strawberry.mutation(
        permission_classes=[Has(Permission.WORK_ORDERS)],
        description="The visit's labour cost, minor units of the order's currency.",
    )
    async def set_work_order_labour_cost(self, info: Info, id: relay.GlobalID, amount: int) -> WorkOrderNode:
        user_id = info.context.principal.user_id
        return await apply(
            info,
            id,
            lambda conn, o: details.set_labour_cost(conn, o, amount, at=utcnow(), user_id=user_id),
            manager=False,
        )

    @strawberry.mutation(
        permission_classes=[Has(Permission.WORK_ORDERS)], description="A photo from the visit."
    )
    async def add_work_order_photo(self, info: Info, id: relay.GlobalID, photo: PhotoInput) -> WorkOrderNode:
        user_id = info.context.principal.user_id
        return await apply(
            info,
            id,
            lambda conn, o: details.add_photo(
                conn,
                o,
                file_name=photo.file_name,
                content_type=photo.content_type,
                data_base64=photo.data_base64,
                at=utcnow(),
                user_id=user_id,
            ),
            manager=False,
        )

    @strawberry.mutation(
        permission_classes=[Has(Permission.WORK_ORDERS)],
        description="Reset, unlock, availability, status trigger or diagnostics on the order's station, "
        "by its technician (or a manager) while the order is not done; logged like every command.",
    )
    async def run_work_order_station_action(
        self, info: Info, input: WorkOrderStationActionInput
    ) -> WorkOrderActionPayload:
        ctx = info.context
        pk = parse_global_id(input.work_order_id, "WorkOrder")
        result, events = await actions.run(
            ctx.db,
            ctx.bus,
            ctx.actor,
            work_order_id=pk,
            action=actions.StationAction(input.action.value),
            connector_id=input.connector_id,
            timeout_s=ctx.settings.command_timeout_s,
            upload_base_url=ctx.settings.upload_base_url or str(ctx.request.base_url),
        )
        await publish(ctx.bus, events)
        file = None
        if result.file_id is not None:
            async with ctx.db() as s:
                found = await s.get(StationFile, result.file_id)
            file = None if found is None else StationFileNode.from_row(found)
        return WorkOrderActionPayload(
            **command_fields(result.command),
            work_order=await reload(info, pk),
            file=file,
            exclusion_recorded=result.exclusion_recorded,
        )
