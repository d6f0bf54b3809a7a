"""Idempotency keys for Stripe calls, derived only from ChargeNet ids and amounts.

Stripe stores the first response to a key for at least a day and replays it for a repeat with
the same parameters, so a call repeated after a timeout, a 5xx or a crash (by the SDK's own
retries, the worker, or a driver tapping twice) changes nothing twice. A key never contains a
random part: the repeat must find the same key without having stored anything.

Keys start with the deployment's prefix (CHARGENET_STRIPE_IDEMPOTENCY_PREFIX): two deployments
sharing a Stripe account would otherwise collide on "session:1:hold".
"""

from __future__ import annotations

# Stripe accepts keys up to this long; ours stay far below it.
MAX_KEY_LENGTH = 255


class IdempotencyKeys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def _key(self, *parts: object) -> str:
        key = ":".join([self.prefix, *(str(p) for p in parts)])
        if len(key) > MAX_KEY_LENGTH:
            raise ValueError(f"idempotency key longer than {MAX_KEY_LENGTH} characters: {key[:60]}…")
        return key

    def customer(self, user_id: int) -> str:
        return self._key("user", user_id, "customer")

    def setup_intent(self, user_id: int, attempt: str) -> str:
        # `attempt` names one "add a card" flow in the app, so a new card gets a new intent.
        return self._key("user", user_id, "setup", attempt)

    def default_card(self, customer_id: str, payment_method_id: str) -> str:
        return self._key("customer", customer_id, "default", payment_method_id)

    def detach(self, payment_method_id: str) -> str:
        return self._key("pm", payment_method_id, "detach")

    def hold(self, session_id: int, payment_method_id: str) -> str:
        # The card is part of the key: after a decline the driver may try another card for the
        # same session (Stripe would refuse the old key with new parameters).
        return self._key("session", session_id, "hold", payment_method_id)

    def increment(self, session_id: int, new_amount: int) -> str:
        return self._key("session", session_id, "increment", new_amount)

    def capture(self, session_id: int, amount: int) -> str:
        return self._key("session", session_id, "capture", amount)

    def cancel(self, session_id: int) -> str:
        return self._key("session", session_id, "cancel")

    def refund(self, reference: str) -> str:
        # `reference` is ChargeNet's id of the refund decision (e.g. "payment:7:refund:2").
        return self._key("refund", reference)

    def subscription(self, user_id: int, reference: str) -> str:
        return self._key("user", user_id, "subscription", reference)

    def subscription_change(self, subscription_id: str, reference: str) -> str:
        return self._key("subscription", subscription_id, "change", reference)

    def subscription_cancel(self, subscription_id: str) -> str:
        return self._key("subscription", subscription_id, "cancel_at_period_end")

    def plan_product(self, plan_id: int) -> str:
        return self._key("plan", plan_id, "product")

    def plan_price(self, plan_id: int) -> str:
        return self._key("plan", plan_id, "price")

    def plan_lookup_key(self, plan_id: int) -> str:
        """The lookup_key of a plan's monthly Price: found again by it, never created twice."""
        return self._key("plan", plan_id, "monthly")

    def price_deactivate(self, price_id: str) -> str:
        return self._key("price", price_id, "deactivate")
