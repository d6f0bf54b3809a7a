"""Pay-as-you-go: a card hold before the station is asked, the final amount captured after.

At a start from the app, when the station's organisation requires payment:
- a driver with an unpaid session, or without a card, is refused (they settle or add one);
- the bank is asked to hold `hold_amount` on the default card (a manual-capture
  PaymentIntent keyed by the charging request): held → the station is asked; declined → the
  request fails with the bank's reason; 3-D Secure → the request waits (AWAITING_PAYMENT)
  until the app has authenticated and calls resumeCharging;
- Stripe unreachable: the organisation's policy decides — "allow" starts without a hold (the
  session is charged at its end), "refuse" fails the request.

After the session (`settle_due`, a worker job): the charge's driver amount is captured — the
hold raised first when the session cost more; the hold released when it cost nothing; a
session without a hold is charged off-session on the default card. What cannot be taken
becomes the driver's unpaid balance (payment_status "unpaid"), retried by the job and blocking
their next start until paid. A provider outage only postpones a capture to the next run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.billing import payments
from api.billing.payment_types import AuthenticationRequired, HoldRequest, IntentStatus, PaymentGateway
from schema import outbox
from schema.charge_models import OrganizationBilling, SessionCharge
from schema.db import session_factory
from schema.errors import (
    BillingDisabled,
    PaymentDeclined,
    PaymentProviderError,
    PaymentProviderUnavailable,
)
from schema.events import PaymentFailed
from schema.models import ChargingStation, Organization
from schema.payment_models import Payment
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

CHARGE = SessionCharge.__table__  # type: ignore[attr-defined]
PAYMENT = Payment.__table__  # type: ignore[attr-defined]
# Charges settled per job run: a backlog after an outage drains over a few runs.
SETTLE_BATCH = 100
SETTLE_INTERVAL_S = 10.0
ALLOW = "allow"
HELD_STATES = (IntentStatus.REQUIRES_CAPTURE.value,)


class Gate(StrEnum):
    """What the payment step says about a start."""

    GO = "go"  # held, or no hold needed
    GO_UNSECURED = "go_unsecured"  # Stripe down, the organisation allows starting anyway
    NEEDS_CARD = "needs_card"
    UNPAID_BALANCE = "unpaid_balance"
    DECLINED = "declined"
    AUTHENTICATE = "authenticate"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class StartPayment:
    gate: Gate
    message: str = ""
    client_secret: str | None = None


async def settings_of(s: AsyncSession, organization_id: int | None) -> OrganizationBilling | None:
    if organization_id is None:
        return None
    return await s.get(OrganizationBilling, organization_id)


async def unpaid_balance(s: AsyncSession, user_id: int) -> int:
    rows = await s.exec(
        select(SessionCharge.driver_amount, SessionCharge.amount_paid).where(  # type: ignore[call-overload]
            SessionCharge.user_id == user_id, SessionCharge.payment_status == "unpaid"
        )
    )
    return sum(due - paid for due, paid in rows.all())


async def authorize_start(
    db: async_sessionmaker[AsyncSession],
    gateway: PaymentGateway,
    *,
    user_id: int,
    organization_id: int | None,
    request_id: int,
) -> StartPayment:
    """The payment step of a driver's start (see the module docstring)."""
    async with db() as s:
        billing = await settings_of(s, organization_id)
        if billing is None or not billing.payments_required or organization_id is None:
            return StartPayment(Gate.GO)
        if await unpaid_balance(s, user_id) > 0:
            return StartPayment(Gate.UNPAID_BALANCE, "settle your unpaid session before starting another")
        org = await s.get(Organization, organization_id)
        currency = org.currency if org is not None else "EUR"
        try:
            customer = await payments.customer_of(s, user_id)
            card = None if customer is None else await gateway.default_card(customer.customer_id)
            if customer is None or card is None:
                return StartPayment(Gate.NEEDS_CARD, "add a payment card to start charging")
            outcome = await payments.hold_for_session(
                s,
                gateway,
                HoldRequest(
                    session_id=request_id,
                    user_id=user_id,
                    organization_id=organization_id,
                    customer_id=customer.customer_id,
                    amount=billing.hold_amount,
                    currency=currency,
                    payment_method_id=card,
                    off_session=False,
                    description="ChargeNet charging session",
                ),
            )
        except PaymentDeclined as exc:
            await s.commit()  # the declined attempt is on record
            return StartPayment(Gate.DECLINED, f"payment declined: {exc.decline_code or exc.message}")
        except (PaymentProviderUnavailable, BillingDisabled, PaymentProviderError) as exc:
            if billing.provider_down_policy == ALLOW:
                log.warning("starting request %s without a hold: %s", request_id, exc)
                return StartPayment(Gate.GO_UNSECURED, "started; the session is charged when it ends")
            return StartPayment(Gate.UNAVAILABLE, "payments are unavailable right now; try again shortly")
        await s.commit()
    if isinstance(outcome, AuthenticationRequired):
        return StartPayment(
            Gate.AUTHENTICATE, "your bank asks you to confirm the payment", outcome.client_secret
        )
    return StartPayment(Gate.GO)


async def confirm_authenticated(
    db: async_sessionmaker[AsyncSession], gateway: PaymentGateway, *, request_id: int
) -> bool:
    """After the app's 3-D Secure: whether the request's hold is now in place."""
    async with db() as s:
        payment = (
            await s.exec(
                select(Payment).where(col(Payment.session_id) == request_id).order_by(col(Payment.id).desc())
            )
        ).first()
        if payment is None:
            return False
        info = await gateway.retrieve_intent(payment.payment_intent_id)
        await payments.record_intent(s, payment, info)
        await s.commit()
        return info.status is IntentStatus.REQUIRES_CAPTURE


