"""The inbox: inbound events stored once by `(source, external_id)`, processed once.

Storing is the only thing the webhook endpoint does before answering, so Stripe gets its 2xx
in milliseconds and never times out into redeliveries. Processing happens after the answer
(a background task) and again in the worker (`process_pending` as a scheduled job), which
retries failed rows and picks up rows whose background task died with its process.

Each row is processed in its own transaction, together with the handler's writes and the
row's `processed_at`: a crash in between leaves it unprocessed, never half done. Handlers
are idempotent anyway (a repeat changes nothing), because a row is processed at least once.
Rows are taken in the order of the source's own timestamp (Stripe's `created`).
"""

from __future__ import annotations

import asyncio
import logging
import traceback
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from schema.db import session_factory
from schema.payment_models import InboxEvent
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

INBOX: Table = InboxEvent.__table__  # type: ignore[attr-defined]
STRIPE = "stripe"
# A row that failed this often stays for an operator (last_error says why) instead of being
# retried forever; the worker retries the others every interval.
MAX_ATTEMPTS = 10
# Rows taken per round: enough for a burst of webhooks, small enough for short transactions.
BATCH_SIZE = 100
MAX_ERROR_CHARS = 2_000


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """One stored event as handlers see it: `object` is Stripe's `data.object`."""

    row_id: int
    external_id: str
    event_type: str
    created: datetime
    payload: dict[str, Any]

    @property
    def object(self) -> dict[str, Any]:
        data = self.payload.get("data") or {}
        obj = data.get("object") if isinstance(data, dict) else None
        return obj if isinstance(obj, dict) else {}


# A handler's result is the row's outcome: "handled", "recorded" or "ignored".
Handler = Callable[[AsyncSession, InboundEvent], Awaitable[str]]


class HandlerRegistry:
    """Handlers per event type; `prefix.*` registers one for a family (invoice.*)."""

    def __init__(self) -> None:
        self._exact: dict[str, Handler] = {}
        self._prefix: dict[str, Handler] = {}

    def register(self, event_type: str, handler: Handler) -> None:
        if event_type.endswith(".*"):
            self._prefix[event_type[:-1]] = handler
        else:
            self._exact[event_type] = handler

    def handler_for(self, event_type: str) -> Handler | None:
        found = self._exact.get(event_type)
        if found is not None:
            return found
        matches = [p for p in self._prefix if event_type.startswith(p)]
        return self._prefix[max(matches, key=len)] if matches else None


def stripe_created(payload: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(int(payload["created"]), UTC)


async def store(
    engine: AsyncEngine,
    *,
    source: str,
    external_id: str,
    event_type: str,
    payload: dict[str, Any],
    created: datetime,
) -> bool:
    """Insert the event unless `(source, external_id)` is stored already; True if it was new.
    One statement, so two deliveries of one event racing each other store it once."""
    values = {
        "source": source,
        "external_id": external_id,
        "event_type": event_type,
        "payload": payload,
        "event_created": created,
        "received_at": utcnow(),
        "attempts": 0,
    }
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(INBOX).values(values).on_conflict_do_nothing(index_elements=["source", "external_id"])
    )
    async with engine.begin() as conn:
        result = await conn.execute(stmt)
    return bool(result.rowcount)


# One processing round at a time per engine in this process: SQLite has one writer anyway, and
# on PostgreSQL replicas are kept apart by row locks (SKIP LOCKED) instead.
_LOCKS: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()


def _lock(engine: AsyncEngine) -> asyncio.Lock:
    lock = _LOCKS.get(engine)
    if lock is None:
        lock = _LOCKS[engine] = asyncio.Lock()
    return lock


async def process_pending(
    engine: AsyncEngine,
    registry: HandlerRegistry,
    *,
    source: str = STRIPE,
    limit: int = BATCH_SIZE,
    max_attempts: int = MAX_ATTEMPTS,
) -> int:
    """Process unprocessed rows of `source`, oldest `event_created` first; returns how many
    were processed. A failing row is counted and left for the next round."""
    async with _lock(engine):
        ids_stmt = (
            select(INBOX.c.id)
            .where(INBOX.c.source == source, INBOX.c.processed_at.is_(None), INBOX.c.attempts < max_attempts)
            .order_by(INBOX.c.event_created, INBOX.c.id)
            .limit(limit)
        )
        async with engine.connect() as conn:
            ids: list[int] = [int(r) for r in (await conn.execute(ids_stmt)).scalars()]
        db = session_factory(engine)
        done = 0
        for row_id in ids:
            if await _process_one(engine, db, registry, row_id):
                done += 1
        return done


async def _process_one(engine: AsyncEngine, db: Any, registry: HandlerRegistry, row_id: int) -> bool:
    try:
        async with db() as session:
            stmt = select(InboxEvent).where(
                col(InboxEvent.id) == row_id, col(InboxEvent.processed_at).is_(None)
            )
            if engine.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            row = (await session.exec(stmt)).first()
            if row is None:
                return False  # processed meanwhile, or another replica holds it
            event = InboundEvent(row_id, row.external_id, row.event_type, row.event_created, row.payload)
            handler = registry.handler_for(row.event_type)
            outcome = "ignored" if handler is None else await handler(session, event)
            row.processed_at = utcnow()
            row.outcome = outcome
            row.attempts += 1
            row.last_error = None
            session.add(row)
            await session.commit()
            log.info("inbox %s %s: %s", row.event_type, row.external_id, outcome)
            return True
    except Exception as exc:
        log.exception("inbox row %d failed", row_id)
        detail = "".join(traceback.format_exception_only(exc)).strip()[:MAX_ERROR_CHARS]
        async with engine.begin() as conn:
            await conn.execute(
                update(INBOX)
                .where(INBOX.c.id == row_id)
                .values(attempts=INBOX.c.attempts + 1, last_error=detail)
            )
        return False


async def purge_processed(engine: AsyncEngine, *, source: str, before: datetime) -> int:
    """Forget processed rows received before `before`. Kept long past Stripe's redelivery
    window (3 days), so a late redelivery is still recognised as a duplicate."""
    async with engine.begin() as conn:
        result = await conn.execute(
            delete(INBOX).where(
                INBOX.c.source == source, INBOX.c.processed_at.is_not(None), INBOX.c.received_at < before
            )
        )
    return int(result.rowcount or 0)
