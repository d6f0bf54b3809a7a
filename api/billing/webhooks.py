"""`POST /webhooks/stripe`: verify, store once, answer, then process.

- The signature is checked on the raw body bytes (re-serialised JSON would not match), with
  the endpoint's signing secret (CHARGENET_STRIPE_WEBHOOK_SECRET; several, comma-separated,
  while a secret is being rolled). A bad signature, or a timestamp outside the tolerance
  either way (a replayed old delivery, or a clock far ahead), is a 400 and stores nothing.
- The event is stored in the inbox by its id: a redelivery answers 200 and is not stored
  twice. Processing runs after the answer (api.billing.inbox), so Stripe never waits on it.
- Without a secret configured the endpoint answers 503: nothing unverified is ever stored.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import stripe
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.billing import inbox
from api.billing.inbox import HandlerRegistry
from api.billing.webhook_handlers import default_registry
from schema.settings import Settings

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/stripe"
# Stripe's events are a few kilobytes; a body this large is not from Stripe.
MAX_WEBHOOK_BYTES = 1_048_576


def _error(message: str, status: int) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def verify(payload: bytes, header: str | None, secrets: list[str], tolerance_s: int) -> bool:
    """Whether any of `secrets` signed `payload` within `tolerance_s` of now (either way)."""
    if not header:
        return False
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance_s)
        except stripe.SignatureVerificationError:
            continue
        # The SDK refuses only old timestamps; one far in the future is as suspect.
        stamps = [p.split("=", 1)[1] for p in header.split(",") if p.startswith("t=")]
        if stamps and stamps[0].isdigit() and int(stamps[0]) > time.time() + tolerance_s:
            return False
        return True
    return False


def _event_fields(payload: bytes) -> tuple[str, str, dict[str, Any]] | None:
    try:
        event = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(event, dict) or event.get("object") != "event":
        return None
    event_id, event_type, created = event.get("id"), event.get("type"), event.get("created")
    data = event.get("data")
    if not (isinstance(event_id, str) and event_id and isinstance(event_type, str) and event_type):
        return None
    if not isinstance(created, int) or not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        return None
    return event_id[:255], event_type[:80], event


def stripe_webhook_route(
    engine: AsyncEngine, settings: Settings, registry: HandlerRegistry | None = None
) -> Route:
    secrets = [s.strip() for s in (settings.stripe_webhook_secret or "").split(",") if s.strip()]
    handlers = registry or default_registry()

    async def process() -> None:
        try:
            await inbox.process_pending(engine, handlers)
        except Exception:
            # The worker's next round retries; the delivery itself is already safely stored.
            log.exception("processing stripe events after a webhook failed")

    async def webhook(request: Request) -> Response:
        if not secrets:
            return _error("stripe webhooks are not configured", 503)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_WEBHOOK_BYTES:
            return _error("payload too large", 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_WEBHOOK_BYTES:
                return _error("payload too large", 413)
        payload = bytes(body)
        if not verify(
            payload, request.headers.get("stripe-signature"), secrets, settings.stripe_webhook_tolerance_s
        ):
            log.warning("stripe webhook with a bad or stale signature refused")
            return _error("invalid signature", 400)
        fields = _event_fields(payload)
        if fields is None:
            return _error("not a stripe event", 400)
        event_id, event_type, event = fields
        stored = await inbox.store(
            engine,
            source=inbox.STRIPE,
            external_id=event_id,
            event_type=event_type,
            payload=event,
            created=inbox.stripe_created(event),
        )
        return JSONResponse({"received": True, "duplicate": not stored}, background=BackgroundTask(process))

    return Route(WEBHOOK_PATH, webhook, methods=["POST"])
