"""Payments as ChargeNet's API uses them: a driver's customer and cards, a session's hold,
capture and refund — each a Stripe call through the PaymentGateway plus ChargeNet's record.

Services don't commit (the mutation or job that calls them owns the unit of work); they
flush when they need ids. A Stripe call that succeeded is never lost even if that commit
fails: the call's idempotency key makes its repeat harmless, and the PaymentIntent's
webhooks rebuild the `payment` row from the ids in its metadata.

Authorization (who may hold, capture or refund for which organisation, the `finance` role
for refunds) is the caller's job, as everywhere in api/: these functions trust their ids.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit.service import Actor, entry
from api.billing.payment_state import apply_intent, intent_dict
from api.billing.payment_types import (
    Card,
    HoldOutcome,
    HoldRequest,
    IntentInfo,
    IntentStatus,
    PaymentGateway,
    RefundInfo,
    RefundReason,
    SetupIntentInfo,
)
from schema.account_models import UserAccount
from schema.errors import InvalidInput, NotFound, PaymentDeclined
from schema.payment_models import Payment, SavedPaymentMethod, StripeCustomer
from schema.timeutil import utcnow

log = logging.getLogger(__name__)


async def customer_of(session: AsyncSession, user_id: int) -> StripeCustomer | None:
    return await session.get(StripeCustomer, user_id)


async def ensure_customer(session: AsyncSession, gateway: PaymentGateway, user_id: int) -> str:
    """The driver's Stripe customer id, created on first use. Two concurrent first uses make
    one customer: the idempotency key is the user's id, so Stripe answers both alike."""
    existing = await customer_of(session, user_id)
    if existing is not None:
        return existing.customer_id
    user = await session.get(UserAccount, user_id)
    if user is None or user.deleted_at is not None:
        raise NotFound("no such driver")
    customer_id = await gateway.create_customer(user_id=user_id, email=user.email, name=user.display_name)
    try:
        async with session.begin_nested():
            session.add(StripeCustomer(user_id=user_id, customer_id=customer_id))
    except IntegrityError:
        pass  # the concurrent first use stored the same customer
    return customer_id


async def start_card_setup(
    session: AsyncSession, gateway: PaymentGateway, user_id: int, *, attempt: str
) -> SetupIntentInfo:
    """A SetupIntent the app confirms with the card the driver types in; `attempt` names this
    "add a card" flow (the app's id for it), so a retried request returns the same intent."""
    customer_id = await ensure_customer(session, gateway, user_id)
    return await gateway.create_setup_intent(customer_id=customer_id, user_id=user_id, attempt=attempt)


async def list_cards(session: AsyncSession, gateway: PaymentGateway, user_id: int) -> list[Card]:
    """The driver's saved cards as Stripe has them now; the local cache is brought in step."""
    customer = await customer_of(session, user_id)
    if customer is None:
        return []
    cards = await gateway.list_cards(customer.customer_id)
    known = {
        pm.payment_method_id: pm
        for pm in (
            await session.exec(select(SavedPaymentMethod).where(SavedPaymentMethod.user_id == user_id))
        ).all()
    }
    now = utcnow()
    listed = {c.payment_method_id for c in cards}
    for card in cards:
        row = known.get(card.payment_method_id) or SavedPaymentMethod(
            user_id=user_id, payment_method_id=card.payment_method_id
        )
        row.brand, row.last4, row.exp_month, row.exp_year = (
            card.brand,
            card.last4,
            card.exp_month,
            card.exp_year,
        )
        row.detached_at = None
        session.add(row)
    for pm_id, row in known.items():
        if pm_id not in listed and row.detached_at is None:
            row.detached_at = now
            session.add(row)
    return cards


async def _own_card(
    session: AsyncSession, gateway: PaymentGateway, user_id: int, payment_method_id: str
) -> str:
    """The driver's customer id, after checking the card is theirs (never act on another's)."""
    customer = await customer_of(session, user_id)
    if customer is None:
        raise NotFound("no such card")
    cards = await gateway.list_cards(customer.customer_id)
    if payment_method_id not in {c.payment_method_id for c in cards}:
        raise NotFound("no such card")
    return customer.customer_id


async def remove_card(
    session: AsyncSession, gateway: PaymentGateway, user_id: int, payment_method_id: str
) -> None:
    customer_id = await _own_card(session, gateway, user_id, payment_method_id)
    await gateway.detach_card(payment_method_id)
    row = (
        await session.exec(
            select(SavedPaymentMethod).where(SavedPaymentMethod.payment_method_id == payment_method_id)
        )
    ).first()
    if row is not None:
        row.detached_at = utcnow()
        session.add(row)
    customer = await customer_of(session, user_id)
    if customer is not None and customer.default_payment_method_id == payment_method_id:
        customer.default_payment_method_id = None
        session.add(customer)
    log.info("card removed for customer %s", customer_id)


async def set_default_card(
    session: AsyncSession, gateway: PaymentGateway, user_id: int, payment_method_id: str
) -> None:
    customer_id = await _own_card(session, gateway, user_id, payment_method_id)
    await gateway.set_default_card(customer_id, payment_method_id)
    customer = await customer_of(session, user_id)
    assert customer is not None
    customer.default_payment_method_id = payment_method_id
    session.add(customer)


async def payment_for_intent(session: AsyncSession, payment_intent_id: str) -> Payment | None:
    return (await session.exec(select(Payment).where(Payment.payment_intent_id == payment_intent_id))).first()


