"""Stripe's wire format for the local Stripe server (tests/stripe_server.py): its error
objects, nested form parameters, magic test cards, and the object store every resource shares
(ids with Stripe's prefixes, `created`, `livemode`, the events each change would send)."""

from __future__ import annotations

import copy
import re
import secrets
import threading
import time
from collections import Counter
from typing import Any

API_KEY = "sk_test_chargenet_local_0123456789"
WEBHOOK_SECRET = "whsec_chargenet_local_0123456789abcdef"
API_VERSION = "2026-10-28.endive"

# brand, last4, behaviour (None: approves; "decline:<code>"; "authenticate": 3-D Secure)
MAGIC_CARDS: dict[str, tuple[str, str, str | None]] = {
    "pm_card_visa": ("visa", "4242", None),
    "pm_card_mastercard": ("mastercard", "4444", None),
    "pm_card_chargeDeclined": ("visa", "0002", "decline:generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995", "decline:insufficient_funds"),
    "pm_card_authenticationRequired": ("visa", "3184", "authenticate"),
    # Stripe's 4000000000000341: saves fine, every charge on it is declined.
    "pm_card_chargeCustomerFail": ("visa", "0341", "charge_decline:generic_decline"),
}
CANCELABLE = {
    "requires_payment_method",
    "requires_confirmation",
    "requires_action",
    "processing",
    "requires_capture",
}
REFUND_REASONS = {"duplicate", "fraudulent", "requested_by_customer"}


class StripeFailure(Exception):
    """An error answer: HTTP status and Stripe's error object."""

    def __init__(self, status: int, type_: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {
            "error": {"type": type_, "message": message, **{k: v for k, v in fields.items() if v is not None}}
        }


def invalid(
    message: str, *, param: str | None = None, code: str | None = None, status: int = 400
) -> StripeFailure:
    return StripeFailure(status, "invalid_request_error", message, param=param, code=code)


def missing(kind: str, ident: str, param: str = "id") -> StripeFailure:
    return invalid(f"No such {kind}: '{ident}'", param=param, code="resource_missing", status=404)


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """`a[b][0][c]=v` pairs into nested dicts and lists, as Stripe reads them."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        head, _, rest = raw_key.partition("[")
        parts = [head] + (re.findall(r"([^\[\]]*)\]", "[" + rest) if rest else [])
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def listify(value: Any) -> Any:
        if isinstance(value, dict):
            items = {k: listify(v) for k, v in value.items()}
            if items and all(k.isdigit() for k in items):
                return [items[k] for k in sorted(items, key=int)]
            return items
        return value

    return listify(root)  # type: ignore[no-any-return]


def int_param(params: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    if name not in params or params[name] == "":
        if required:
            raise invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")
        return None
    try:
        return int(params[name])
    except (TypeError, ValueError):
        raise invalid(
            f"Invalid integer: {params[name]}", param=name, code="parameter_invalid_integer"
        ) from None


def bool_param(params: dict[str, Any], name: str) -> bool:
    return str(params.get(name, "false")).lower() == "true"


class StripeStore:
    """Stripe's objects by id, what each magic card does, and the events changes produced."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.objects: dict[str, dict[str, Any]] = {}
        self._behaviour: dict[str, str | None] = {}
        self.events: list[dict[str, Any]] = []
        self.counts: Counter[str] = Counter()

    def make_event(
        self, event_type: str, obj: dict[str, Any], *, created: int | None = None
    ) -> dict[str, Any]:
        """An event as Stripe sends it, without recording it (for scripted deliveries)."""
        return {
            "id": f"evt_{secrets.token_hex(12)}",
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()) if created is None else created,
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }

    # --- object store ---

    def _new(self, prefix: str, kind: str, **fields: Any) -> dict[str, Any]:
        ident = f"{prefix}_{secrets.token_hex(12)}"
        obj = {"id": ident, "object": kind, "created": int(time.time()), "livemode": False, **fields}
        self.objects[ident] = obj
        return obj

    def _get(self, ident: str, kind: str, param: str = "id") -> dict[str, Any]:
        obj = self.objects.get(ident)
        if obj is None or obj["object"] != kind:
            raise missing(kind, ident, param)
        return obj

    def _emit(self, event_type: str, obj: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        event = self.make_event(event_type, obj)
        event["request"] = {"id": f"req_{secrets.token_hex(8)}", "idempotency_key": key}
        self.events.append(event)
        return event

    def _payment_method(self, ident: str, param: str = "payment_method") -> dict[str, Any]:
        """A stored PaymentMethod, or a new one made from a magic test token (as Stripe does)."""
        if ident in MAGIC_CARDS:
            brand, last4, behaviour = MAGIC_CARDS[ident]
            pm = self._new(
                "pm",
                "payment_method",
                type="card",
                customer=None,
                billing_details={"address": None, "email": None, "name": None, "phone": None},
                card={
                    "brand": brand,
                    "last4": last4,
                    "exp_month": 12,
                    "exp_year": 2034,
                    "funding": "credit",
                    "country": "US",
                },
                metadata={},
            )
            self._behaviour[pm["id"]] = behaviour
            return pm
        return self._get(ident, "payment_method", param)