async def settle_due(engine: AsyncEngine, gateway: PaymentGateway) -> int:
    """Take what ended sessions owe (see the module docstring); returns how many were settled."""
    db = session_factory(engine)
    async with db() as s:
        due = (
            await s.exec(
                select(SessionCharge)  # type: ignore[call-overload]
                .where(
                    col(SessionCharge.payment_status).in_(("due", "unpaid")),
                    col(SessionCharge.user_id).is_not(None),
                )
                .order_by(col(SessionCharge.id))
                .limit(SETTLE_BATCH)
            )
        ).all()
    settled = 0
    for charge in due:
        try:
            settled += await _settle(db, gateway, charge.id or 0)
        except PaymentProviderUnavailable:
            log.warning("payment provider unavailable: settling resumes on the next run")
            break
        except BillingDisabled:
            break
    return settled


async def retry_unpaid(
    db: async_sessionmaker[AsyncSession], gateway: PaymentGateway, *, user_id: int
) -> None:
    """The driver asked to pay what they owe now (e.g. after adding a new card)."""
    async with db() as s:
        ids = (
            await s.exec(
                select(SessionCharge.id).where(  # type: ignore[call-overload]
                    SessionCharge.user_id == user_id, SessionCharge.payment_status == "unpaid"
                )
            )
        ).all()
    for charge_id in ids:
        await _settle(db, gateway, charge_id or 0)


async def _settle(db: async_sessionmaker[AsyncSession], gateway: PaymentGateway, charge_id: int) -> int:
    async with db() as s:
        charge = await s.get(
            SessionCharge, charge_id, with_for_update=(await s.connection()).dialect.name == "postgresql"
        )
        if charge is None or charge.payment_status not in ("due", "unpaid") or charge.user_id is None:
            return 0
        billing = await settings_of(s, charge.organization_id)
        hold = (
            await s.exec(
                select(Payment)
                .where(col(Payment.transaction_id) == charge.transaction_id)
                .order_by(col(Payment.id))
            )
        ).first()
        amount = charge.driver_amount - charge.amount_paid
        if hold is None and (billing is None or not billing.payments_required):
            charge.payment_status = "none"  # free, fleet or operator-started: not charged by card
            charge.payment_method = "none"
            s.add(charge)
            await s.commit()
            return 1
        try:
            paid = await _take(s, gateway, charge, hold, amount)
        except (PaymentDeclined, PaymentProviderError) as exc:
            first_failure = charge.payment_status != "unpaid"
            charge.payment_status = "unpaid"
            s.add(charge)
            if first_failure:
                await _announce_failure(s, charge, amount, exc.message)
            await s.commit()
            log.warning("session %s unpaid: %s", charge.transaction_id, exc)
            return 0
        charge.amount_paid += paid
        charge.payment_status = "paid" if charge.amount_paid >= charge.driver_amount else "unpaid"
        charge.payment_method = "card" if charge.amount_paid > 0 else "none"
        s.add(charge)
        await s.commit()
        return 1


async def _announce_failure(s: AsyncSession, charge: SessionCharge, amount: int, reason: str) -> None:
    station = await s.get(ChargingStation, charge.station_id)
    now = utcnow()
    event = PaymentFailed(
        station_id=charge.station_id,
        charge_point_id="" if station is None else station.charge_point_id,
        location_id=None if station is None else station.location_id,
        at=now,
        transaction_id=charge.transaction_id,
        user_id=charge.user_id or 0,
        amount_due=amount,
        currency=charge.currency,
        reason=reason[:200],
    )
    await outbox.append(await s.connection(), [event], now)


async def _take(
    s: AsyncSession, gateway: PaymentGateway, charge: SessionCharge, hold: Payment | None, amount: int
) -> int:
    """Capture `amount` through the session's hold (raised first if too small), or charge it
    off-session on the default card; returns what was taken."""
    if hold is not None and hold.status in HELD_STATES:
        if amount > hold.amount_held:
            try:
                await payments.raise_hold(s, gateway, hold.id or 0, new_amount=amount)
            except (PaymentDeclined, PaymentProviderError):
                log.info(
                    "hold of session %s could not be raised: capturing what is held", charge.transaction_id
                )
        captured = min(amount, hold.amount_held)
        await payments.settle_session(s, gateway, hold.id or 0, amount=captured)
        return captured
    if amount <= 0:
        return 0
    customer = await payments.customer_of(s, charge.user_id or 0)
    card = None if customer is None else await gateway.default_card(customer.customer_id)
    if customer is None or card is None:
        raise PaymentDeclined("no card to charge", decline_code="no_payment_method")
    outcome = await payments.hold_for_session(
        s,
        gateway,
        HoldRequest(
            session_id=-(charge.id or 0),  # its own key space: this is the charge, not a request
            user_id=charge.user_id or 0,
            organization_id=charge.organization_id or 0,
            customer_id=customer.customer_id,
            amount=amount,
            currency=charge.currency,
            payment_method_id=card,
            off_session=True,
            transaction_id=charge.transaction_id,
            description="ChargeNet charging session",
        ),
    )
    if isinstance(outcome, AuthenticationRequired):
        raise PaymentDeclined(
            "the bank requires the driver to authenticate", decline_code="authentication_required"
        )
    payment = await payments.payment_for_intent(s, outcome.intent.payment_intent_id)
    assert payment is not None
    await payments.settle_session(s, gateway, payment.id or 0, amount=amount)
    return amount
