"""What Stripe's subscription and invoice events do to memberships (registered in
api.billing.webhook_handlers, run by the inbox once per event).

- customer.subscription.created/updated/deleted: the membership row (found by the Stripe
  subscription id, or by the membership id ChargeNet put in the subscription's metadata when
  ChargeNet's own write of that id was lost) takes the subscription's status, plan (from the
  item's price), period and cancel_at_period_end. Out of order safe: an event older than the
  last one applied changes nothing, and an ended membership is never revived by a late
  "active". A new period's start is a new key for included-energy usage, so it resets itself.
- invoice.paid / invoice.payment_failed: recorded on the membership (latest invoice and its
  outcome) with an audit entry, what notifying the driver builds on. A failed renewal also
  makes the membership past_due at once (Stripe's own subscription update follows). A paid
  invoice also gets its numbered ChargeNet invoice (api.billing.membership_invoices). Both
  record a durable MembershipInvoicePaid / MembershipInvoiceFailed in the outbox, in the same
  transaction, once per outcome (a paid one once per ChargeNet invoice).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit.service import SYSTEM_ACTOR, entry
from api.billing import membership_invoices
from api.billing.inbox import InboundEvent
from api.billing.memberships import ENDED_STATES
from api.billing.repository import MEMBER_STATES
from api.billing.stripe_gateway import subscription_period
from schema import outbox
from schema.events import MembershipInvoiceEvent, MembershipInvoiceFailed, MembershipInvoicePaid
from schema.plan_models import MembershipPlan, PlanSubscription
from schema.timeutil import utcnow

HANDLED = "handled"
IGNORED = "ignored"


def _id(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, str) else None


async def _membership(session: AsyncSession, subscription: dict[str, Any]) -> PlanSubscription | None:
    sub_id = _id(subscription)
    if not sub_id:
        return None
    row = (
        await session.exec(
            select(PlanSubscription).where(col(PlanSubscription.stripe_subscription_id) == sub_id)
        )
    ).first()
    if row is not None:
        return row
    ident = (subscription.get("metadata") or {}).get("chargenet_membership_id")
    if not isinstance(ident, str) or not ident.isdigit():
        return None
    row = await session.get(PlanSubscription, int(ident))
    if row is None or row.stripe_subscription_id not in (None, sub_id):
        return None
    row.stripe_subscription_id = sub_id
    return row


async def subscription_changed(session: AsyncSession, event: InboundEvent) -> str:
    sub = event.object
    row = await _membership(session, sub)
    if row is None:
        return IGNORED  # not a ChargeNet membership
    if row.last_event_at is not None and event.created < row.last_event_at:
        return HANDLED  # older news than what is applied
    if row.status in ENDED_STATES:
        return HANDLED  # ended for good; Stripe never revives a canceled subscription either
    status = "canceled" if event.event_type == "customer.subscription.deleted" else str(sub.get("status"))
    previous = row.status
    row.status = status[:24]
    period = subscription_period(sub)
    if period.price_id is not None:
        plan = (
            await session.exec(
                select(MembershipPlan).where(
                    col(MembershipPlan.stripe_price_id) == period.price_id,
                    col(MembershipPlan.organization_id) == row.organization_id,
                )
            )
        ).first()
        if plan is not None:
            row.plan_id = plan.id or row.plan_id
    row.current_period_start = period.start or row.current_period_start
    row.current_period_end = period.end or row.current_period_end
    row.cancel_at_period_end = bool(sub.get("cancel_at_period_end"))
    if row.status in ENDED_STATES:
        row.open_organization_id = None
    row.last_event_at = event.created
    row.updated_at = utcnow()
    session.add(row)
    if previous != row.status:
        session.add(
            entry(
                SYSTEM_ACTOR,
                action="membership.status",
                result="ok",
                organization_id=row.organization_id,
                target_type="plan_subscription",
                target_id=row.id,
                detail={"from": previous, "to": row.status, "stripe_event": event.external_id},
            )
        )
    return HANDLED


def _invoice_subscription(invoice: dict[str, Any]) -> str | None:
    """Since API 2025-03-31 an invoice names its subscription under parent.subscription_details."""
    details = ((invoice.get("parent") or {}).get("subscription_details")) or {}
    return _id(details.get("subscription")) or _id(invoice.get("subscription"))


async def invoice_settled(session: AsyncSession, event: InboundEvent) -> str:
    invoice = event.object
    sub_id = _invoice_subscription(invoice)
    if sub_id is None:
        return IGNORED
    row = (
        await session.exec(
            select(PlanSubscription).where(col(PlanSubscription.stripe_subscription_id) == sub_id)
        )
    ).first()
    if row is None:
        return IGNORED
    outcome = "paid" if event.event_type == "invoice.paid" else "payment_failed"
    if row.latest_invoice_id == invoice.get("id") and row.latest_invoice_status in (outcome, "paid"):
        return HANDLED  # a repeat, or a failed attempt reported after the invoice was paid
    row.latest_invoice_id = _id(invoice)
    row.latest_invoice_status = outcome
    renewal_failed = outcome == "payment_failed" and invoice.get("billing_reason") == "subscription_cycle"
    if (
        renewal_failed
        and row.status in MEMBER_STATES
        and (row.last_event_at is None or event.created >= row.last_event_at)
    ):
        # Stripe makes the subscription past_due on a failed renewal: no member prices
        # until the driver pays, even if its own subscription update is delayed.
        row.status = "past_due"
        row.last_event_at = event.created
    row.updated_at = utcnow()
    session.add(row)
    issued = await membership_invoices.issue_for_paid(session, row, invoice) if outcome == "paid" else None
    await _announce(
        session, row, invoice, issued, renewal=invoice.get("billing_reason") == "subscription_cycle"
    )
    session.add(
        entry(
            SYSTEM_ACTOR,
            action=f"membership.invoice_{outcome}",
            result="ok",
            organization_id=row.organization_id,
            target_type="plan_subscription",
            target_id=row.id,
            detail={
                "user_id": row.user_id,
                "invoice": invoice.get("id"),
                "amount_due": invoice.get("amount_due"),
                "currency": invoice.get("currency"),
                "billing_reason": invoice.get("billing_reason"),
                "stripe_event": event.external_id,
                "chargenet_invoice": None if issued is None else issued.invoice_id,
            },
        )
    )
    return HANDLED


async def _announce(
    session: AsyncSession,
    row: PlanSubscription,
    invoice: dict[str, Any],
    issued: membership_invoices.Issued | None,
    *,
    renewal: bool,
) -> None:
    """The durable event of this outcome: a failure each time one is recorded, a payment
    when its ChargeNet invoice is issued (nothing was charged: nothing to tell)."""
    common: dict[str, Any] = {
        "at": utcnow(),
        "organization_id": row.organization_id,
        "user_id": row.user_id,
        "membership_id": row.id or 0,
        "stripe_invoice_id": str(invoice.get("id")),
        "currency": str(invoice.get("currency") or "").upper(),
    }
    event: MembershipInvoiceEvent
    if issued is not None:
        if not issued.new:
            return
        event = MembershipInvoicePaid(
            **common, amount=int(invoice.get("amount_paid") or 0), invoice_id=issued.invoice_id
        )
    elif row.latest_invoice_status == "payment_failed":
        event = MembershipInvoiceFailed(**common, amount=int(invoice.get("amount_due") or 0), renewal=renewal)
    else:
        return
    await outbox.append(await session.connection(), [event], common["at"])
