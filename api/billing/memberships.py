"""Memberships through Stripe Subscriptions: a driver subscribes to a plan, changes it, or
cancels it at the period's end; the membership's state then follows Stripe's webhooks
(api.billing.membership_events).

- Each plan sells through one monthly recurring Stripe Price, found by a lookup_key derived
  from the plan's id and created on first need (plan creation or the first subscribe).
- One live membership per driver and organisation: the `plan_subscription` row is inserted
  before Stripe is called and holds the slot (uq_plan_subscription_open), so a second
  subscribe is refused with MEMBERSHIP_EXISTS and a repeat of the same subscribe (a retry after a
  timeout) finds the row and repeats the Stripe call with the same idempotency key, which
  Stripe answers with its first answer: one subscription, however often the app retries.
- Authorization: drivers act on their own memberships only; anything else reads as NOT_FOUND.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit.service import Actor, entry
from api.billing import payments, plans
from api.billing.payment_types import PaymentGateway, SubscriptionInfo
from api.billing.repository import MEMBER_STATES
from schema.errors import (
    BillingDisabled,
    ChargeNetError,
    Forbidden,
    InvalidInput,
    MembershipExists,
    NotFound,
    PaymentProviderError,
)
from schema.plan_models import MembershipPlan, PlanSubscription
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

# Stripe states after which a subscription never comes back (a new one is needed).
ENDED_STATES = ("canceled", "incomplete_expired")
# States in which the plan can be changed or cancelled: there is a paid-for period.
CHANGEABLE_STATES = (*MEMBER_STATES, "past_due")


@dataclass(frozen=True, slots=True)
class Subscribed:
    membership: PlanSubscription
    # Set while the first invoice waits for the driver's 3-D Secure in the app.
    client_secret: str | None


def _driver(actor: Actor) -> int:
    p = actor.principal
    if not p.is_user or p.user_id is None:
        raise Forbidden("only a driver's own account holds memberships")
    return p.user_id


def _ts(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value), UTC)


async def plan_price(session: AsyncSession, gateway: PaymentGateway, plan: MembershipPlan) -> str:
    """The plan's Stripe Price id, the Product and Price created on first need (idempotent)."""
    if plan.stripe_price_id:
        return plan.stripe_price_id
    price = await gateway.ensure_plan_price(
        plan_id=plan.id or 0, name=plan.name, monthly_fee=plans.charged_fee(plan), currency=plan.currency
    )
    plan.stripe_product_id, plan.stripe_price_id = price.product_id, price.price_id
    session.add(plan)
    return price.price_id


async def publish_plan(db: async_sessionmaker[AsyncSession], gateway: PaymentGateway, plan_id: int) -> None:
    """Right after a plan is created: its Stripe Price, so the first subscribe is quick. Best
    effort — without payments configured, or with Stripe unreachable, the first subscribe
    creates it instead."""
    async with db() as s:
        plan = await s.get(MembershipPlan, plan_id)
        if plan is None:
            return
        try:
            await plan_price(s, gateway, plan)
        except BillingDisabled:
            return
        except ChargeNetError as exc:
            log.warning("plan %s not published to Stripe yet: %s", plan_id, exc.message)
            return
        await s.commit()


async def withdraw_plan(db: async_sessionmaker[AsyncSession], gateway: PaymentGateway, plan_id: int) -> None:
    """After a plan is archived: its Stripe Price takes no new subscriptions. ChargeNet refuses
    subscribes to archived plans itself, so a failure here only leaves Stripe's view stale."""
    async with db() as s:
        plan = await s.get(MembershipPlan, plan_id)
    if plan is None or not plan.stripe_price_id:
        return
    try:
        await gateway.deactivate_price(price_id=plan.stripe_price_id)
    except ChargeNetError as exc:
        log.warning(
            "price %s of archived plan %s still active at Stripe: %s", plan.stripe_price_id, plan_id, exc
        )


