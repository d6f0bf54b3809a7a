"""Helpers for tests of payments: settings pointing the gateway at the local Stripe server,
and what a driver's app does with Stripe on its side."""

from __future__ import annotations

from typing import Any

import stripe

from schema.settings import Settings
from tests.stripe_server import API_KEY, StripeServer


def stripe_settings(server: StripeServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "CHARGENET_STRIPE_API_KEY": API_KEY,
        "CHARGENET_STRIPE_API_BASE": server.url,
        "CHARGENET_STRIPE_TIMEOUT": 2.0,
        "CHARGENET_STRIPE_MAX_RETRIES": 2,
        "CHARGENET_STRIPE_IDEMPOTENCY_PREFIX": "test",
    }
    return Settings(**{**values, **overrides})


async def app_confirms_card(server: StripeServer, setup_intent_id: str, card: str) -> str:
    """What the driver's app does with the SetupIntent's client secret: confirm it with the
    card typed in (here with the SDK against the same server). Returns the saved card's id."""
    http = stripe.HTTPXClient()
    app = stripe.StripeClient(API_KEY, base_addresses={"api": server.url}, http_client=http)
    try:
        seti = await app.v1.setup_intents.confirm_async(setup_intent_id, {"payment_method": card})
    finally:
        await http.close_async()
    return str(seti.payment_method)
