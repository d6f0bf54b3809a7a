"""The worker: consumes the durable stream in a consumer group, and runs scheduled jobs.

Delivery guarantees (Redis Streams):
- every replica reads the group with XREADGROUP; an entry is XACKed only after its handlers
  committed together with the processed-event record, so it is processed at least once and —
  thanks to that record — exactly once in effect;
- an entry left pending (its worker died, or its handler failed) for `claim_idle_s` is taken
  over with XAUTOCLAIM by any replica, the failing one included, and processed again;
- a handler that still fails on its `max_attempts`-th delivery sends the entry to the
  dead-letter stream `<stream>:dead` (with the error) and it is acknowledged: a poison message
  never blocks the group. Database or network failures are not the handler's fault: such an
  entry stays pending and is retried, never dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from api.worker.loop import BackgroundLoop
from api.worker.processor import Processor, is_transient
from schema.outbox import OutboxMessage

log = logging.getLogger(__name__)

# Entries read or claimed per round trip.
READ_BATCH = 50
# How long one XREADGROUP waits for new entries; also bounds how long stop() waits.
BLOCK_S = 1.0
# Error text kept with a dead letter.
DEAD_LETTER_ERROR_CHARS = 500

Entry = tuple[bytes, dict[bytes, bytes]]


# A consumer idle this long with nothing pending has left (its worker was replaced); every
# restart adds a name (host-pid), and XINFO CONSUMERS would otherwise grow without bound.
FORGET_CONSUMER_MS = 3_600_000
FORGET_EVERY_S = 600.0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def dead_letter_stream(stream: str) -> str:
    return f"{stream}:dead"


class StreamWorker(BackgroundLoop):
    name = "chargenet-stream-worker"

    def __init__(
        self,
        redis: Redis,
        processor: Processor,
        *,
        stream: str,
        group: str,
        consumer: str,
        claim_idle_s: float = 30.0,
        max_attempts: int = 5,
        block_s: float = BLOCK_S,
        batch_size: int = READ_BATCH,
    ) -> None:
        super().__init__()
        self._redis = redis
        self.processor = processor
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.dead_letters = dead_letter_stream(stream)
        self._claim_idle_ms = max(1, round(claim_idle_s * 1000))
        # Claim passes run often enough that a dead worker's entries wait about claim_idle_s.
        self._claim_every_s = max(0.1, claim_idle_s / 2)
        self._max_attempts = max_attempts
        self._block_ms = max(1, round(block_s * 1000))
        self._batch_size = batch_size
        self._next_claim = 0.0
        self._next_forget = 0.0
        self._group_ready = False
        self.acked = 0
        self.dead_lettered = 0

    async def ensure_group(self) -> None:
        """Create the stream and group if missing (first start, or Redis lost its data)."""
        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def read_once(self, *, block: bool = True) -> int:
        """Read new entries for this consumer and process them; returns how many were read."""
        reply: Any = await self._redis.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=self._batch_size,
            block=self._block_ms if block else None,
        )
        entries: list[Entry] = [e for _stream, items in reply or () for e in items]
        for entry_id, fields in entries:
            await self._handle(entry_id, fields, deliveries=1)
        return len(entries)

    async def claim_once(self) -> int:
        """Take over entries pending longer than the idle threshold; returns how many."""
        claimed = 0
        start: bytes | str = "0-0"
        while True:
            reply: Any = await self._redis.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=self._claim_idle_ms,
                start_id=start,
                count=self._batch_size,
            )
            start, entries = reply[0], reply[1]
            for entry_id, fields in entries:
                if fields is None:  # trimmed from the stream meanwhile
                    continue
                claimed += 1
                await self._handle(entry_id, fields, deliveries=await self._deliveries(entry_id))
            if start in (b"0-0", "0-0"):
                return claimed

    async def forget_departed(self) -> list[str]:
        """Remove consumers that left (a name per host and pid, so every restart leaves one)
        once they hold nothing and were idle longer than `FORGET_CONSUMER_MS`; returns them.

        Nothing is lost: a consumer with pending entries is kept until they are claimed.
        """
        departed: list[str] = []
        for info in await self._redis.xinfo_consumers(self.stream, self.group):
            name = _text(info["name"])
            if name != self.consumer and int(info["pending"]) == 0 and int(info["idle"]) > FORGET_CONSUMER_MS:
                # DELCONSUMER of one with pending entries would drop them; it has none now,
                # and a late XREADGROUP under the same name would simply recreate it.
                await self._redis.xgroup_delconsumer(self.stream, self.group, name)
                departed.append(name)
        if departed:
            log.info("forgot %d departed consumers of %s: %s", len(departed), self.group, ", ".join(departed))
        return departed

    async def _deliveries(self, entry_id: bytes) -> int:
        pending = await self._redis.xpending_range(
            self.stream, self.group, min=entry_id, max=entry_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else 1

    async def _handle(self, entry_id: bytes, fields: dict[bytes, bytes], *, deliveries: int) -> None:
        try:
            message = OutboxMessage.from_fields(fields)
        except (KeyError, ValueError) as exc:
            await self._dead_letter(entry_id, fields, deliveries, f"malformed entry: {exc!r}")
            return
        try:
            await self.processor.process(message)
        except Exception as exc:
            if is_transient(exc):
                # Left pending: claimed again once the database is back.
                raise
            if deliveries >= self._max_attempts:
                await self._dead_letter(entry_id, fields, deliveries, repr(exc), exc=exc)
            else:
                log.warning(
                    "event %d (%s) failed on delivery %d of %d; retried after %.1f s: %r",
                    message.id,
                    message.event_type,
                    deliveries,
                    self._max_attempts,
                    self._claim_idle_ms / 1000,
                    exc,
                )
            return
        await self._redis.xack(self.stream, self.group, entry_id)
        self.acked += 1

    async def _dead_letter(
        self,
        entry_id: bytes,
        fields: dict[bytes, bytes],
        deliveries: int,
        error: str,
        *,
        exc: BaseException | None = None,
    ) -> None:
        # The payload carries id tags: the log names the event, the dead-letter entry keeps it.
        log.error(
            "DEAD LETTER: event %s (%s), stream entry %s of %s, failed %d deliveries; moved to %s: %s",
            fields.get(b"id", b"?").decode(errors="replace"),
            fields.get(b"type", b"?").decode(errors="replace"),
            entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
            self.stream,
            deliveries,
            self.dead_letters,
            error,
            exc_info=exc,
        )
        record: dict[Any, Any] = {
            **fields,
            "entry_id": entry_id,
            "deliveries": deliveries,
            "error": error[:DEAD_LETTER_ERROR_CHARS],
            "consumer": self.consumer,
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.dead_letters, record)
            pipe.xack(self.stream, self.group, entry_id)
            await pipe.execute()
        self.dead_lettered += 1

    async def _step(self) -> bool:
        try:
            if not self._group_ready:
                await self.ensure_group()
            now = asyncio.get_running_loop().time()
            if now >= self._next_claim:
                self._next_claim = now + self._claim_every_s
                await self.claim_once()
            if now >= self._next_forget:
                self._next_forget = now + FORGET_EVERY_S
                await self.forget_departed()
            await self.read_once()
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                self._group_ready = False
            raise
        return True


# -- scheduled jobs ---------------------------------------------------------------------------


class JobLock(Protocol):
    async def acquire(self, name: str, ttl_s: float) -> bool:
        """True if this replica runs job `name` now; held `ttl_s` (not released early)."""


class LocalJobLock:
    """One process (in-process bus): every due run is ours."""

    async def acquire(self, name: str, ttl_s: float) -> bool:
        return True


class RedisJobLock:
    """`SET key token NX PX ttl`: across replicas, each job runs at most once per interval.

    The lock is not released after the run — its expiry is the schedule — so a replica that
    starts later in the interval does not run the job again."""

    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._token = secrets.token_hex(8)

    async def acquire(self, name: str, ttl_s: float) -> bool:
        key = f"{self._prefix}:lock:{name}"
        return bool(await self._redis.set(key, self._token, nx=True, px=max(1, round(ttl_s * 1000))))


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    name: str
    interval_s: float
    run: Callable[[], Awaitable[object]]


class Scheduler(BackgroundLoop):
    """Runs each job when due (first at start), if the lock lets this replica run it."""

    name = "chargenet-scheduler"

    def __init__(self, jobs: Sequence[ScheduledJob], lock: JobLock) -> None:
        super().__init__()
        self.jobs = list(jobs)
        self._lock = lock
        self._due: dict[str, float] = {}
        self.runs: dict[str, int] = {job.name: 0 for job in self.jobs}

    async def run_due(self) -> list[str]:
        now = asyncio.get_running_loop().time()
        ran: list[str] = []
        for job in self.jobs:
            if now < self._due.get(job.name, 0.0):
                continue
            self._due[job.name] = now + job.interval_s
            if not await self._lock.acquire(job.name, job.interval_s):
                continue
            try:
                await job.run()
            except Exception as exc:
                if is_transient(exc):
                    log.warning("scheduled job %s failed on the database or network: %r", job.name, exc)
                else:
                    log.exception("scheduled job %s failed", job.name)
                continue
            self.runs[job.name] += 1
            ran.append(job.name)
        return ran

    async def _step(self) -> bool:
        await self.run_due()
        return False

    def _idle_s(self) -> float:
        if not self._due:
            return 1.0
        now = asyncio.get_running_loop().time()
        return max(0.05, min(self._due.values()) - now)
