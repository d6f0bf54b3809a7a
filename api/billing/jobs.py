"""The worker's part in payments: Stripe events the webhook endpoint stored but could not
process right after answering (the process stopped, a handler failed) are processed here."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from api.billing import inbox
from api.billing.webhook_handlers import default_registry
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

# The endpoint processes each delivery at once; this round only catches what that missed,
# so half a minute of delay costs little and keeps the query rare.
INBOX_INTERVAL_S = 30.0
# Processed events are kept this long: for support ("did Stripe tell us?") and far beyond
# Stripe's three days of redeliveries, which must still be recognised as duplicates.
INBOX_RETENTION = timedelta(days=90)


async def process_stripe_inbox(engine: AsyncEngine) -> int:
    done = await inbox.process_pending(engine, default_registry())
    if done:
        log.info("%d stripe events processed by the worker", done)
    return done


async def purge_stripe_inbox(engine: AsyncEngine, *, now: datetime | None = None) -> int:
    purged = await inbox.purge_processed(
        engine, source=inbox.STRIPE, before=(now or utcnow()) - INBOX_RETENTION
    )
    if purged:
        log.info("%d processed stripe events purged", purged)
    return purged
