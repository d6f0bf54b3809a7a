"""Stripe's errors in ChargeNet's terms (schema.errors).

| Stripe                                         | ChargeNet                                  |
| ---------------------------------------------- | ------------------------------------------ |
| CardError (402)                                 | PaymentDeclined, with the decline code     |
| APIConnectionError (unreachable, timeout)       | PaymentProviderUnavailable                 |
| RateLimitError (429), APIError (5xx)            | PaymentProviderUnavailable                 |
| InvalidRequestError, IdempotencyError, 401, 403 | PaymentProviderError (our bug or config)   |

Card errors with code `authentication_required` are not errors for billing: the hold path
turns them into an AuthenticationRequired result before this mapping is reached.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe

from schema.errors import ChargeNetError, PaymentDeclined, PaymentProviderError, PaymentProviderUnavailable

log = logging.getLogger(__name__)

# Messages Stripe writes for card errors are meant for the cardholder; others are not shown.
DECLINED_MESSAGE = "The card was declined"


def error_details(exc: stripe.StripeError) -> dict[str, Any]:
    """Stripe's error object as a plain dict ({} when the body had none)."""
    body = exc.json_body if isinstance(exc.json_body, dict) else {}
    error = body.get("error")
    return error if isinstance(error, dict) else {}


def intent_of(exc: stripe.StripeError) -> dict[str, Any] | None:
    """The PaymentIntent Stripe attaches to errors of requests that involved one."""
    intent = error_details(exc).get("payment_intent")
    return intent if isinstance(intent, dict) else None


def to_domain(exc: stripe.StripeError, operation: str) -> ChargeNetError:
    details = error_details(exc)
    # Idempotency errors carry no code, only their type: that is what callers branch on.
    code = details.get("code") or getattr(exc, "code", None) or details.get("type")
    if isinstance(exc, stripe.CardError):
        intent = intent_of(exc)
        decline = details.get("decline_code") or code
        log.info("stripe %s: card declined (%s, %s)", operation, code, decline)
        return PaymentDeclined(
            str(details.get("message") or DECLINED_MESSAGE),
            decline_code=decline,
            payment_intent_id=intent.get("id") if intent else None,
        )
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError | stripe.APIError):
        log.warning(
            "stripe %s unavailable: %s (request %s)", operation, exc.__class__.__name__, exc.request_id
        )
        return PaymentProviderUnavailable(
            f"the payment provider is unavailable ({operation}); try again later"
        )
    # Invalid requests, idempotency misuse, bad credentials: a ChargeNet or configuration fault.
    log.error(
        "stripe %s refused: %s %s: %s (request %s)",
        operation,
        exc.__class__.__name__,
        code,
        details.get("message") or exc.user_message,
        exc.request_id,
    )
    return PaymentProviderError(
        f"the payment provider refused {operation} ({code or 'error'})", provider_code=code
    )
