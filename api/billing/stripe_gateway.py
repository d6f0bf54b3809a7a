"""ChargeNet's only door to Stripe: `StripeGateway` wraps an injected `stripe.StripeClient`.

- The client is built from settings (`build_gateway`), never configured globally: API key,
  pinned API version, per-attempt timeouts, the SDK's network retries, and in tests another
  API host (`base_addresses`).
- Every call that changes something carries a deterministic idempotency key derived from
  ChargeNet ids (api.billing.idempotency); the SDK repeats it on its own retries, and so does
  any later repeat of the same call, so a retry never charges twice.
- Stripe's errors leave as ChargeNet errors (api.billing.stripe_errors); responses leave as
  plain values (api.billing.payment_types). Nothing outside this module touches the SDK.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import stripe

from api.billing.disabled_gateway import DisabledGateway
from api.billing.idempotency import IdempotencyKeys
from api.billing.payment_types import (
    AuthenticationRequired,
    Card,
    Held,
    HoldOutcome,
    HoldRequest,
    IntentInfo,
    IntentStatus,
    PaymentGateway,
    PriceInfo,
    RefundInfo,
    RefundReason,
    SetupIntentInfo,
    SubscriptionInfo,
)
from api.billing.stripe_errors import intent_of, to_domain
from schema.errors import BillingDisabled, InvalidInput, PaymentDeclined
from schema.settings import Settings

# The API version every request names. Pinned, so that upgrading the SDK never silently
# changes the shape of the objects ChargeNet reads; move it deliberately, with the tests.
STRIPE_API_VERSION = "2026-10-28.endive"
# Stripe's maximum page; a driver with more saved cards than this is not a real case.
MAX_CARDS_LISTED = 100

T = TypeVar("T")


def _metadata(**values: object) -> dict[str, str]:
    """Stripe metadata values are strings; None is left out rather than sent as ""."""
    return {f"chargenet_{k}": str(v) for k, v in values.items() if v is not None}


def _intent(data: dict[str, Any]) -> IntentInfo:
    error = data.get("last_payment_error") or {}
    pm = data.get("payment_method")
    customer = data.get("customer")
    return IntentInfo(
        payment_intent_id=data["id"],
        status=IntentStatus(data["status"]),
        currency=data["currency"],
        amount=int(data.get("amount") or 0),
        amount_capturable=int(data.get("amount_capturable") or 0),
        amount_received=int(data.get("amount_received") or 0),
        customer_id=customer if isinstance(customer, str) or customer is None else customer.get("id"),
        payment_method_id=pm if isinstance(pm, str) or pm is None else pm.get("id"),
        client_secret=data.get("client_secret"),
        failure_code=error.get("code"),
        decline_code=error.get("decline_code"),
        failure_message=error.get("message"),
    )


def _card(data: dict[str, Any]) -> Card:
    card = data.get("card") or {}
    return Card(
        payment_method_id=data["id"],
        brand=card.get("brand"),
        last4=card.get("last4"),
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
    )


def _price(data: dict[str, Any]) -> PriceInfo:
    product = data.get("product")
    recurring = data.get("recurring") or {}
    return PriceInfo(
        price_id=data["id"],
        product_id=product if isinstance(product, str) else (product or {}).get("id", ""),
        lookup_key=data.get("lookup_key"),
        unit_amount=data.get("unit_amount"),
        currency=data["currency"],
        interval=recurring.get("interval"),
        active=bool(data.get("active", True)),
    )


def _subscription(data: dict[str, Any]) -> SubscriptionInfo:
    items = (data.get("items") or {}).get("data") or []
    first = items[0] if items else {}
    price = first.get("price") or {}
    customer = data["customer"]
    # Since API 2025-03-31 the billing period lives on each item, not on the subscription.
    period_end = first.get("current_period_end", data.get("current_period_end"))
    period_start = first.get("current_period_start", data.get("current_period_start"))
    # The first invoice, when expanded: its confirmation secret is what the app confirms
    # 3-D Secure with (since API 2025-03-31 invoices carry it instead of a PaymentIntent).
    invoice = data.get("latest_invoice")
    secret = None
    if isinstance(invoice, dict) and invoice.get("status") == "open":
        secret = (invoice.get("confirmation_secret") or {}).get("client_secret")
    return SubscriptionInfo(
        subscription_id=data["id"],
        status=data["status"],
        customer_id=customer if isinstance(customer, str) else customer["id"],
        price_id=price.get("id") if isinstance(price, dict) else price,
        item_id=first.get("id"),
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
        current_period_end=period_end,
        client_secret=secret,
        current_period_start=period_start,
    )


@dataclass(frozen=True, slots=True)
class SubscriptionPeriod:
    price_id: str | None
    start: datetime | None
    end: datetime | None


def subscription_period(data: dict[str, Any]) -> SubscriptionPeriod:
    """A subscription object's price and billing period (webhooks read them too)."""
    info = _subscription({**data, "customer": data.get("customer") or ""})

    def ts(value: int | None) -> datetime | None:
        return None if value is None else datetime.fromtimestamp(int(value), UTC)

    return SubscriptionPeriod(info.price_id, ts(info.current_period_start), ts(info.current_period_end))


