"""The worker's part in payments: Stripe events the webhook endpoint stored but could not
process right after answering (the process stopped, a handler failed) are processed here."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from api.billing import inbox
from api.billing.webhook_handlers import default_registry

log = logging.getLogger(__name__)

# The endpoint processes each delivery at once; this round only catches what that missed,
# so half a minute of delay costs little and keeps the query rare.
INBOX_INTERVAL_S = 30.0


async def process_stripe_inbox(engine: AsyncEngine) -> int:
    done = await inbox.process_pending(engine, default_registry())
    if done:
        log.info("%d stripe events processed by the worker", done)
    return done
