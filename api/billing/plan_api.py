"""Membership plans in GraphQL: every app lists an organisation's plans; billing staff create
and archive them and list their members; a driver subscribes, changes plan, cancels, and reads
their own memberships (domain logic in api.billing.plans and api.billing.memberships)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated, IsPublic
from api.auth.roles import Permission
from api.billing import memberships, plans
from api.billing.tariffs import money
from api.network.types import int_ids, parse_global_id
from api.orgs.repository import page
from api.orgs.types import connection, parse_organization_id
from api.pagination import Connection, clamp_first, decode_cursor, wants_total
from schema.errors import NotFound
from schema.plan_models import MembershipPlan, PlanSubscription


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
    tax_basis_points: int = strawberry.field(description="The fee's tax rate; 1900 = 19 %.")
    fee_includes_tax: bool = strawberry.field(
        description="Whether monthlyFee includes the tax; if not, members are charged chargedFee."
    )
    charged_fee: int = strawberry.field(description="What a member is charged each month, tax included.")
    archived_at: datetime | None
    _organization_id: strawberry.Private[int]

    @strawberry.field(description="Its members now (active or trialing); null without billing:read.")
    async def members_count(self, info: Info) -> int | None:
        if not info.context.principal.can(Permission.BILLING_READ, self._organization_id):
            return None
        async with info.context.db() as s:
            return (await memberships.members_count(s, [self.id])).get(self.id, 0)

    @classmethod
    def from_model(cls, p: MembershipPlan) -> MembershipPlanNode:
        return cls(
            _organization_id=p.organization_id,
            id=p.id or 0,
            name=p.name,
            description=p.description,
            monthly_fee=p.monthly_fee,
            monthly_fee_formatted=money(p.monthly_fee, p.currency),
            currency=p.currency,
            included_kwh=Decimal(p.included_wh) / 1000,
            discount_basis_points=p.discount_basis_points,
            tax_basis_points=p.tax_basis_points,
            fee_includes_tax=p.fee_includes_tax,
            charged_fee=plans.charged_fee(p),
            archived_at=p.archived_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[MembershipPlanNode | None]:
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            found = await plans.plans_by_ids(s, ids)
        return [cls.from_model(found[i]) if i in found else None for i in ids]


@strawberry.type(
    description="A driver's membership of a plan: its state follows the Stripe subscription. "
    "Seen by the driver and by the billing staff of the plan's organisation."
)
class PlanMembership(relay.Node):
    id: relay.NodeID[int]
    status: str = strawberry.field(
        description="Stripe's subscription status: incomplete, active, trialing, past_due, canceled…"
    )
    is_member: bool = strawberry.field(description="Whether the plan's prices apply now.")
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    latest_invoice_status: str | None = strawberry.field(description="paid or payment_failed.")
    created_at: datetime
    _plan_id: strawberry.Private[int]

    @strawberry.field
    async def plan(self, info: Info) -> MembershipPlanNode:
        async with info.context.db() as s:
            found = await plans.plans_by_ids(s, [self._plan_id])
        return MembershipPlanNode.from_model(found[self._plan_id])

    @classmethod
    def from_row(cls, r: Any) -> PlanMembership:
        return cls(
            id=r.id,
            status=r.status,
            is_member=r.status in memberships.MEMBER_STATES,
            current_period_start=r.current_period_start,
            current_period_end=r.current_period_end,
            cancel_at_period_end=r.cancel_at_period_end,
            latest_invoice_status=r.latest_invoice_status,
            created_at=r.created_at,
            _plan_id=r.plan_id,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[PlanMembership | None]:
        principal = info.context.principal
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            found = {i: await s.get(PlanSubscription, i) for i in ids}
        return [
            cls.from_row(m)
            if m is not None
            and (
                (principal.is_user and principal.user_id == m.user_id)
                or principal.can(Permission.BILLING_READ, m.organization_id)
            )
            else None
            for m in (found[i] for i in ids)
        ]


@strawberry.type
class SubscribeToPlanPayload:
    membership: PlanMembership
    client_secret: str | None = strawberry.field(
        description="Set while the first payment needs 3-D Secure: the app confirms it with the "
        "Stripe SDK; the membership becomes active when Stripe reports the invoice paid."
    )


@strawberry.input
class CreateMembershipPlanInput:
    organization_id: relay.GlobalID
    name: str
    description: str = ""
    monthly_fee: int = strawberry.field(description="Minor units of the organisation's currency.")
    included_kwh: Decimal = Decimal(0)
    discount_basis_points: int = 0
    tax_basis_points: int | None = strawberry.field(
        default=None, description="The fee's tax rate; omitted: that of the organisation's default tariff."
    )
    fee_includes_tax: bool | None = strawberry.field(
        default=None, description="Omitted: as the organisation's default tariff's prices."
    )


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
        return [PlanMembership.from_row(r) for r in rows]

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="The memberships of a plan, newest first (billing:read at its organisation).",
    )
    async def plan_subscriptions(
        self, info: Info, plan_id: relay.GlobalID, first: int | None = None, after: str | None = None
    ) -> Connection[PlanMembership]:
        pk = parse_global_id(plan_id, "MembershipPlan")
        async with info.context.db() as s:
            plan = await s.get(MembershipPlan, pk)
            if plan is None or not info.context.principal.can(Permission.BILLING_READ, plan.organization_id):
                raise NotFound("no such plan")
            p = await page(
                s,
                plans.subscriptions_of(pk),
                plans.SUBSCRIPTION_ID,
                first=clamp_first(first),
                after=decode_cursor("membership", after),
                newest_first=True,
                count=wants_total(info),
            )
        return connection(PlanMembership.from_row, p, "membership")


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
            tax_basis_points=input.tax_basis_points,
            fee_includes_tax=input.fee_includes_tax,
        )
        await memberships.publish_plan(ctx.db, ctx.payments, plan.id or 0)
        return MembershipPlanNode.from_model(plan)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="No new members; current members keep it until they cancel (billing:manage).",
    )
    async def archive_membership_plan(self, info: Info, id: relay.GlobalID) -> MembershipPlanNode:
        ctx = info.context
        plan = await plans.archive_plan(ctx.db, ctx.actor, plan_id=parse_global_id(id, "MembershipPlan"))
        await memberships.withdraw_plan(ctx.db, ctx.payments, plan.id or 0)
        return MembershipPlanNode.from_model(plan)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="The signed-in driver joins a plan through a Stripe subscription charged to "
        "`paymentMethodId` (one of their saved cards) or their default card. Repeating the call "
        "is safe; a second plan at the same organisation is refused (MEMBERSHIP_EXISTS).",
    )
    async def subscribe_to_plan(
        self, info: Info, plan_id: relay.GlobalID, payment_method_id: str | None = None
    ) -> SubscribeToPlanPayload:
        ctx = info.context
        done = await memberships.subscribe(
            ctx.db,
            ctx.payments,
            ctx.actor,
            plan_id=parse_global_id(plan_id, "MembershipPlan"),
            payment_method_id=payment_method_id,
        )
        return SubscribeToPlanPayload(
            membership=PlanMembership.from_row(done.membership), client_secret=done.client_secret
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Move the driver's membership at the plan's organisation to this plan "
        "(Stripe prorates the current period).",
    )
    async def change_plan(self, info: Info, plan_id: relay.GlobalID) -> PlanMembership:
        ctx = info.context
        row = await memberships.change_plan(
            ctx.db, ctx.payments, ctx.actor, plan_id=parse_global_id(plan_id, "MembershipPlan")
        )
        return PlanMembership.from_row(row)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="End the driver's own membership when the paid period ends; the plan's "
        "prices apply until then.",
    )
    async def cancel_membership(
        self, info: Info, id: relay.GlobalID, at_period_end: bool = True
    ) -> PlanMembership:
        ctx = info.context
        row = await memberships.cancel(
            ctx.db,
            ctx.payments,
            ctx.actor,
            membership_id=parse_global_id(id, "PlanMembership"),
            at_period_end=at_period_end,
        )
        return PlanMembership.from_row(row)
