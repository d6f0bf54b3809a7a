"""What billing sees of a payment provider: a small Protocol and plain values.

The domain (holds at session start, captures at the end, refunds, memberships) is written
against `PaymentGateway`; `api.billing.stripe_gateway.StripeGateway` implements it with the
official SDK, `DisabledGateway` when no Stripe key is configured. Nothing here imports stripe,
so services and GraphQL types never depend on the SDK's classes.

Every method that changes something at the provider takes the ChargeNet ids its idempotency
key is derived from (api.billing.idempotency): repeating a call with the same ids, after a
timeout or a crash, never charges twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class IntentStatus(StrEnum):
    """A PaymentIntent's status, as Stripe names it."""

    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"


class RefundReason(StrEnum):
    """The reasons Stripe accepts for a refund (shown on the driver's bank statement flow)."""

    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"


@dataclass(frozen=True, slots=True)
class Card:
    payment_method_id: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None


@dataclass(frozen=True, slots=True)
class SetupIntentInfo:
    """What the app needs to collect a card: it confirms the SetupIntent with `client_secret`
    in the Stripe SDK on the phone; `setup_intent.succeeded` then tells ChargeNet."""

    setup_intent_id: str
    client_secret: str
    status: str


@dataclass(frozen=True, slots=True)
class IntentInfo:
    payment_intent_id: str
    status: IntentStatus
    currency: str
    amount: int
    amount_capturable: int
    amount_received: int
    customer_id: str | None
    payment_method_id: str | None
    client_secret: str | None
    failure_code: str | None = None
    decline_code: str | None = None
    failure_message: str | None = None


@dataclass(frozen=True, slots=True)
class HoldRequest:
    """A hold for one session: `session_id` is the ChargeNet id the keys derive from (the
    charging request the app's start created; it exists before the OCPP transaction)."""

    session_id: int
    user_id: int
    organization_id: int
    customer_id: str
    amount: int
    currency: str
    # None: the customer's default card.
    payment_method_id: str | None = None
    # True when the driver is not in the app to authenticate (e.g. a start by RFID card).
    off_session: bool = True
    transaction_id: int | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Held:
    """The bank holds `intent.amount_capturable`; capture up to it at the end."""

    intent: IntentInfo


@dataclass(frozen=True, slots=True)
class AuthenticationRequired:
    """The bank wants the driver to authenticate (3-D Secure): the app confirms the
    PaymentIntent with `client_secret`; the session may start once it is requires_capture."""

    intent: IntentInfo
    client_secret: str


HoldOutcome = Held | AuthenticationRequired


@dataclass(frozen=True, slots=True)
class RefundInfo:
    refund_id: str
    payment_intent_id: str
    amount: int
    currency: str
    status: str
    reason: str | None
    # Everything refunded on the payment's charge so far, this refund included.
    charge_amount_refunded: int


@dataclass(frozen=True, slots=True)
class PriceInfo:
    price_id: str
    product_id: str
    lookup_key: str | None
    unit_amount: int | None
    currency: str
    interval: str | None
    active: bool


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    subscription_id: str
    status: str
    customer_id: str
    price_id: str | None
    item_id: str | None
    cancel_at_period_end: bool
    current_period_end: int | None
    # When the first invoice needs the driver (3-D Secure), the app confirms with this.
    client_secret: str | None = None
    current_period_start: int | None = None


class PaymentGateway(Protocol):
    """The payment provider as billing uses it. Failures raise ChargeNet errors:
    PaymentDeclined (the card was refused; carries Stripe's decline code),
    PaymentProviderUnavailable (unreachable, timed out, 5xx after retries: safe to repeat),
    PaymentProviderError (Stripe refused the request itself), BillingDisabled."""

    async def create_customer(self, *, user_id: int, email: str | None, name: str | None) -> str: ...

    async def create_setup_intent(
        self, *, customer_id: str, user_id: int, attempt: str
    ) -> SetupIntentInfo: ...

    async def list_cards(self, customer_id: str) -> list[Card]: ...

    async def detach_card(self, payment_method_id: str) -> None: ...

    async def set_default_card(self, customer_id: str, payment_method_id: str) -> None: ...

    async def default_card(self, customer_id: str) -> str | None: ...

    async def place_hold(self, hold: HoldRequest) -> HoldOutcome: ...

    async def retrieve_intent(self, payment_intent_id: str) -> IntentInfo: ...

    async def increment_hold(
        self, *, session_id: int, payment_intent_id: str, new_amount: int
    ) -> IntentInfo: ...

    async def capture(self, *, session_id: int, payment_intent_id: str, amount: int) -> IntentInfo: ...

    async def cancel_hold(self, *, session_id: int, payment_intent_id: str) -> IntentInfo: ...

    async def refund(
        self,
        *,
        payment_intent_id: str,
        refund_reference: str,
        amount: int | None = None,
        reason: RefundReason = RefundReason.REQUESTED_BY_CUSTOMER,
    ) -> RefundInfo: ...

    async def price_by_lookup_key(self, lookup_key: str) -> PriceInfo | None: ...

    async def ensure_plan_price(
        self, *, plan_id: int, name: str, monthly_fee: int, currency: str
    ) -> PriceInfo: ...

    async def deactivate_price(self, *, price_id: str) -> None: ...

    async def create_subscription(
        self,
        *,
        user_id: int,
        customer_id: str,
        price_id: str,
        reference: str,
        payment_method_id: str | None = None,
        metadata: dict[str, int] | None = None,
    ) -> SubscriptionInfo: ...

    async def change_subscription_price(
        self, *, subscription_id: str, price_id: str, reference: str
    ) -> SubscriptionInfo: ...

    async def cancel_subscription_at_period_end(self, *, subscription_id: str) -> SubscriptionInfo: ...

    async def aclose(self) -> None: ...
