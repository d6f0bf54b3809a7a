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
  are declined, `pm_card_chargeCustomerFail` is saved but every charge on it declined,
  `pm_card_authenticationRequired` needs 3-D Secure (requires_action on
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

from tests.stripe_resources import StripeResources
from tests.stripe_wire import API_KEY, API_VERSION, WEBHOOK_SECRET, StripeFailure, invalid, parse_form

# Re-exported: tests import the credentials the server expects from here.
__all__ = ["API_KEY", "WEBHOOK_SECRET", "StripeServer", "running_stripe_server"]


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


class StripeServer(StripeResources):
    """Stripe's API v1 for the endpoints ChargeNet uses, with hooks for tests."""

    def __init__(self, *, api_key: str = API_KEY, webhook_secret: str = WEBHOOK_SECRET) -> None:
        super().__init__()
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self._release = threading.Event()
        self._idempotency: dict[str, tuple[str, Answer | None]] = {}
        self._faults: dict[str, deque[Fault]] = {}
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
                ("POST", r"/v1/products", "products.create", self._product_create),
                ("GET", r"/v1/prices", "prices.list", self._price_list),
                ("POST", r"/v1/prices", "prices.create", self._price_create),
                ("GET", r"/v1/prices/(?P<id>[^/]+)", "prices.retrieve", self._price_get),
                ("POST", r"/v1/prices/(?P<id>[^/]+)", "prices.update", self._price_update),
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

    def renew(self, subscription_id: str, *, card: str | None = None) -> None:
        """The subscription's period ends and Stripe bills the next one: the invoice is paid
        (active) or fails (past_due), as its card behaves; `card` replaces the card first."""
        with self._lock:
            sub = self.objects[subscription_id]
            if card is not None:
                pm = self._payment_method(card)
                pm["customer"] = sub["customer"]
                sub["default_payment_method"] = pm["id"]
            for item in sub["items"]["data"]:
                start = item["current_period_end"]
                item.update(current_period_start=start, current_period_end=start + 30 * 86_400)
            invoice = self._invoice(sub, reason="subscription_cycle")
            self._pay_invoice(sub, invoice, None)
            sub["status"] = "active" if invoice["status"] == "paid" else "past_due"
            self._emit("customer.subscription.updated", sub)

    def end_period(self, subscription_id: str) -> None:
        """The period of a subscription set to cancel at its end is over: Stripe deletes it."""
        with self._lock:
            sub = self.objects[subscription_id]
            assert sub["cancel_at_period_end"], "only a subscription ending at its period's end"
            sub.update(status="canceled", canceled_at=int(time.time()))
            self._emit("customer.subscription.deleted", sub)

    def complete_invoice_authentication(self, subscription_id: str) -> None:
        """The driver passed 3-D Secure for the first invoice in the app: paid, active."""
        with self._lock:
            sub = self.objects[subscription_id]
            invoice = self.objects[sub["latest_invoice"]]
            assert invoice["status"] == "open", invoice["status"]
            invoice.update(status="paid", amount_paid=invoice["amount_due"], confirmation_secret=None)
            sub["status"] = "active"
            self._emit("invoice.paid", invoice)
            self._emit("customer.subscription.updated", sub)

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
            return Answer(401, invalid("You did not provide an API key.", status=401).body)
        if not hmac.compare_digest(auth.removeprefix("Bearer "), self.api_key):
            return Answer(401, invalid("Invalid API Key provided.", status=401).body)
        if route is None:
            return Answer(404, invalid(f"Unrecognized request URL ({method}: {path}).", status=404).body)
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


@contextmanager
def running_stripe_server() -> Iterator[StripeServer]:
    server = StripeServer().start()
    try:
        yield server
    finally:
        server.stop()
