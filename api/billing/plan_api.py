"""Membership plans in GraphQL: every app lists an organisation's plans; billing staff create
and archive them; a driver reads their own memberships."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated, IsPublic
from api.billing import plans
from api.billing.tariffs import money
from api.network.types import parse_global_id
from api.orgs.types import parse_organization_id
from schema.plan_models import MembershipPlan


@strawberry.type(name="MembershipPlan", description="A monthly plan drivers can join (public).")
class MembershipPlanNode(relay.Node):
    id: relay.NodeID[int]
    name: str
    description: str
    monthly_fee: int = strawberry.field(description="Minor units of `currency`.")
    monthly_fee_formatted: str
    currency: str
    included_kwh: Decimal = strawberry.field(description="Energy included each month, free at any tariff.")
    discount_basis_points: int = strawberry.field(description="Off every session; 1000 = 10 %.")
    archived_at: datetime | None

    @classmethod
    def from_model(cls, p: MembershipPlan) -> MembershipPlanNode:
        return cls(
            id=p.id or 0,
            name=p.name,
            description=p.description,
            monthly_fee=p.monthly_fee,
            monthly_fee_formatted=money(p.monthly_fee, p.currency),
            currency=p.currency,
            included_kwh=Decimal(p.included_wh) / 1000,
            discount_basis_points=p.discount_basis_points,
            archived_at=p.archived_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[MembershipPlanNode | None]:
        ids = [int(i) for i in node_ids if str(i).isdigit()]
        async with info.context.db() as s:
            found = await plans.plans_by_ids(s, ids)
        return [cls.from_model(found[i]) if i in found else None for i in ids]


@strawberry.type(description="A driver's membership of a plan.")
class PlanMembership:
    plan: MembershipPlanNode
    status: str = strawberry.field(description="Stripe's subscription status: active, past_due, canceled…")
    current_period_end: datetime | None
    cancel_at_period_end: bool


@strawberry.input
class CreateMembershipPlanInput:
    organization_id: relay.GlobalID
    name: str
    description: str = ""
    monthly_fee: int = strawberry.field(description="Minor units of the organisation's currency.")
    included_kwh: Decimal = Decimal(0)
    discount_basis_points: int = 0


@strawberry.type
class MembershipQuery:
    @strawberry.field(permission_classes=[IsPublic], description="The plans an organisation offers drivers.")
    async def membership_plans(self, info: Info, organization_id: relay.GlobalID) -> list[MembershipPlanNode]:
        async with info.context.db() as s:
            found = await plans.plans_of(s, parse_organization_id(organization_id))
        return [MembershipPlanNode.from_model(p) for p in found]

    @strawberry.field(permission_classes=[IsAuthenticated], description="The caller's own memberships.")
    async def my_memberships(self, info: Info) -> list[PlanMembership]:
        principal = info.context.principal
        if not principal.is_user:
            return []
        async with info.context.db() as s:
            rows = await plans.my_memberships(s, principal.user_id or 0)
            found = await plans.plans_by_ids(s, [r.plan_id for r in rows])
        return [_membership(r, found[r.plan_id]) for r in rows if r.plan_id in found]


def _membership(r: Any, plan: MembershipPlan) -> PlanMembership:
    return PlanMembership(
        plan=MembershipPlanNode.from_model(plan),
        status=r.status,
        current_period_end=r.current_period_end,
        cancel_at_period_end=r.cancel_at_period_end,
    )


@strawberry.type
class MembershipMutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="A new plan (billing:manage).")
    async def create_membership_plan(
        self, info: Info, input: CreateMembershipPlanInput
    ) -> MembershipPlanNode:
        ctx = info.context
        plan = await plans.create_plan(
            ctx.db,
            ctx.actor,
            organization_id=parse_organization_id(input.organization_id),
            name=input.name,
            description=input.description,
            monthly_fee=input.monthly_fee,
            included_wh=int(input.included_kwh * 1000),
            discount_basis_points=input.discount_basis_points,
        )
        return MembershipPlanNode.from_model(plan)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="No new members; current members keep it until they cancel (billing:manage).",
    )
    async def archive_membership_plan(self, info: Info, id: relay.GlobalID) -> MembershipPlanNode:
        ctx = info.context
        plan = await plans.archive_plan(ctx.db, ctx.actor, plan_id=parse_global_id(id, "MembershipPlan"))
        return MembershipPlanNode.from_model(plan)
