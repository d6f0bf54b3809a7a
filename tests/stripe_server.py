"""A local HTTP server that answers like Stripe's API v1, for the real `stripe` SDK.

It listens on a real socket (a thread per request, so a hanging request never blocks the
test's event loop) and speaks Stripe's wire format: form-encoded bodies with nested keys
(`metadata[user_id]=1`, `items[0][price]=…`), JSON objects with `id`, `object`, `created`,
`livemode`, Stripe's statuses, Stripe's error objects and HTTP statuses, Bearer auth, and
`Idempotency-Key` replay (same key and parameters: the saved response again, marked
`Idempotent-Replayed`; same key, other parameters: `idempotency_error`, 400).

Test hooks script the world the SDK meets:
- Stripe's magic test cards: `pm_card_visa` and `pm_card_mastercard` succeed,
  `pm_card_chargeDeclined` (generic_decline) and `pm_card_chargeDeclinedInsufficientFunds`
  are declined, `pm_card_authenticationRequired` needs 3-D Secure (requires_action on
  session, an `authentication_required` card error off session);
- `fail_next(endpoint, times, mode)`: the next calls answer 500 before doing anything
  ("error"), hang until the client gives up ("hang"), or do the work and then lose the
  answer by closing the connection ("drop");
- `counts`: what really happened (authorizations, captures, refunds…), however often the
  SDK retried; `calls`: requests per endpoint; `requests`: each request's key and params;
- `events`: the events Stripe would send for every change, and `deliver(url, event)` sends
  one to a URL signed like Stripe does (`Stripe-Signature: t=…,v1=HMAC-SHA256("t.payload")`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

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


def _invalid(
    message: str, *, param: str | None = None, code: str | None = None, status: int = 400
) -> StripeFailure:
    return StripeFailure(status, "invalid_request_error", message, param=param, code=code)


def _missing(kind: str, ident: str, param: str = "id") -> StripeFailure:
    return _invalid(f"No such {kind}: '{ident}'", param=param, code="resource_missing", status=404)


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


def _int(params: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    if name not in params or params[name] == "":
        if required:
            raise _invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")
        return None
    try:
        return int(params[name])
    except (TypeError, ValueError):
        raise _invalid(
            f"Invalid integer: {params[name]}", param=name, code="parameter_invalid_integer"
        ) from None


def _bool(params: dict[str, Any], name: str) -> bool:
    return str(params.get(name, "false")).lower() == "true"


@dataclass
class Fault:
    mode: str  # "error" | "hang" | "drop"
    hang_s: float


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    drop: bool = False
    replayed: bool = False


class StripeServer:
    """Stripe's API v1 for the endpoints ChargeNet uses, with hooks for tests."""

    def __init__(self, *, api_key: str = API_KEY, webhook_secret: str = WEBHOOK_SECRET) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self._lock = threading.RLock()
        self._release = threading.Event()
        self.objects: dict[str, dict[str, Any]] = {}
        self._behaviour: dict[str, str | None] = {}
        self._idempotency: dict[str, tuple[str, Answer | None]] = {}
        self._faults: dict[str, deque[Fault]] = {}
        self.events: list[dict[str, Any]] = []
        self.counts: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes: list[tuple[str, re.Pattern[str], str, Callable[..., dict[str, Any]]]] = [
            (m, re.compile(f"^{p}$"), name, fn)
            for m, p, name, fn in [
                ("POST", r"/v1/customers", "customers.create", self._customer_create),
                ("GET", r"/v1/customers/(?P<id>[^/]+)", "customers.retrieve", self._customer_get),
                ("POST", r"/v1/customers/(?P<id>[^/]+)", "customers.update", self._customer_update),
                (
                    "GET",
                    r"/v1/customers/(?P<id>[^/]+)/payment_methods",
                    "customers.payment_methods",
                    self._customer_pms,
                ),
                ("POST", r"/v1/setup_intents", "setup_intents.create", self._seti_create),
                ("GET", r"/v1/setup_intents/(?P<id>[^/]+)", "setup_intents.retrieve", self._seti_get),
                (
                    "POST",
                    r"/v1/setup_intents/(?P<id>[^/]+)/confirm",
                    "setup_intents.confirm",
                    self._seti_confirm,
                ),
                ("GET", r"/v1/payment_methods/(?P<id>[^/]+)", "payment_methods.retrieve", self._pm_get),
                (
                    "POST",
                    r"/v1/payment_methods/(?P<id>[^/]+)/attach",
                    "payment_methods.attach",
                    self._pm_attach,
                ),
                (
                    "POST",
                    r"/v1/payment_methods/(?P<id>[^/]+)/detach",
                    "payment_methods.detach",
                    self._pm_detach,
                ),
                ("POST", r"/v1/payment_intents", "payment_intents.create", self._pi_create),
                ("GET", r"/v1/payment_intents/(?P<id>[^/]+)", "payment_intents.retrieve", self._pi_get),
                (
                    "POST",
                    r"/v1/payment_intents/(?P<id>[^/]+)/confirm",
                    "payment_intents.confirm",
                    self._pi_confirm,
                ),
                (
                    "POST",
                    r"/v1/payment_intents/(?P<id>[^/]+)/increment_authorization",
                    "payment_intents.increment_authorization",
                    self._pi_increment,
                ),
                (
                    "POST",
                    r"/v1/payment_intents/(?P<id>[^/]+)/capture",
                    "payment_intents.capture",
                    self._pi_capture,
                ),
                (
                    "POST",
                    r"/v1/payment_intents/(?P<id>[^/]+)/cancel",
                    "payment_intents.cancel",
                    self._pi_cancel,
                ),
                ("POST", r"/v1/refunds", "refunds.create", self._refund_create),
                ("GET", r"/v1/prices", "prices.list", self._price_list),
                ("GET", r"/v1/prices/(?P<id>[^/]+)", "prices.retrieve", self._price_get),
                ("POST", r"/v1/subscriptions", "subscriptions.create", self._sub_create),
                ("GET", r"/v1/subscriptions/(?P<id>[^/]+)", "subscriptions.retrieve", self._sub_get),
                ("POST", r"/v1/subscriptions/(?P<id>[^/]+)", "subscriptions.update", self._sub_update),
                ("DELETE", r"/v1/subscriptions/(?P<id>[^/]+)", "subscriptions.cancel", self._sub_delete),
            ]
        ]

    # --- lifecycle ---

    def start(self) -> StripeServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_POST(self) -> None:
                server._handle(self, "POST")

            def do_DELETE(self) -> None:
                server._handle(self, "DELETE")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="stripe-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # --- test hooks ---

    def fail_next(self, endpoint: str, times: int = 1, *, mode: str = "error", hang_s: float = 30.0) -> None:
        """The next `times` requests to `endpoint` (e.g. "payment_intents.capture") fail."""
        assert mode in ("error", "hang", "drop")
        with self._lock:
            queue = self._faults.setdefault(endpoint, deque())
            queue.extend(Fault(mode, hang_s) for _ in range(times))

    def add_price(
        self,
        *,
        lookup_key: str,
        unit_amount: int,
        currency: str = "eur",
        interval: str = "month",
        name: str = "Plan",
    ) -> dict[str, Any]:
        with self._lock:
            product = self._new("prod", "product", name=name, active=True, metadata={})
            return self._new(
                "price",
                "price",
                product=product["id"],
                lookup_key=lookup_key,
                unit_amount=unit_amount,
                currency=currency,
                active=True,
                type="recurring",
                recurring={"interval": interval, "interval_count": 1},
                metadata={},
            )

    def complete_authentication(self, payment_intent_id: str) -> dict[str, Any]:
        """The driver passed 3-D Secure in the app: the intent is confirmed with its card."""
        with self._lock:
            pi = self.objects[payment_intent_id]
            assert pi["status"] == "requires_action", pi["status"]
            self._behaviour[pi["payment_method"]] = None
            self._authorize(pi, request=None)
            return copy.deepcopy(pi)

    def open_dispute(self, payment_intent_id: str, *, reason: str = "fraudulent") -> dict[str, Any]:
        with self._lock:
            pi = self.objects[payment_intent_id]
            dispute = self._new(
                "dp",
                "dispute",
                amount=pi["amount_received"],
                currency=pi["currency"],
                charge=pi["latest_charge"],
                payment_intent=pi["id"],
                reason=reason,
                status="needs_response",
                metadata={},
            )
            return self._emit("charge.dispute.created", dispute)

    def events_of(self, event_type: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["type"] == event_type]

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

    def sign(self, payload: str, *, timestamp: int | None = None, secret: str | None = None) -> str:
        t = int(time.time()) if timestamp is None else timestamp
        mac = hmac.new((secret or self.webhook_secret).encode(), f"{t}.{payload}".encode(), hashlib.sha256)
        return f"t={t},v1={mac.hexdigest()}"

    async def deliver(
        self,
        url: str,
        event: dict[str, Any],
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        """POST `event` to `url` as Stripe does: pretty-printed JSON, signed over the raw bytes."""
        payload = json.dumps(event, indent=2)
        header = (
            signature if signature is not None else self.sign(payload, timestamp=timestamp, secret=secret)
        )
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(
                url,
                content=payload.encode(),
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Stripe-Signature": header,
                    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                },
            )

    # --- HTTP ---

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        pairs = parse_qsl(body if method == "POST" else split.query, keep_blank_values=True)
        params = parse_form(pairs)
        key = handler.headers.get("Idempotency-Key")
        answer = self._dispatch(
            method,
            split.path,
            params,
            handler.headers.get("Authorization"),
            key,
            handler.headers.get("Stripe-Version"),
        )
        if answer.drop:
            handler.close_connection = True
            return
        payload = json.dumps(answer.body).encode()
        try:
            handler.send_response(answer.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.send_header("Request-Id", f"req_{secrets.token_hex(8)}")
            handler.send_header("Stripe-Version", handler.headers.get("Stripe-Version") or API_VERSION)
            if key:
                handler.send_header("Idempotency-Key", key)
            if answer.replayed:
                handler.send_header("Idempotent-Replayed", "true")
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing to answer

    def _dispatch(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        auth: str | None,
        key: str | None,
        version: str | None = None,
    ) -> Answer:
        route = next(
            (
                (n, m.groupdict(), fn)
                for mm, p, n, fn in self._routes
                if mm == method and (m := p.match(path))
            ),
            None,
        )
        if auth is None or not auth.startswith("Bearer "):
            return Answer(401, _invalid("You did not provide an API key.", status=401).body)
        if not hmac.compare_digest(auth.removeprefix("Bearer "), self.api_key):
            return Answer(401, _invalid("Invalid API Key provided.", status=401).body)
        if route is None:
            return Answer(404, _invalid(f"Unrecognized request URL ({method}: {path}).", status=404).body)
        endpoint, path_args, fn = route
        with self._lock:
            self.calls[endpoint] += 1
            self.requests.append(
                {"endpoint": endpoint, "path": path, "key": key, "params": params, "version": version}
            )
            queue = self._faults.get(endpoint)
            fault = queue.popleft() if queue else None
        if fault is not None and fault.mode == "error":
            return Answer(500, StripeFailure(500, "api_error", "An unknown error occurred.").body)
        if fault is not None and fault.mode == "hang":
            self._release.wait(fault.hang_s)
            return Answer(500, {}, drop=True)
        answer = self._idempotent(
            method, path, params, key, lambda: self._execute(fn, path_args, params, key)
        )
        if fault is not None and fault.mode == "drop":
            return Answer(answer.status, answer.body, drop=True)
        return answer

    def _idempotent(
        self, method: str, path: str, params: dict[str, Any], key: str | None, run: Callable[[], Answer]
    ) -> Answer:
        if method != "POST" or not key:
            return run()
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        with self._lock:
            stored = self._idempotency.get(key)
            if stored is not None:
                seen, answer = stored
                if seen != fingerprint:
                    return Answer(
                        400,
                        StripeFailure(
                            400,
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same parameters "
                            "they were first used with.",
                        ).body,
                    )
                if answer is None:
                    return Answer(
                        409,
                        StripeFailure(
                            409,
                            "idempotency_error",
                            "There is currently another in-progress request using this idempotency key.",
                        ).body,
                    )
                return Answer(answer.status, copy.deepcopy(answer.body), replayed=True)
            self._idempotency[key] = (fingerprint, None)
        answer = run()
        with self._lock:
            self._idempotency[key] = (fingerprint, answer)
        return Answer(answer.status, copy.deepcopy(answer.body))

    def _execute(
        self,
        fn: Callable[..., dict[str, Any]],
        path_args: dict[str, str],
        params: dict[str, Any],
        key: str | None,
    ) -> Answer:
        with self._lock:
            try:
                return Answer(200, copy.deepcopy(fn(params, key=key, **path_args)))
            except StripeFailure as failure:
                return Answer(failure.status, failure.body)

    # --- object store ---

    def _new(self, prefix: str, kind: str, **fields: Any) -> dict[str, Any]:
        ident = f"{prefix}_{secrets.token_hex(12)}"
        obj = {"id": ident, "object": kind, "created": int(time.time()), "livemode": False, **fields}
        self.objects[ident] = obj
        return obj

    def _get(self, ident: str, kind: str, param: str = "id") -> dict[str, Any]:
        obj = self.objects.get(ident)
        if obj is None or obj["object"] != kind:
            raise _missing(kind, ident, param)
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

    # --- customers and payment methods ---

    def _customer_create(self, p: dict[str, Any], **_: Any) -> dict[str, Any]:
        return self._new(
            "cus",
            "customer",
            email=p.get("email"),
            name=p.get("name"),
            description=p.get("description"),
            metadata=p.get("metadata") or {},
            balance=0,
            currency=None,
            delinquent=False,
            default_source=None,
            invoice_settings={"default_payment_method": None, "custom_fields": None, "footer": None},
        )

    def _customer_get(self, p: dict[str, Any], *, id: str, **_: Any) -> dict[str, Any]:
        return self._get(id, "customer")

    def _customer_update(self, p: dict[str, Any], *, id: str, **_: Any) -> dict[str, Any]:
        customer = self._get(id, "customer")
        default = (p.get("invoice_settings") or {}).get("default_payment_method")
        if default:
            pm = self._get(default, "payment_method", "invoice_settings[default_payment_method]")
            if pm["customer"] != id:
                raise _invalid(
                    f"No such PaymentMethod: '{default}'; it is not attached to this customer.",
                    param="invoice_settings[default_payment_method]",
                    code="resource_missing",
                )
            customer["invoice_settings"]["default_payment_method"] = default
        for name in ("email", "name", "description"):
            if name in p:
                customer[name] = p[name]
        if "metadata" in p:
            customer["metadata"].update(p["metadata"])
        self._emit("customer.updated", customer)
        return customer

    def _customer_pms(self, p: dict[str, Any], *, id: str, **_: Any) -> dict[str, Any]:
        self._get(id, "customer")
        data = [
            o for o in self.objects.values() if o["object"] == "payment_method" and o.get("customer") == id
        ]
        if p.get("type"):
            data = [o for o in data if o["type"] == p["type"]]
        limit = _int(p, "limit", required=False) or 10
        data.sort(key=lambda o: o["created"], reverse=True)
        return {
            "object": "list",
            "data": data[:limit],
            "has_more": len(data) > limit,
            "url": f"/v1/customers/{id}/payment_methods",
        }

    def _seti_create(self, p: dict[str, Any], *, key: str | None, **_: Any) -> dict[str, Any]:
        if p.get("customer"):
            self._get(p["customer"], "customer", "customer")
        seti = self._new(
            "seti",
            "setup_intent",
            customer=p.get("customer"),
            usage=p.get("usage", "off_session"),
            payment_method=None,
            payment_method_types=p.get("payment_method_types") or ["card"],
            status="requires_payment_method",
            metadata=p.get("metadata") or {},
            last_setup_error=None,
            next_action=None,
        )
        seti["client_secret"] = f"{seti['id']}_secret_{secrets.token_hex(12)}"
        self._emit("setup_intent.created", seti, key)
        if _bool(p, "confirm") and p.get("payment_method"):
            return self._seti_confirm({"payment_method": p["payment_method"]}, id=seti["id"], key=key)
        return seti

    def _seti_get(self, p: dict[str, Any], *, id: str, **_: Any) -> dict[str, Any]:
        return self._get(id, "setup_intent")

    def _seti_confirm(
        self, p: dict[str, Any], *, id: str, key: str | None = None, **_: Any
    ) -> dict[str, Any]:
        seti = self._get(id, "setup_intent", "intent")
        if seti["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise _invalid(
                f"You cannot confirm this SetupIntent because it has a status of {seti['status']}.",
                code="setup_intent_unexpected_state",
            )
        pm = self._payment_method(p.get("payment_method") or "", "payment_method")
        behaviour = self._behaviour.get(pm["id"])
        if behaviour and behaviour.startswith("decline:"):
            seti["last_setup_error"] = {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": behaviour[8:],
            }
            self._emit("setup_intent.setup_failed", seti, key)
            raise StripeFailure(
                402,
                "card_error",
                "Your card was declined.",
                code="card_declined",
                decline_code=behaviour[8:],
                setup_intent=copy.deepcopy(seti),
            )
        seti["payment_method"] = pm["id"]
        seti["status"] = "succeeded"
        if seti["customer"]:
            pm["customer"] = seti["customer"]
            self._emit("payment_method.attached", pm, key)
        self._emit("setup_intent.succeeded", seti, key)
        return seti

    def _pm_get(self, p: dict[str, Any], *, id: str, **_: Any) -> dict[str, Any]:
        return self._get(id, "payment_method")

    def _pm_attach(self, p: dict[str, Any], *, id: str, key: str | None, **_: Any) -> dict[str, Any]:
        pm = self._payment_method(id, "payment_method")
        self._get(p.get("customer") or "", "customer", "customer")
        pm["customer"] = p["customer"]
        self._emit("payment_method.attached", pm, key)
        return pm

    def _pm_detach(self, p: dict[str, Any], *, id: str, key: str | None, **_: Any) -> dict[str, Any]:
        pm = self._get(id, "payment_method", "payment_method")
        if pm["customer"] is None:
            raise _invalid(
                "The payment method you provided is not attached to a customer so detachment is impossible.",
                code="payment_method_unexpected_state",
            )
        owner = self.objects.get(pm["customer"])
        if owner is not None and owner["invoice_settings"]["default_payment_method"] == id:
            owner["invoice_settings"]["default_payment_method"] = None
        pm["customer"] = None
        self._emit("payment_method.detached", pm, key)
        return pm

    # --- payment intents ---

    def _pi_create(self, p: dict[str, Any], *, key: str | None, **_: Any) -> dict[str, Any]:
        amount = _int(p, "amount")
        assert amount is not None
        if amount < 1:
            raise _invalid("Amount must be at least 1.", param="amount", code="amount_too_small")
        if not p.get("currency"):
            raise _invalid("Missing required param: currency.", param="currency", code="parameter_missing")
        if p.get("customer"):
            self._get(p["customer"], "customer", "customer")
        if _bool(p, "off_session") and not _bool(p, "confirm"):
            raise _invalid("off_session can only be used with confirm=true.", param="off_session")
        pm = self._payment_method(p["payment_method"]) if p.get("payment_method") else None
        pi = self._new(
            "pi",
            "payment_intent",
            amount=amount,
            amount_capturable=0,
            amount_received=0,
            currency=p["currency"].lower(),
            customer=p.get("customer"),
            payment_method=pm["id"] if pm else None,
            payment_method_types=p.get("payment_method_types") or ["card"],
            payment_method_options=p.get("payment_method_options") or {},
            capture_method=p.get("capture_method", "automatic_async"),
            confirmation_method="automatic",
            status="requires_payment_method" if pm is None else "requires_confirmation",
            description=p.get("description"),
            metadata=p.get("metadata") or {},
            last_payment_error=None,
            next_action=None,
            latest_charge=None,
            canceled_at=None,
            cancellation_reason=None,
        )
        pi["client_secret"] = f"{pi['id']}_secret_{secrets.token_hex(12)}"
        self._emit("payment_intent.created", pi, key)
        if _bool(p, "confirm"):
            self._confirm(pi, off_session=_bool(p, "off_session"), key=key)
        return pi

    def _pi_get(self, p: dict[str, Any], *, id: str, **_: Any) -> dict[str, Any]:
        return self._get(id, "payment_intent", "intent")

    def _pi_confirm(self, p: dict[str, Any], *, id: str, key: str | None, **_: Any) -> dict[str, Any]:
        pi = self._get(id, "payment_intent", "intent")
        if pi["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
            raise _invalid(
                f"This PaymentIntent's status is {pi['status']}; it cannot be confirmed.",
                code="payment_intent_unexpected_state",
            )
        if p.get("payment_method"):
            pi["payment_method"] = self._payment_method(p["payment_method"])["id"]
        self._confirm(pi, off_session=_bool(p, "off_session"), key=key)
        return pi

    def _confirm(self, pi: dict[str, Any], *, off_session: bool, key: str | None) -> None:
        if pi["payment_method"] is None:
            raise _invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        behaviour = self._behaviour.get(pi["payment_method"])
        if behaviour and behaviour.startswith("decline:"):
            self._fail(pi, "card_declined", behaviour[8:], "Your card was declined.", key)
        if behaviour == "authenticate":
            if off_session:
                self._fail(
                    pi,
                    "authentication_required",
                    "authentication_required",
                    "Your card was declined. This transaction requires authentication.",
                    key,
                )
            pi["status"] = "requires_action"
            pi["next_action"] = {
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {"type": "three_d_secure_redirect"},
            }
            self._emit("payment_intent.requires_action", pi, key)
            return
        self._authorize(pi, request=key)

    def _fail(self, pi: dict[str, Any], code: str, decline: str, message: str, key: str | None) -> None:
        charge = self._charge(pi, status="failed")
        self.counts["declines"] += 1
        error = {
            "type": "card_error",
            "code": code,
            "decline_code": decline,
            "message": message,
            "charge": charge["id"],
            "payment_method": copy.deepcopy(self.objects[pi["payment_method"]]),
        }
        pi["status"] = "requires_payment_method"
        pi["last_payment_error"] = error
        pi["latest_charge"] = charge["id"]
        self._emit("charge.failed", charge, key)
        self._emit("payment_intent.payment_failed", pi, key)
        raise StripeFailure(
            402,
            "card_error",
            message,
            code=code,
            decline_code=decline,
            charge=charge["id"],
            payment_intent=copy.deepcopy(pi),
            request_log_url=None,
        )

    def _charge(self, pi: dict[str, Any], *, status: str) -> dict[str, Any]:
        return self._new(
            "ch",
            "charge",
            amount=pi["amount"],
            amount_captured=0,
            amount_refunded=0,
            captured=False,
            paid=status == "succeeded",
            refunded=False,
            status=status,
            currency=pi["currency"],
            customer=pi["customer"],
            payment_intent=pi["id"],
            payment_method=pi["payment_method"],
            refunds={"object": "list", "data": [], "has_more": False},
            metadata={},
        )

    def _authorize(self, pi: dict[str, Any], *, request: str | None) -> None:
        charge = self._charge(pi, status="succeeded")
        self.counts["authorizations"] += 1
        pi["latest_charge"] = charge["id"]
        pi["last_payment_error"] = None
        pi["next_action"] = None
        if pi["capture_method"] == "manual":
            pi["status"] = "requires_capture"
            pi["amount_capturable"] = pi["amount"]
            self._emit("payment_intent.amount_capturable_updated", pi, request)
        else:
            self._capture(pi, pi["amount"], request)

    def _capture(self, pi: dict[str, Any], amount: int, key: str | None) -> None:
        charge = self.objects[pi["latest_charge"]]
        charge.update(captured=True, amount_captured=amount)
        pi.update(status="succeeded", amount_received=amount, amount_capturable=0)
        self.counts["captures"] += 1
        self.counts["captured_amount"] += amount
        self._emit("charge.captured", charge, key)
        self._emit("payment_intent.succeeded", pi, key)

    def _pi_increment(self, p: dict[str, Any], *, id: str, key: str | None, **_: Any) -> dict[str, Any]:
        pi = self._get(id, "payment_intent", "intent")
        amount = _int(p, "amount")
        assert amount is not None
        if pi["status"] != "requires_capture":
            raise _invalid(
                f"This PaymentIntent's status is {pi['status']}; only requires_capture can be incremented.",
                code="payment_intent_unexpected_state",
            )
        requested = ((pi["payment_method_options"] or {}).get("card") or {}).get(
            "request_incremental_authorization"
        )
        if requested not in ("if_available", "required"):
            raise _invalid(
                "This PaymentIntent was not created with incremental authorization support.",
                code="payment_intent_incremental_authorization_unsupported",
            )
        if amount <= pi["amount"]:
            raise _invalid("The new amount must be greater than the current amount.", param="amount")
        pi.update(amount=amount, amount_capturable=amount)
        self.objects[pi["latest_charge"]]["amount"] = amount
        self.counts["increments"] += 1
        self._emit("payment_intent.amount_capturable_updated", pi, key)
        return pi

    def _pi_capture(self, p: dict[str, Any], *, id: str, key: str | None, **_: Any) -> dict[str, Any]:
        pi = self._get(id, "payment_intent", "intent")
        if pi["status"] != "requires_capture":
            raise _invalid(
                f"This PaymentIntent could not be captured because it has a status of {pi['status']}. Only a "
                "PaymentIntent with one of the following statuses may be captured: requires_capture.",
                code="payment_intent_unexpected_state",
            )
        amount = _int(p, "amount_to_capture", required=False)
        amount = pi["amount_capturable"] if amount is None else amount
        if amount > pi["amount_capturable"]:
            raise _invalid(
                "The amount to capture exceeds the amount capturable.",
                param="amount_to_capture",
                code="amount_too_large",
            )
        self._capture(pi, amount, key)
        return pi

    def _pi_cancel(self, p: dict[str, Any], *, id: str, key: str | None, **_: Any) -> dict[str, Any]:
        pi = self._get(id, "payment_intent", "intent")
        if pi["status"] not in CANCELABLE:
            raise _invalid(
                f"You cannot cancel this PaymentIntent because it has a status of {pi['status']}.",
                code="payment_intent_unexpected_state",
            )
        pi.update(
            status="canceled",
            amount_capturable=0,
            canceled_at=int(time.time()),
            cancellation_reason=p.get("cancellation_reason"),
        )
        self.counts["cancellations"] += 1
        self._emit("payment_intent.canceled", pi, key)
        return pi

    def _refund_create(self, p: dict[str, Any], *, key: str | None, **_: Any) -> dict[str, Any]:
        if not p.get("payment_intent"):
            raise _invalid(
                "Missing required param: payment_intent.", param="payment_intent", code="parameter_missing"
            )
        pi = self._get(p["payment_intent"], "payment_intent", "payment_intent")
        if pi["status"] != "succeeded":
            raise _invalid(
                f"This PaymentIntent has a status of {pi['status']}; only captured payments can be refunded.",
                code="charge_not_refundable",
            )
        charge = self.objects[pi["latest_charge"]]
        left = charge["amount_captured"] - charge["amount_refunded"]
        amount = _int(p, "amount", required=False)
        amount = left if amount is None else amount
        if amount < 1 or amount > left:
            raise _invalid(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                param="amount",
                code="amount_too_large" if amount > left else "amount_too_small",
            )
        reason = p.get("reason")
        if reason is not None and reason not in REFUND_REASONS:
            raise _invalid(f"Invalid reason: {reason}", param="reason", code="parameter_invalid_empty")
        refund = self._new(
            "re",
            "refund",
            amount=amount,
            charge=charge["id"],
            currency=pi["currency"],
            payment_intent=pi["id"],
            reason=reason,
            status="succeeded",
            metadata=p.get("metadata") or {},
        )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
        charge["refunds"]["data"].insert(0, copy.deepcopy(refund))
        self.counts["refunds"] += 1
        self.counts["refunded_amount"] += amount
        self._emit("refund.created", refund, key)
        self._emit("charge.refunded", charge, key)
        if "charge" in (p.get("expand") or []):
            return {**refund, "charge": copy.deepcopy(charge)}
        return refund

    # --- prices and subscriptions ---

    def _price_list(self, p: dict[str, Any], **_: Any) -> dict[str, Any]:
        data = [o for o in self.objects.values() if o["object"] == "price"]
        if p.get("lookup_keys"):
            data = [o for o in data if o["lookup_key"] in p["lookup_keys"]]
        if "active" in p:
            data = [o for o in data if o["active"] == _bool(p, "active")]
        limit = _int(p, "limit", required=False) or 10
        return {"object": "list", "data": data[:limit], "has_more": len(data) > limit, "url": "/v1/prices"}

    def _price_get(self, p: dict[str, Any], *, id: str, **_: Any) -> dict[str, Any]:
        return self._get(id, "price")

    def _sub_item(self, price_id: str, param: str) -> dict[str, Any]:
        price = self._get(price_id, "price", param)
        now = int(time.time())
        return {
            "id": f"si_{secrets.token_hex(12)}",
            "object": "subscription_item",
            "created": now,
            "price": copy.deepcopy(price),
            "quantity": 1,
            "current_period_start": now,
            "current_period_end": now + 30 * 86_400,
        }

    def _sub_create(self, p: dict[str, Any], *, key: str | None, **_: Any) -> dict[str, Any]:
        customer = self._get(p.get("customer") or "", "customer", "customer")
        items = p.get("items") or []
        if not items:
            raise _invalid("Missing required param: items.", param="items", code="parameter_missing")
        has_card = bool(
            p.get("default_payment_method") or customer["invoice_settings"]["default_payment_method"]
        )
        sub = self._new(
            "sub",
            "subscription",
            customer=customer["id"],
            status="active" if has_card else "incomplete",
            items={
                "object": "list",
                "data": [
                    self._sub_item(it.get("price", ""), f"items[{i}][price]") for i, it in enumerate(items)
                ],
                "has_more": False,
            },
            cancel_at_period_end=False,
            canceled_at=None,
            metadata=p.get("metadata") or {},
        )
        self._emit("customer.subscription.created", sub, key)
        return sub

    def _sub_get(self, p: dict[str, Any], *, id: str, **_: Any) -> dict[str, Any]:
        return self._get(id, "subscription")

    def _sub_update(self, p: dict[str, Any], *, id: str, key: str | None, **_: Any) -> dict[str, Any]:
        sub = self._get(id, "subscription")
        if sub["status"] == "canceled":
            raise _invalid("A canceled subscription can only update its cancellation_details and metadata.")
        for i, item in enumerate(p.get("items") or []):
            existing = next((it for it in sub["items"]["data"] if it["id"] == item.get("id")), None)
            if existing is None:
                raise _missing("subscription_item", str(item.get("id")), f"items[{i}][id]")
            existing["price"] = copy.deepcopy(self._get(item["price"], "price", f"items[{i}][price]"))
        if "cancel_at_period_end" in p:
            sub["cancel_at_period_end"] = _bool(p, "cancel_at_period_end")
        self._emit("customer.subscription.updated", sub, key)
        return sub

    def _sub_delete(self, p: dict[str, Any], *, id: str, key: str | None, **_: Any) -> dict[str, Any]:
        sub = self._get(id, "subscription")
        sub.update(status="canceled", canceled_at=int(time.time()))
        self._emit("customer.subscription.deleted", sub, key)
        return sub


@contextmanager
def running_stripe_server() -> Iterator[StripeServer]:
    server = StripeServer().start()
    try:
        yield server
    finally:
        server.stop()
