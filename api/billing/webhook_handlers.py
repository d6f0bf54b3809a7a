"""What each Stripe event does to ChargeNet's records (run by api.billing.inbox).

Implemented now:
- payment_intent.*          the session's `payment` row follows the PaymentIntent (created
                            from the intent's metadata if ChargeNet's own write was lost);
- setup_intent.succeeded    the card is recorded as saved for the driver;
- charge.refunded           the refunded amount is recorded on the payment, with an audit entry;
- charge.dispute.created    the dispute is recorded on the payment, with an audit entry.
- customer.subscription.*   the driver's membership follows the subscription
                            (api.billing.membership_events);
- invoice.paid, invoice.payment_failed  recorded on the membership, with an audit entry;
- other invoice.*           kept in the inbox with outcome "recorded".
Any other type is marked "ignored".

Every handler is idempotent and safe out of order (see api.billing.payment_state).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit.service import SYSTEM_ACTOR, entry
from api.billing.inbox import HandlerRegistry, InboundEvent
from api.billing.membership_events import invoice_settled, subscription_changed
from api.billing.payment_state import apply_intent
from schema.account_models import UserAccount
from schema.models import Organization, Transaction
from schema.payment_models import Payment, SavedPaymentMethod, StripeCustomer
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

HANDLED = "handled"
RECORDED = "recorded"
IGNORED = "ignored"


def _id(value: Any) -> str | None:
    """An expandable field: an id string, or the expanded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, str) else None


def _int_metadata(obj: dict[str, Any], name: str) -> int | None:
    value = (obj.get("metadata") or {}).get(f"chargenet_{name}")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


async def _payment(session: AsyncSession, payment_intent_id: str | None) -> Payment | None:
    if not payment_intent_id:
        return None
    return (await session.exec(select(Payment).where(Payment.payment_intent_id == payment_intent_id))).first()


async def _payment_from_metadata(session: AsyncSession, intent: dict[str, Any]) -> Payment | None:
    """A PaymentIntent ChargeNet created but has no row for (its own write was lost after the
    hold): rebuilt from the ids the gateway put in the intent's metadata."""
    user_id = _int_metadata(intent, "user_id")
    org_id = _int_metadata(intent, "organization_id")
    if user_id is None or org_id is None:
        return None
    if await session.get(UserAccount, user_id) is None or await session.get(Organization, org_id) is None:
        log.warning(
            "payment intent %s names unknown user %s or organisation %s", intent["id"], user_id, org_id
        )
        return None
    transaction_id = _int_metadata(intent, "transaction_id")
    if transaction_id is not None and await session.get(Transaction, transaction_id) is None:
        transaction_id = None
    payment = Payment(
        organization_id=org_id,
        user_id=user_id,
        transaction_id=transaction_id,
        payment_intent_id=intent["id"],
        session_id=_int_metadata(intent, "session_id"),
        customer_id=_id(intent.get("customer")),
        currency=str(intent.get("currency") or "").lower()[:3],
        amount_held=int(intent.get("amount") or 0),
        status=str(intent["status"]),
    )
    session.add(payment)
    return payment


async def payment_intent_changed(session: AsyncSession, event: InboundEvent) -> str:
    intent = event.object
    payment = await _payment(session, intent.get("id"))
    if payment is None:
        payment = await _payment_from_metadata(session, intent)
        if payment is None:
            return IGNORED  # not a ChargeNet session payment
    apply_intent(payment, intent, at=event.created)
    session.add(payment)
    return HANDLED


async def setup_intent_succeeded(session: AsyncSession, event: InboundEvent) -> str:
    setup = event.object
    customer_id = _id(setup.get("customer"))
    pm = setup.get("payment_method")
    pm_id = _id(pm)
    if not customer_id or not pm_id:
        return IGNORED
    customer = (
        await session.exec(select(StripeCustomer).where(StripeCustomer.customer_id == customer_id))
    ).first()
    if customer is None:
        return IGNORED
    saved = (
        await session.exec(select(SavedPaymentMethod).where(SavedPaymentMethod.payment_method_id == pm_id))
    ).first()
    card = (pm.get("card") if isinstance(pm, dict) else None) or {}
    if saved is None:
        saved = SavedPaymentMethod(user_id=customer.user_id, payment_method_id=pm_id, saved_at=event.created)
    if card:
        saved.brand, saved.last4 = card.get("brand"), card.get("last4")
        saved.exp_month, saved.exp_year = card.get("exp_month"), card.get("exp_year")
    session.add(saved)
    return HANDLED


async def charge_refunded(session: AsyncSession, event: InboundEvent) -> str:
    charge = event.object
    payment = await _payment(session, _id(charge.get("payment_intent")))
    if payment is None:
        return IGNORED
    refunded = int(charge.get("amount_refunded") or 0)
    if refunded <= payment.amount_refunded:
        return HANDLED  # a repeat, or older news than what is recorded
    previous, payment.amount_refunded = payment.amount_refunded, refunded
    payment.updated_at = utcnow()
    session.add(payment)
    session.add(
        entry(
            SYSTEM_ACTOR,
            action="payment.refunded",
            result="ok",
            organization_id=payment.organization_id,
            target_type="payment",
            target_id=payment.id,
            detail={
                "payment_intent": payment.payment_intent_id,
                "charge": charge.get("id"),
                "amount_refunded": refunded,
                "previously_refunded": previous,
                "currency": payment.currency,
                "stripe_event": event.external_id,
            },
        )
    )
    return HANDLED


async def dispute_created(session: AsyncSession, event: InboundEvent) -> str:
    dispute = event.object
    payment = await _payment(session, _id(dispute.get("payment_intent")))
    if payment is None:
        return IGNORED
    if payment.dispute_status is not None:
        return HANDLED  # recorded already
    payment.dispute_status = str(dispute.get("status") or "needs_response")[:32]
    payment.updated_at = utcnow()
    session.add(payment)
    session.add(
        entry(
            SYSTEM_ACTOR,
            action="payment.disputed",
            result="ok",
            organization_id=payment.organization_id,
            target_type="payment",
            target_id=payment.id,
            detail={
                "payment_intent": payment.payment_intent_id,
                "dispute": dispute.get("id"),
                "amount": dispute.get("amount"),
                "reason": dispute.get("reason"),
                "stripe_event": event.external_id,
            },
        )
    )
    return HANDLED


async def record_only(session: AsyncSession, event: InboundEvent) -> str:
    """Invoice events memberships do not act on (created, finalized…): kept in the inbox."""
    return RECORDED


def default_registry() -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.register("payment_intent.*", payment_intent_changed)
    registry.register("setup_intent.succeeded", setup_intent_succeeded)
    registry.register("charge.refunded", charge_refunded)
    registry.register("charge.dispute.created", dispute_created)
    registry.register("invoice.*", record_only)
    registry.register("invoice.paid", invoice_settled)
    registry.register("invoice.payment_failed", invoice_settled)
    registry.register("customer.subscription.*", subscription_changed)
    return registry
