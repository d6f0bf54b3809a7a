"""The payment gateway of a ChargeNet without a Stripe key (api.billing.stripe_gateway.build_gateway)."""

from __future__ import annotations

from api.billing.payment_types import (
    Card,
    HoldOutcome,
    HoldRequest,
    IntentInfo,
    PriceInfo,
    RefundInfo,
    RefundReason,
    SetupIntentInfo,
    SubscriptionInfo,
)
from schema.errors import BillingDisabled


class DisabledGateway:
    """Stands in when no Stripe key is configured: ChargeNet runs (the demo, charging without
    billing) and every payment call fails with a clear BILLING_DISABLED."""

    @staticmethod
    def _disabled() -> BillingDisabled:
        return BillingDisabled("payments are not configured on this ChargeNet (CHARGENET_STRIPE_API_KEY)")

    async def create_customer(self, *, user_id: int, email: str | None, name: str | None) -> str:
        raise self._disabled()

    async def create_setup_intent(self, *, customer_id: str, user_id: int, attempt: str) -> SetupIntentInfo:
        raise self._disabled()

    async def list_cards(self, customer_id: str) -> list[Card]:
        raise self._disabled()

    async def detach_card(self, payment_method_id: str) -> None:
        raise self._disabled()

    async def set_default_card(self, customer_id: str, payment_method_id: str) -> None:
        raise self._disabled()

    async def default_card(self, customer_id: str) -> str | None:
        raise self._disabled()

    async def place_hold(self, hold: HoldRequest) -> HoldOutcome:
        raise self._disabled()

    async def retrieve_intent(self, payment_intent_id: str) -> IntentInfo:
        raise self._disabled()

    async def increment_hold(self, *, session_id: int, payment_intent_id: str, new_amount: int) -> IntentInfo:
        raise self._disabled()

    async def capture(self, *, session_id: int, payment_intent_id: str, amount: int) -> IntentInfo:
        raise self._disabled()

    async def cancel_hold(self, *, session_id: int, payment_intent_id: str) -> IntentInfo:
        raise self._disabled()

    async def refund(
        self,
        *,
        payment_intent_id: str,
        refund_reference: str,
        amount: int | None = None,
        reason: RefundReason = RefundReason.REQUESTED_BY_CUSTOMER,
    ) -> RefundInfo:
        raise self._disabled()

    async def price_by_lookup_key(self, lookup_key: str) -> PriceInfo | None:
        raise self._disabled()

    async def ensure_plan_price(
        self, *, plan_id: int, name: str, monthly_fee: int, currency: str
    ) -> PriceInfo:
        raise self._disabled()

    async def deactivate_price(self, *, price_id: str) -> None:
        raise self._disabled()

    async def create_subscription(
        self,
        *,
        user_id: int,
        customer_id: str,
        price_id: str,
        reference: str,
        payment_method_id: str | None = None,
        metadata: dict[str, int] | None = None,
    ) -> SubscriptionInfo:
        raise self._disabled()

    async def change_subscription_price(
        self, *, subscription_id: str, price_id: str, reference: str
    ) -> SubscriptionInfo:
        raise self._disabled()

    async def cancel_subscription_at_period_end(self, *, subscription_id: str) -> SubscriptionInfo:
        raise self._disabled()

    async def aclose(self) -> None:
        return None