class StripeGateway:
    """Implements api.billing.payment_types.PaymentGateway with the official SDK."""

    def __init__(
        self, client: stripe.StripeClient, *, keys: IdempotencyKeys, http_client: Any = None
    ) -> None:
        self._stripe = client
        self._keys = keys
        self._http_client = http_client

    @classmethod
    def from_settings(cls, settings: Settings) -> StripeGateway:
        if not settings.stripe_api_key:
            raise BillingDisabled("payments are not configured (set CHARGENET_STRIPE_API_KEY)")
        http_client = stripe.HTTPXClient(
            timeout=httpx.Timeout(settings.stripe_timeout_s, connect=settings.stripe_connect_timeout_s)
        )
        base: dict[str, str] = {}
        if settings.stripe_api_base:
            base = {"api": settings.stripe_api_base.rstrip("/")}
        client = stripe.StripeClient(
            settings.stripe_api_key,
            stripe_version=STRIPE_API_VERSION,
            base_addresses=base,  # type: ignore[arg-type]
            max_network_retries=settings.stripe_max_network_retries,
            http_client=http_client,
        )
        return cls(client, keys=IdempotencyKeys(settings.stripe_idempotency_prefix), http_client=http_client)

    async def aclose(self) -> None:
        if self._http_client is not None:
            await self._http_client.close_async()

    async def _call(self, operation: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except stripe.StripeError as exc:
            raise to_domain(exc, operation) from exc

    @staticmethod
    def _opts(key: str | None = None) -> Any:
        return {"idempotency_key": key} if key else None

    # --- customers and cards ---

    async def create_customer(self, *, user_id: int, email: str | None, name: str | None) -> str:
        params: Any = {"metadata": _metadata(user_id=user_id)}
        if email:
            params["email"] = email
        if name:
            params["name"] = name
        customer = await self._call(
            "customer creation",
            self._stripe.v1.customers.create_async(params, self._opts(self._keys.customer(user_id))),
        )
        return str(customer.id)

    async def create_setup_intent(self, *, customer_id: str, user_id: int, attempt: str) -> SetupIntentInfo:
        params: Any = {
            "customer": customer_id,
            # Saved for charges while the driver is not in the app (holds at an RFID start).
            "usage": "off_session",
            "payment_method_types": ["card"],
            "metadata": _metadata(user_id=user_id),
        }
        intent = await self._call(
            "card setup",
            self._stripe.v1.setup_intents.create_async(
                params,
                self._opts(self._keys.setup_intent(user_id, attempt)),
            ),
        )
        return SetupIntentInfo(str(intent.id), str(intent.client_secret), str(intent.status))

    async def list_cards(self, customer_id: str) -> list[Card]:
        page = await self._call(
            "card list",
            self._stripe.v1.customers.payment_methods.list_async(
                customer_id, {"type": "card", "limit": MAX_CARDS_LISTED}
            ),
        )
        return [_card(pm.to_dict()) for pm in page.data]

    async def detach_card(self, payment_method_id: str) -> None:
        await self._call(
            "card removal",
            self._stripe.v1.payment_methods.detach_async(
                payment_method_id, None, self._opts(self._keys.detach(payment_method_id))
            ),
        )

    async def set_default_card(self, customer_id: str, payment_method_id: str) -> None:
        await self._call(
            "default card",
            self._stripe.v1.customers.update_async(
                customer_id,
                {"invoice_settings": {"default_payment_method": payment_method_id}},
                self._opts(self._keys.default_card(customer_id, payment_method_id)),
            ),
        )

    async def default_card(self, customer_id: str) -> str | None:
        customer = await self._call("customer lookup", self._stripe.v1.customers.retrieve_async(customer_id))
        settings = customer.to_dict().get("invoice_settings") or {}
        pm = settings.get("default_payment_method")
        return pm if isinstance(pm, str) or pm is None else pm.get("id")

    # --- session holds ---

    async def place_hold(self, hold: HoldRequest) -> HoldOutcome:
        """Authorise `hold.amount` on the card without charging it (manual capture).

        The key names the session and the card: a repeat for the same session and card replays
        Stripe's first answer (also a decline, for a day); another card is a new attempt."""
        if hold.amount <= 0:
            raise InvalidInput("a hold must be for a positive amount")
        pm = hold.payment_method_id or await self.default_card(hold.customer_id)
        if pm is None:
            raise InvalidInput("the driver has no saved card to hold the session's amount on")
        params: Any = {
            "amount": hold.amount,
            "currency": hold.currency.lower(),
            "customer": hold.customer_id,
            "payment_method": pm,
            "payment_method_types": ["card"],
            "capture_method": "manual",
            "confirm": True,
            "off_session": hold.off_session,
            # Lets a long session raise the hold instead of stopping (where the card allows).
            "payment_method_options": {"card": {"request_incremental_authorization": "if_available"}},
            "metadata": _metadata(
                session_id=hold.session_id,
                user_id=hold.user_id,
                organization_id=hold.organization_id,
                transaction_id=hold.transaction_id,
            ),
        }
        if hold.description:
            params["description"] = hold.description
        key = self._keys.hold(hold.session_id, pm)
        try:
            created = await self._stripe.v1.payment_intents.create_async(params, self._opts(key))
        except stripe.CardError as exc:
            intent = intent_of(exc)
            # Off-session: the bank wants 3-D Secure; the app can bring the driver back to it.
            if exc.code == "authentication_required" and intent and intent.get("client_secret"):
                return AuthenticationRequired(_intent(intent), str(intent["client_secret"]))
            raise to_domain(exc, "hold") from exc
        except stripe.StripeError as exc:
            raise to_domain(exc, "hold") from exc
        info = _intent(created.to_dict())
        if info.status is IntentStatus.REQUIRES_ACTION and info.client_secret:
            return AuthenticationRequired(info, info.client_secret)
        if info.status in (IntentStatus.REQUIRES_CAPTURE, IntentStatus.PROCESSING):
            return Held(info)
        raise PaymentDeclined(
            info.failure_message or "the card was declined",
            decline_code=info.decline_code or info.failure_code,
            payment_intent_id=info.payment_intent_id,
        )

    async def retrieve_intent(self, payment_intent_id: str) -> IntentInfo:
        intent = await self._call(
            "payment lookup", self._stripe.v1.payment_intents.retrieve_async(payment_intent_id)
        )
        return _intent(intent.to_dict())

    async def increment_hold(self, *, session_id: int, payment_intent_id: str, new_amount: int) -> IntentInfo:
        """Raise the authorised amount to `new_amount` (the new total, not the difference)."""
        intent = await self._call(
            "hold increment",
            self._stripe.v1.payment_intents.increment_authorization_async(
                payment_intent_id,
                {"amount": new_amount},
                self._opts(self._keys.increment(session_id, new_amount)),
            ),
        )
        return _intent(intent.to_dict())

    async def capture(self, *, session_id: int, payment_intent_id: str, amount: int) -> IntentInfo:
        """Charge `amount` (at most what is held; the rest is released). A zero-cost session
        is not captured but cancelled (`cancel_hold`): Stripe refuses to capture nothing."""
        if amount <= 0:
            raise InvalidInput("capture a positive amount; cancel the hold of a session that cost nothing")
        intent = await self._call(
            "capture",
            self._stripe.v1.payment_intents.capture_async(
                payment_intent_id,
                {"amount_to_capture": amount},
                self._opts(self._keys.capture(session_id, amount)),
            ),
        )
        return _intent(intent.to_dict())

    async def cancel_hold(self, *, session_id: int, payment_intent_id: str) -> IntentInfo:
        intent = await self._call(
            "hold release",
            self._stripe.v1.payment_intents.cancel_async(
                payment_intent_id,
                {"cancellation_reason": "abandoned"},
                self._opts(self._keys.cancel(session_id)),
            ),
        )
        return _intent(intent.to_dict())

    async def refund(
        self,
        *,
        payment_intent_id: str,
        refund_reference: str,
        amount: int | None = None,
        reason: RefundReason = RefundReason.REQUESTED_BY_CUSTOMER,
    ) -> RefundInfo:
        """Refund `amount` (None: whatever was captured and not yet refunded)."""
        params: Any = {
            "payment_intent": payment_intent_id,
            "reason": reason.value,
            "metadata": _metadata(reference=refund_reference),
            # The charge's refunded total comes back with the refund, in one call.
            "expand": ["charge"],
        }
        if amount is not None:
            if amount <= 0:
                raise InvalidInput("a refund must be for a positive amount")
            params["amount"] = amount
        refund = await self._call(
            "refund",
            self._stripe.v1.refunds.create_async(params, self._opts(self._keys.refund(refund_reference))),
        )
        data = refund.to_dict()
        charge = data.get("charge")
        return RefundInfo(
            refund_id=data["id"],
            payment_intent_id=payment_intent_id,
            amount=int(data["amount"]),
            currency=data["currency"],
            status=data["status"],
            reason=data.get("reason"),
            charge_amount_refunded=int(charge["amount_refunded"])
            if isinstance(charge, dict)
            else int(data["amount"]),
        )

    # --- plans (memberships build on these) ---

    async def price_by_lookup_key(self, lookup_key: str) -> PriceInfo | None:
        page = await self._call(
            "price lookup",
            self._stripe.v1.prices.list_async({"lookup_keys": [lookup_key], "active": True, "limit": 1}),
        )
        return _price(page.data[0].to_dict()) if page.data else None

    async def ensure_plan_price(
        self, *, plan_id: int, name: str, monthly_fee: int, currency: str
    ) -> PriceInfo:
        """The plan's monthly recurring Price, created with its Product on first use.

        Found by a lookup_key derived from the plan's id, and created under idempotency keys
        derived from it too: a repeat after a crash, or two first subscribers at once, end
        with one Product and one Price."""
        lookup_key = self._keys.plan_lookup_key(plan_id)
        found = await self.price_by_lookup_key(lookup_key)
        if found is not None:
            return found
        product = await self._call(
            "plan product",
            self._stripe.v1.products.create_async(
                {"name": name, "metadata": _metadata(plan_id=plan_id)},
                self._opts(self._keys.plan_product(plan_id)),
            ),
        )
        price = await self._call(
            "plan price",
            self._stripe.v1.prices.create_async(
                {
                    "product": str(product.id),
                    "unit_amount": monthly_fee,
                    "currency": currency.lower(),
                    "recurring": {"interval": "month"},
                    "lookup_key": lookup_key,
                    "metadata": _metadata(plan_id=plan_id),
                },
                self._opts(self._keys.plan_price(plan_id)),
            ),
        )
        return _price(price.to_dict())

    async def deactivate_price(self, *, price_id: str) -> None:
        """No new subscriptions at this price; existing ones keep renewing at it."""
        await self._call(
            "price deactivation",
            self._stripe.v1.prices.update_async(
                price_id, {"active": False}, self._opts(self._keys.price_deactivate(price_id))
            ),
        )

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
        params: Any = {
            "customer": customer_id,
            "items": [{"price": price_id}],
            # The first invoice is charged at once (to `payment_method_id`, else the customer's
            # default card); if the bank wants 3-D Secure the subscription stays incomplete and
            # the expanded invoice's confirmation secret lets the app bring the driver to it.
            "payment_behavior": "allow_incomplete",
            "metadata": _metadata(user_id=user_id, **(metadata or {})),
            "expand": ["latest_invoice.confirmation_secret"],
        }
        if payment_method_id:
            params["default_payment_method"] = payment_method_id
        sub = await self._call(
            "subscription",
            self._stripe.v1.subscriptions.create_async(
                params, self._opts(self._keys.subscription(user_id, reference))
            ),
        )
        return _subscription(sub.to_dict())

    async def change_subscription_price(
        self, *, subscription_id: str, price_id: str, reference: str
    ) -> SubscriptionInfo:
        current = _subscription(
            (
                await self._call(
                    "subscription lookup", self._stripe.v1.subscriptions.retrieve_async(subscription_id)
                )
            ).to_dict()
        )
        if current.item_id is None:
            raise InvalidInput("the subscription has no item to change")
        sub = await self._call(
            "subscription change",
            self._stripe.v1.subscriptions.update_async(
                subscription_id,
                {
                    "items": [{"id": current.item_id, "price": price_id}],
                    "proration_behavior": "create_prorations",
                },
                self._opts(self._keys.subscription_change(subscription_id, reference)),
            ),
        )
        return _subscription(sub.to_dict())

    async def cancel_subscription_at_period_end(self, *, subscription_id: str) -> SubscriptionInfo:
        sub = await self._call(
            "subscription cancellation",
            self._stripe.v1.subscriptions.update_async(
                subscription_id,
                {"cancel_at_period_end": True},
                self._opts(self._keys.subscription_cancel(subscription_id)),
            ),
        )
        return _subscription(sub.to_dict())


def build_gateway(settings: Settings) -> PaymentGateway:
    """The gateway the API and worker use: Stripe when a key is set, otherwise disabled."""
    if not settings.stripe_api_key:
        return DisabledGateway()
    return StripeGateway.from_settings(settings)