async def _record(session: AsyncSession, hold: HoldRequest, info: IntentInfo) -> Payment:
    payment = await payment_for_intent(session, info.payment_intent_id)
    if payment is None:
        payment = Payment(
            organization_id=hold.organization_id,
            user_id=hold.user_id,
            transaction_id=hold.transaction_id,
            payment_intent_id=info.payment_intent_id,
            session_id=hold.session_id,
            customer_id=hold.customer_id,
            currency=info.currency,
            amount_held=info.amount,
            status=info.status.value,
        )
    apply_intent(payment, intent_dict(info), at=None)
    session.add(payment)
    await session.flush()
    return payment


async def hold_for_session(session: AsyncSession, gateway: PaymentGateway, hold: HoldRequest) -> HoldOutcome:
    """Place the session's hold and record it. A declined card is recorded too (status
    requires_payment_method, the decline code) before PaymentDeclined goes to the caller, who
    should commit that record before answering with the error (the webhook would rebuild it
    otherwise, later)."""
    try:
        outcome = await gateway.place_hold(hold)
    except PaymentDeclined as declined:
        if declined.payment_intent_id:
            info = IntentInfo(
                payment_intent_id=declined.payment_intent_id,
                status=IntentStatus.REQUIRES_PAYMENT_METHOD,
                currency=hold.currency.lower(),
                amount=hold.amount,
                amount_capturable=0,
                amount_received=0,
                customer_id=hold.customer_id,
                payment_method_id=hold.payment_method_id,
                client_secret=None,
                failure_code=declined.decline_code,
                decline_code=declined.decline_code,
                failure_message=declined.message,
            )
            await _record(session, hold, info)
        raise
    await _record(session, hold, outcome.intent)
    return outcome


async def _payment(session: AsyncSession, payment_id: int) -> Payment:
    payment = await session.get(Payment, payment_id)
    if payment is None:
        raise NotFound("no such payment")
    return payment


async def _apply(session: AsyncSession, payment: Payment, info: IntentInfo) -> Payment:
    apply_intent(payment, intent_dict(info), at=None)
    session.add(payment)
    await session.flush()
    return payment


async def record_intent(session: AsyncSession, payment: Payment, info: IntentInfo) -> Payment:
    """Bring the payment row in step with the intent as Stripe reported it."""
    return await _apply(session, payment, info)


def _session_id(payment: Payment) -> int:
    if payment.session_id is None:
        raise InvalidInput("this payment was not made by a ChargeNet session hold")
    return payment.session_id


async def raise_hold(
    session: AsyncSession, gateway: PaymentGateway, payment_id: int, *, new_amount: int
) -> Payment:
    payment = await _payment(session, payment_id)
    if new_amount <= payment.amount_held:
        raise InvalidInput("the new hold must be larger than the current one")
    info = await gateway.increment_hold(
        session_id=_session_id(payment), payment_intent_id=payment.payment_intent_id, new_amount=new_amount
    )
    return await _apply(session, payment, info)


async def settle_session(
    session: AsyncSession, gateway: PaymentGateway, payment_id: int, *, amount: int
) -> Payment:
    """Charge the session's final `amount`: captured up to the hold, or the hold released when
    the session cost nothing. More than the hold is refused (the caller raises it first)."""
    payment = await _payment(session, payment_id)
    if amount > payment.amount_held:
        raise InvalidInput("the amount exceeds the hold; raise the hold before capturing")
    if amount <= 0:
        info = await gateway.cancel_hold(
            session_id=_session_id(payment), payment_intent_id=payment.payment_intent_id
        )
    else:
        info = await gateway.capture(
            session_id=_session_id(payment), payment_intent_id=payment.payment_intent_id, amount=amount
        )
    return await _apply(session, payment, info)


async def refund_payment(
    session: AsyncSession,
    gateway: PaymentGateway,
    payment_id: int,
    *,
    actor: Actor,
    refund_reference: str,
    amount: int | None = None,
    reason: RefundReason = RefundReason.REQUESTED_BY_CUSTOMER,
) -> RefundInfo:
    """Refund part or all of what was captured, with an audit entry in the same unit of work.
    `refund_reference` is ChargeNet's id of this refund decision (its idempotency key)."""
    payment = await _payment(session, payment_id)
    left = payment.amount_captured - payment.amount_refunded
    if left <= 0:
        raise InvalidInput("nothing left to refund on this payment")
    if amount is not None and not 0 < amount <= left:
        raise InvalidInput(f"a refund must be between 1 and {left}")
    refund = await gateway.refund(
        payment_intent_id=payment.payment_intent_id,
        refund_reference=refund_reference,
        amount=amount,
        reason=reason,
    )
    # Stripe's total for the charge, not ours plus this refund: charge.refunded may have been
    # processed in between, and adding to it would count this refund twice.
    payment.amount_refunded = max(payment.amount_refunded, refund.charge_amount_refunded)
    payment.updated_at = utcnow()
    session.add(payment)
    session.add(
        entry(
            actor,
            action="payment.refund",
            result="ok",
            organization_id=payment.organization_id,
            target_type="payment",
            target_id=payment.id,
            detail={"refund": refund.refund_id, "amount": refund.amount, "reason": reason.value},
        )
    )
    await session.flush()
    return refund


async def payments_of_user(session: AsyncSession, user_id: int) -> list[Payment]:
    """The driver's payments, newest first."""
    stmt = select(Payment).where(Payment.user_id == user_id).order_by(col(Payment.id).desc())
    return list((await session.exec(stmt)).all())


async def payments_of_transaction(session: AsyncSession, transaction_id: int) -> list[Payment]:
    stmt = select(Payment).where(Payment.transaction_id == transaction_id).order_by(col(Payment.id))
    return list((await session.exec(stmt)).all())