async def live_membership(
    session: AsyncSession, user_id: int, organization_id: int
) -> PlanSubscription | None:
    found = await session.exec(
        select(PlanSubscription).where(
            col(PlanSubscription.user_id) == user_id,
            col(PlanSubscription.open_organization_id) == organization_id,
        )
    )
    return found.first()


def _apply_answer(row: PlanSubscription, sub: SubscriptionInfo) -> None:
    """Stripe's answer to our own call, unless a webhook already told something (newer)."""
    row.stripe_subscription_id = sub.subscription_id
    if row.last_event_at is None:
        row.status = sub.status
        row.current_period_start = _ts(sub.current_period_start) or row.current_period_start
        row.current_period_end = _ts(sub.current_period_end) or row.current_period_end
        row.cancel_at_period_end = sub.cancel_at_period_end
        if row.status in ENDED_STATES:
            row.open_organization_id = None
    row.updated_at = utcnow()


async def subscribe(
    db: async_sessionmaker[AsyncSession],
    gateway: PaymentGateway,
    actor: Actor,
    *,
    plan_id: int,
    payment_method_id: str | None,
) -> Subscribed:
    user_id = _driver(actor)
    async with db() as s:
        plan = await s.get(MembershipPlan, plan_id)
        if plan is None or plan.archived_at is not None:
            raise NotFound("no such plan")
        org = plan.organization_id
        row = await live_membership(s, user_id, org)
        if row is not None and row.plan_id != plan_id:
            raise MembershipExists("you are a member here already: change the plan or cancel it")
        if row is not None and row.stripe_subscription_id is not None and row.status != "incomplete":
            return Subscribed(row, None)  # a repeat of a subscribe that went through
        # Stripe first (customer, card, price): when payments are off or Stripe is down, no
        # membership row is left behind holding the driver's slot.
        customer_id = await payments.ensure_customer(s, gateway, user_id)
        if payment_method_id is not None:
            cards = await gateway.list_cards(customer_id)
            if payment_method_id not in {c.payment_method_id for c in cards}:
                raise NotFound("no such card")
        price_id = await plan_price(s, gateway, plan)
        await s.commit()
        if row is None:
            row = PlanSubscription(
                user_id=user_id, plan_id=plan_id, organization_id=org, open_organization_id=org
            )
            s.add(row)
            try:
                await s.commit()
            except IntegrityError:
                await s.rollback()  # a concurrent subscribe took the slot first
                row = await live_membership(s, user_id, org)
                if row is None or row.plan_id != plan_id:
                    raise MembershipExists(
                        "you are a member here already: change the plan or cancel it"
                    ) from None
        try:
            sub = await gateway.create_subscription(
                user_id=user_id,
                customer_id=customer_id,
                price_id=price_id,
                # The membership row and the card: a retry repeats the key and gets Stripe's
                # first answer; after a declined first invoice another card is a new attempt.
                reference=f"membership:{row.id}:{payment_method_id or 'default'}",
                payment_method_id=payment_method_id,
                metadata={"membership_id": row.id or 0, "plan_id": plan_id, "organization_id": org},
            )
        except PaymentProviderError:
            # Stripe refused the request itself: no subscription exists and no webhook will
            # come, so the slot is freed (an unreachable Stripe keeps it for the retry).
            if row.stripe_subscription_id is None:
                await s.refresh(row)
                row.status, row.open_organization_id, row.updated_at = "incomplete_expired", None, utcnow()
                s.add(row)
                await s.commit()
            raise
        await s.refresh(row)
        _apply_answer(row, sub)
        s.add(row)
        s.add(
            entry(
                actor,
                action="membership.subscribe",
                result="ok",
                organization_id=org,
                target_type="plan_subscription",
                target_id=row.id,
                detail={"plan_id": plan_id, "subscription": sub.subscription_id, "status": sub.status},
            )
        )
        await s.commit()
        await s.refresh(row)
        return Subscribed(row, sub.client_secret)


