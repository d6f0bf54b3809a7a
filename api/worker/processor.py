"""The exactly-once-in-effect core shared by every way durable events arrive.

A handler gets the event and a connection inside a transaction that also records the event as
processed for this consumer; both commit together or not at all. A redelivered event finds its
record and changes nothing; a handler that raises leaves no trace and the event is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.worker.repository import record_processed
from schema.bus import Bus
from schema.events import DomainEvent
from schema.outbox import OutboxMessage
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

# A handler takes the event type it is registered for (and narrows to it): Callable is
# contravariant, so a handler of one type is no handler of every DomainEvent to mypy.
Handler = Callable[[AsyncConnection, Any], Awaitable[None]]

# Live events the running handlers want published once their transaction has committed.
_after_commit: ContextVar[list[DomainEvent] | None] = ContextVar("after_commit", default=None)


def publish_after_commit(events: Sequence[DomainEvent]) -> None:
    """Queue live events (e.g. an incident opened) to be published when the handler's
    transaction commits, never before: a subscriber must not see what a rollback undoes.

    Outside a processor (a scheduled job) there is nothing to wait for: the caller publishes
    itself after its own commit, so this raises rather than silently dropping the events.
    """
    pending = _after_commit.get()
    if pending is None:
        raise RuntimeError("publish_after_commit called outside an event handler")
    pending.extend(events)


class HandlerRegistry:
    """Event type (`DomainEvent.kind`) → the handlers that run, in registration order, for it."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def register(self, event_type: type[DomainEvent] | str, handler: Handler) -> None:
        kind = event_type if isinstance(event_type, str) else event_type.kind
        self._handlers.setdefault(kind, []).append(handler)

    def handlers_for(self, event_type: str) -> tuple[Handler, ...]:
        return tuple(self._handlers.get(event_type, ()))

    def event_types(self) -> tuple[str, ...]:
        return tuple(self._handlers)


class Processor:
    def __init__(
        self, engine: AsyncEngine, registry: HandlerRegistry, *, consumer: str, bus: Bus | None = None
    ) -> None:
        self.engine = engine
        # Where handlers' live events go after commit (None: a process without a bus drops them).
        self.bus = bus
        self.registry = registry
        # The logical consumer (the worker group), shared by all its replicas.
        self.consumer = consumer
        self.processed = 0
        self.duplicates = 0

    async def process(self, message: OutboxMessage) -> bool:
        """Run the handlers of `message` once. False when there was nothing to do: no handler
        for its type, or this consumer already processed it. Raises what a handler raises."""
        handlers = self.registry.handlers_for(message.event_type)
        if not handlers:
            return False
        event = message.event()
        pending: list[DomainEvent] = []
        token = _after_commit.set(pending)
        try:
            async with self.engine.begin() as conn:
                # The ledger row first: on PostgreSQL a replica racing on the same event waits
                # here for this transaction and then finds it done.
                if not await record_processed(conn, self.consumer, message, utcnow()):
                    self.duplicates += 1
                    log.debug(
                        "event %d (%s) already processed by %s", message.id, message.event_type, self.consumer
                    )
                    return False
                for handler in handlers:
                    await handler(conn, event)
        finally:
            _after_commit.reset(token)
        self.processed += 1
        if pending and self.bus is not None:
            try:
                await self.bus.publish(pending)
            except Exception:  # the facts are committed; a live view missing them catches up on read
                log.exception("publishing %d live events after event %d failed", len(pending), message.id)
        return True


def is_transient(exc: BaseException) -> bool:
    """Infrastructure trouble (database or network unreachable, locked, restarting): the event
    is retried later and never dead-lettered for it — the handler itself did nothing wrong."""
    if isinstance(exc, OperationalError | InterfaceError | ConnectionError | TimeoutError | OSError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated
