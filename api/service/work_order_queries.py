"""Work order reads: the organisation's orders (managers), a technician's queue by SLA, one
order by id, the maintenance settings and the annual maintenance cost per station."""

from __future__ import annotations

import strawberry
from sqlalchemy import select
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import Has, IsAuthenticated
from api.auth.roles import Permission
from api.network.types import parse_global_id
from api.orgs.repository import page
from api.orgs.types import connection, parse_organization_id
from api.pagination import Connection, clamp_first, decode_cursor, wants_total
from api.service import work_order_access as access
from api.service import work_order_details as details
from api.service import work_orders as wo
from api.service.work_order_loaders import loaders
from api.service.work_order_types import (
    StationMaintenanceCost,
    WorkOrderNode,
    WorkOrderSettings,
    WorkOrderSeverityGQL,
    WorkOrderStateGQL,
)
from schema.errors import Forbidden, NotFound
from schema.maintenance_models import DONE_STATES

# A technician's queue: more open orders than this at once is a staffing problem, not a list.
MAX_QUEUE = 200
W = access.WORK_ORDER


def settings_view(rules: wo.Rules) -> WorkOrderSettings:
    return WorkOrderSettings(
        sla_critical_minutes=rules.sla_minutes["critical"],
        sla_high_minutes=rules.sla_minutes["high"],
        sla_medium_minutes=rules.sla_minutes["medium"],
        sla_low_minutes=rules.sla_minutes["low"],
        auto_create_for=[WorkOrderSeverityGQL(s) for s in sorted(rules.auto_create)],
    )


@strawberry.type
class WorkOrderQuery:
    @strawberry.field(
        permission_classes=[Has(Permission.WORK_ORDERS)],
        description="Work orders, newest first: every order of the organisations the caller manages, "
        "a technician's own elsewhere.",
    )
    async def work_orders(
        self,
        info: Info,
        organization_id: relay.GlobalID | None = None,
        station_id: relay.GlobalID | None = None,
        states: list[WorkOrderStateGQL] | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[WorkOrderNode]:
        async with info.context.db() as s:
            r = await access.reach(await s.connection(), info.context.principal)
            stmt = access.readable(r)
            if organization_id is not None:
                stmt = stmt.where(W.c.organization_id == parse_organization_id(organization_id))
            if station_id is not None:
                stmt = stmt.where(W.c.station_id == parse_global_id(station_id, "Station"))
            if states:
                stmt = stmt.where(W.c.state.in_([st.value for st in states]))
            p = await page(
                s,
                stmt,
                W.c.id,
                first=clamp_first(first),
                after=decode_cursor("work_order", after),
                newest_first=True,
                count=wants_total(info),
            )
        return connection(WorkOrderNode.from_row, p, "work_order")

    @strawberry.field(
        permission_classes=[Has(Permission.WORK_ORDERS)],
        description="The caller's own work orders not yet done, the soonest SLA due time first.",
    )
    async def my_work_orders(self, info: Info) -> list[WorkOrderNode]:
        user_id = info.context.principal.user_id
        if user_id is None:
            return []
        async with info.context.db() as s:
            conn = await s.connection()
            r = await access.reach(conn, info.context.principal)
            stmt = (
                access.readable(r)
                .where(W.c.assignee_id == user_id, W.c.state.not_in([st.value for st in DONE_STATES]))
                .order_by(W.c.sla_due_at, W.c.id)
                .limit(MAX_QUEUE)
            )
            rows = (await conn.execute(stmt)).all()
        return [WorkOrderNode.from_row(row) for row in rows]

    @strawberry.field(
        permission_classes=[Has(Permission.WORK_ORDERS)],
        description="One work order; null when the caller may not read it.",
    )
    async def work_order(self, info: Info, id: relay.GlobalID) -> WorkOrderNode | None:
        pk = parse_global_id(id, "WorkOrder")
        async with info.context.db() as s:
            conn = await s.connection()
            r = await access.reach(conn, info.context.principal)
            row = (await conn.execute(access.readable(r).where(W.c.id == pk))).first()
        return None if row is None else WorkOrderNode.from_row(row)

    @strawberry.field(
        permission_classes=[Has(Permission.WORK_ORDERS)],
        description="The organisation's SLA per severity and which incidents get a work order automatically.",
    )
    async def work_order_settings(self, info: Info, organization_id: relay.GlobalID) -> WorkOrderSettings:
        org = parse_organization_id(organization_id)
        if not info.context.principal.can(Permission.WORK_ORDERS, org):
            raise NotFound("no such organization")
        async with info.context.db() as s:
            return settings_view(await wo.rules(await s.connection(), org))

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Maintenance cost per station for a calendar year (UTC), by when the work was "
        "done: NEVI's annual maintenance cost (billing:read or workorders:manage).",
    )
    async def maintenance_costs(
        self, info: Info, organization_id: relay.GlobalID, year: int
    ) -> list[StationMaintenanceCost]:
        org = parse_organization_id(organization_id)
        p = info.context.principal
        if not (p.everywhere or org in p.grants):
            raise NotFound("no such organization")
        if not (p.can(Permission.BILLING_READ, org) or p.can(Permission.WORK_ORDERS, org)):
            raise Forbidden("requires billing:read or workorders:manage")
        async with info.context.db() as s:
            costs = await details.annual_costs(await s.connection(), org, year)
        return [
            StationMaintenanceCost(
                currency=c.currency,
                work_orders=c.orders,
                parts_cost=c.parts_cost,
                labour_cost=c.labour_cost,
                total_cost=c.total,
                _station_id=c.station_id,
            )
            for c in costs
        ]


async def reload(info: Info, work_order_id: int) -> WorkOrderNode:
    """The order as a mutation left it (and nothing this request read of it before)."""
    loaders(info).forget()
    async with info.context.db() as s:
        row = (await (await s.connection()).execute(select(W).where(W.c.id == work_order_id))).one()
    return WorkOrderNode.from_row(row)