async def change_plan(
    db: async_sessionmaker[AsyncSession], gateway: PaymentGateway, actor: Actor, *, plan_id: int
) -> PlanSubscription:
    """Move the driver's membership at the plan's organisation to this plan; Stripe prorates
    the rest of the period as it does by default."""
    user_id = _driver(actor)
    async with db() as s:
        plan = await s.get(MembershipPlan, plan_id)
        if plan is None or plan.archived_at is not None:
            raise NotFound("no such plan")
        row = await live_membership(s, user_id, plan.organization_id)
        if row is None:
            # The plan is public, so this is a wrong request rather than a hidden object.
            raise InvalidInput("you have no membership at this organisation: subscribe to a plan first")
        if row.plan_id == plan_id:
            return row  # done already (also: a retry after the change went through)
        if row.stripe_subscription_id is None or row.status not in CHANGEABLE_STATES:
            raise InvalidInput(f"a {row.status} membership cannot change plans; finish subscribing first")
        price_id = await plan_price(s, gateway, plan)
        await s.commit()
        previous = row.plan_id
        # The row's last change is part of the key: a retry of this request repeats it, while
        # a later change back to an earlier plan is a new request to Stripe.
        stamp = int(row.updated_at.timestamp() * 1_000_000)
        sub = await gateway.change_subscription_price(
            subscription_id=row.stripe_subscription_id,
            price_id=price_id,
            reference=f"{previous}-{plan_id}-{stamp}",
        )
        await s.refresh(row)
        row.plan_id = plan_id
        row.cancel_at_period_end = sub.cancel_at_period_end
        row.updated_at = utcnow()
        s.add(row)
        s.add(
            entry(
                actor,
                action="membership.change_plan",
                result="ok",
                organization_id=plan.organization_id,
                target_type="plan_subscription",
                target_id=row.id,
                detail={"from_plan_id": previous, "plan_id": plan_id, "subscription": sub.subscription_id},
            )
        )
        await s.commit()
        await s.refresh(row)
        return row


async def cancel(
    db: async_sessionmaker[AsyncSession],
    gateway: PaymentGateway,
    actor: Actor,
    *,
    membership_id: int,
    at_period_end: bool,
) -> PlanSubscription:
    """The membership ends when the paid period does (customer.subscription.deleted then
    ends the benefits); until then the driver keeps the plan's prices."""
    user_id = _driver(actor)
    async with db() as s:
        row = await s.get(PlanSubscription, membership_id)
        if row is None or row.user_id != user_id:
            raise NotFound("no such membership")
        if not at_period_end:
            raise InvalidInput("memberships end at the end of the paid period (atPeriodEnd: true)")
        if row.cancel_at_period_end or row.status in ENDED_STATES:
            return row
        if row.stripe_subscription_id is None or row.status not in CHANGEABLE_STATES:
            raise InvalidInput(f"a {row.status} membership cannot be cancelled yet")
        sub = await gateway.cancel_subscription_at_period_end(subscription_id=row.stripe_subscription_id)
        await s.refresh(row)
        row.cancel_at_period_end = sub.cancel_at_period_end
        row.updated_at = utcnow()
        s.add(row)
        s.add(
            entry(
                actor,
                action="membership.cancel",
                result="ok",
                organization_id=row.organization_id,
                target_type="plan_subscription",
                target_id=row.id,
                detail={"subscription": sub.subscription_id, "at_period_end": True},
            )
        )
        await s.commit()
        await s.refresh(row)
        return row


async def members_count(session: AsyncSession, plan_ids: list[int]) -> dict[int, int]:
    """Per plan: its members now (those who get its prices: active or trialing)."""
    rows = await session.exec(
        select(PlanSubscription.plan_id, func.count())
        .where(col(PlanSubscription.plan_id).in_(plan_ids), col(PlanSubscription.status).in_(MEMBER_STATES))
        .group_by(col(PlanSubscription.plan_id))
    )
    return {plan: int(n) for plan, n in rows.all()}
