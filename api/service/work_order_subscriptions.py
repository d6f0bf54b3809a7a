"""`workOrderUpdated`: an organisation's work orders live — every order for its managers, a
technician's own orders for the technician. First the unfinished orders as they stand (change
"snapshot", again after a bus outage), then each change as it is committed."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import Has
from api.auth.roles import Permission
from api.orgs.types import parse_organization_id, user_global_id
from api.service import work_order_access as access
from api.service.work_order_types import WorkOrderNode, WorkOrderSeverityGQL, WorkOrderStateGQL
from schema.bus import BusResumed
from schema.errors import NotFound
from schema.events import WorkOrderChanged, organization_work_orders_topic
from schema.maintenance_models import DONE_STATES
from schema.timeutil import utcnow

# The snapshot of a busy organisation: its most urgent unfinished orders.
MAX_SNAPSHOT = 200
W = access.WORK_ORDER


@strawberry.type(description="A work order changed (or, change = snapshot, how it stands now).")
class WorkOrderUpdate:
    work_order_id: relay.GlobalID
    change: str = strawberry.field(
        description="snapshot | created | assigned | state | updated | action | sla_breached"
    )
    state: WorkOrderStateGQL
    severity: WorkOrderSeverityGQL
    title: str
    assignee_id: relay.GlobalID | None
    sla_due_at: datetime
    at: datetime

    @strawberry.field(description="The order itself, read now; null if the caller no longer may.")
    async def work_order(self, info: Info) -> WorkOrderNode | None:
        found = await WorkOrderNode.resolve_nodes(info=info, node_ids=[self.work_order_id.node_id])
        return found[0]


def _update(
    pk: int,
    change: str,
    state: str,
    severity: str,
    title: str,
    assignee: int | None,
    due: datetime,
    at: datetime,
) -> WorkOrderUpdate:
    return WorkOrderUpdate(
        work_order_id=relay.GlobalID("WorkOrder", str(pk)),
        change=change,
        state=WorkOrderStateGQL(state),
        severity=WorkOrderSeverityGQL(severity),
        title=title,
        assignee_id=user_global_id(assignee),
        sla_due_at=due,
        at=at,
    )


async def _snapshot(info: Info, r: access.Reach, org: int) -> list[WorkOrderUpdate]:
    stmt = (
        access.readable(r)
        .where(W.c.organization_id == org, W.c.state.not_in([s.value for s in DONE_STATES]))
        .order_by(W.c.sla_due_at)
        .limit(MAX_SNAPSHOT)
    )
    async with info.context.db() as s:
        rows: list[Any] = list((await (await s.connection()).execute(stmt)).all())
    now = utcnow()
    return [
        _update(o.id, "snapshot", o.state, o.severity, o.title, o.assignee_id, o.sla_due_at, now)
        for o in rows
    ]


@strawberry.type
class WorkOrderSubscription:
    @strawberry.subscription(
        permission_classes=[Has(Permission.WORK_ORDERS)],
        description="The organisation's work orders live: managers follow every order, technicians "
        "their own. First the unfinished orders as they stand, then each change.",
    )
    async def work_order_updated(
        self, info: Info, organization_id: relay.GlobalID
    ) -> AsyncGenerator[WorkOrderUpdate, None]:
        org = parse_organization_id(organization_id)
        principal = info.context.principal
        if not principal.can(Permission.WORK_ORDERS, org):
            raise NotFound("no such organization")
        async with info.context.db() as s:
            r = await access.reach(await s.connection(), principal)
        manager = r.may_manage(org)
        # Subscribe before the snapshot so no change falls between the two.
        sub = info.context.bus.subscribe(organization_work_orders_topic(org))
        try:
            for update in await _snapshot(info, r, org):
                yield update
            async for event in sub:
                if isinstance(event, BusResumed):
                    for update in await _snapshot(info, r, org):
                        yield update
                    continue
                if not isinstance(event, WorkOrderChanged) or event.organization_id != org:
                    continue
                if not manager and principal.user_id not in (event.assignee_id, event.previous_assignee_id):
                    continue
                yield _update(
                    event.work_order_id,
                    event.change,
                    event.state,
                    event.severity,
                    event.title,
                    event.assignee_id,
                    event.sla_due_at,
                    event.at,
                )
        finally:
            sub.close()
