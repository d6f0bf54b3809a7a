"""The outbox relay: unpublished outbox rows, in id order, to the durable channel.

With Redis the channel is a stream (`XADD <stream> MAXLEN ~ n`); rows are marked published in
the same database transaction that selected them, after the XADD. A crash between the two sends
those rows again on the next pass: consumers are idempotent (the processed-event ledger), so a
duplicate entry changes nothing. On PostgreSQL the rows are selected `FOR UPDATE SKIP LOCKED`,
so gateway replicas relay side by side without sending a row twice in normal operation.

With the in-process bus the channel hands each event straight to this process's processor —
the same handlers, no Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from api.worker.loop import BackgroundLoop
from api.worker.processor import Processor, is_transient
from schema.outbox import OutboxMessage, fetch_pending, mark_published, purge_published
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

# Rows per relay pass: one pipeline round trip and one UPDATE for all of them.
RELAY_BATCH = 500
PURGE_INTERVAL_S = 3_600.0
# Dead letters an in-process worker keeps for inspection (they are logged in full as well).
IN_PROCESS_DEAD_LETTER_LIMIT = 1_000


class DurableChannel(Protocol):
    async def send(self, messages: Sequence[OutboxMessage]) -> None:
        """Hand over `messages` in order; return only once they are safely delivered."""


class RedisStreamChannel:
    def __init__(self, redis: Redis, *, stream: str, maxlen: int) -> None:
        self._redis = redis
        self.stream = stream
        self._maxlen = maxlen

    async def send(self, messages: Sequence[OutboxMessage]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.xadd(self.stream, message.to_fields(), maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
            await pipe.execute()


class InProcessChannel:
    """Delivers to a processor in this process, retrying a failing handler a few times.

    Infrastructure failures propagate, so the relay keeps the rows unpublished and retries the
    batch later; a handler that keeps failing is dead-lettered (logged, kept in memory) so it
    never blocks the events behind it.
    """

    def __init__(self, processor: Processor, *, max_attempts: int = 5, retry_delay_s: float = 0.2) -> None:
        self.processor = processor
        self._max_attempts = max_attempts
        self._retry_delay_s = retry_delay_s
        self.dead_letters: deque[tuple[OutboxMessage, str]] = deque(maxlen=IN_PROCESS_DEAD_LETTER_LIMIT)

    async def send(self, messages: Sequence[OutboxMessage]) -> None:
        for message in messages:
            await self._deliver(message)

    async def _deliver(self, message: OutboxMessage) -> None:
        for attempt in range(1, self._max_attempts + 1):
            try:
                await self.processor.process(message)
                return
            except Exception as exc:
                if is_transient(exc):
                    raise
                if attempt == self._max_attempts:
                    log.error(
                        "DEAD LETTER: event %d (%s) failed %d times and is given up "
                        "(its outbox row is kept until the retention purge): %r",
                        message.id,
                        message.event_type,
                        attempt,
                        exc,
                        exc_info=exc,
                    )
                    self.dead_letters.append((message, repr(exc)))
                    return
                log.warning(
                    "event %d (%s) failed (attempt %d of %d): %r",
                    message.id,
                    message.event_type,
                    attempt,
                    self._max_attempts,
                    exc,
                )
                await asyncio.sleep(self._retry_delay_s * attempt)


class OutboxRelay(BackgroundLoop):
    name = "chargenet-outbox-relay"

    def __init__(
        self,
        engine: AsyncEngine,
        channel: DurableChannel,
        *,
        batch_size: int = RELAY_BATCH,
        poll_s: float = 0.1,
        retention_s: float = 86_400.0,
        purge_interval_s: float = PURGE_INTERVAL_S,
    ) -> None:
        super().__init__()
        self._engine = engine
        self.channel = channel
        self.batch_size = batch_size
        self._poll_s = poll_s
        self._retention_s = retention_s
        self._purge_interval_s = purge_interval_s
        self._next_purge = 0.0
        self.relayed = 0

    async def relay_once(self) -> int:
        """Move one batch; returns how many rows were published."""
        async with self._engine.begin() as conn:
            messages = await fetch_pending(conn, self.batch_size)
            if not messages:
                return 0
            await self.channel.send(messages)
            await mark_published(conn, [m.id for m in messages], utcnow())
        self.relayed += len(messages)
        return len(messages)

    async def purge(self) -> int:
        async with self._engine.begin() as conn:
            removed = await purge_published(conn, utcnow() - timedelta(seconds=self._retention_s))
        if removed:
            log.info("purged %d published outbox rows", removed)
        return removed

    async def _step(self) -> bool:
        now = asyncio.get_running_loop().time()
        if now >= self._next_purge:
            self._next_purge = now + self._purge_interval_s
            await self.purge()
        return await self.relay_once() >= self.batch_size

    def _idle_s(self) -> float:
        return self._poll_s
