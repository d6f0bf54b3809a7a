"""The bus: events out to every interested subscriber, commands in to the owning gateway.

Callers depend on the `Bus` protocol only. `InProcessBus` serves the single-process default;
a networked implementation replaces it without touching publishers or subscribers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol

from schema.commands import Command, CommandReply
from schema.errors import CommandTimeout, StationOffline, SubscriptionLagged
from schema.events import DomainEvent

log = logging.getLogger(__name__)

# A subscriber this far behind has lost track; it is closed so its client resubscribes and
# gets a fresh snapshot instead of a silently stale view.
SUBSCRIPTION_QUEUE_LIMIT = 1_000

CommandExecutor = Callable[[Command, float], Awaitable[CommandReply]]

# How long past its own timeout a command may take before the caller stops waiting: the
# executor answers within `timeout`, this covers the hop back.
COMMAND_REPLY_GRACE_S = 1.0


class BusResumed:
    """Delivered through a subscription when the bus reconnected after an outage: events may
    have been missed meanwhile, so the subscriber re-reads its state and carries on.

    Not an `Event`: it is never published, only handed to local subscribers. The in-process
    bus never loses events and never delivers it.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "BUS_RESUMED"


BUS_RESUMED = BusResumed()


class Subscription:
    """An async iterator of events for a set of topics; close it (or use `async with`).

    Besides events it may yield `BUS_RESUMED` (see `BusResumed`).
    """

    __slots__ = ("_bus", "_closed", "_lagged", "_queue", "topics")

    def __init__(self, bus: InProcessBus, topics: tuple[str, ...]) -> None:
        self._bus = bus
        self.topics = topics
        self._queue: asyncio.Queue[DomainEvent | BusResumed | None] = asyncio.Queue(SUBSCRIPTION_QUEUE_LIMIT)
        self._closed = False
        self._lagged = False

    def _offer(self, event: DomainEvent | BusResumed) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._lagged = True
            self._bus._remove(self)
            self._wake()

    def _wake(self) -> None:
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            pass

    def __aiter__(self) -> AsyncIterator[DomainEvent | BusResumed]:
        return self

    async def __anext__(self) -> DomainEvent | BusResumed:
        if self._lagged:
            raise SubscriptionLagged("subscriber fell behind; resubscribe for a fresh snapshot")
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            if self._lagged:
                raise SubscriptionLagged("subscriber fell behind; resubscribe for a fresh snapshot")
            raise StopAsyncIteration
        return item

    async def next(self, timeout: float) -> DomainEvent | BusResumed:
        return await asyncio.wait_for(self.__anext__(), timeout)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bus._remove(self)
            self._wake()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Bus(Protocol):
    async def start(self) -> None:
        """Connect; called once before use."""

    async def publish(self, events: Sequence[DomainEvent]) -> None: ...

    def subscribe(self, *topics: str) -> Subscription: ...

    async def request(self, charge_point_id: str, command: Command, *, timeout: float) -> CommandReply: ...

    def serve_station(self, charge_point_id: str, executor: CommandExecutor) -> None: ...

    def release_station(self, charge_point_id: str, executor: CommandExecutor) -> None: ...

    def end_subscriptions(self) -> None:
        """End every open subscription (their iterators stop) and every later one at once:
        a stopping API completes its clients' subscriptions instead of dropping them."""

    async def aclose(self) -> None:
        """Release held stations, end subscriptions, close connections."""


async def run_executor(
    executor: CommandExecutor, charge_point_id: str, command: Command, timeout: float
) -> CommandReply:
    """Run a station's executor, bounded: an executor that never answers is a timeout."""
    try:
        return await asyncio.wait_for(executor(command, timeout), timeout + COMMAND_REPLY_GRACE_S)
    except TimeoutError as exc:
        raise CommandTimeout(f"{command.name} to {charge_point_id} timed out") from exc


class InProcessBus:
    """Everything in one event loop: topics map to subscriber queues, stations to executors."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}
        self._executors: dict[str, CommandExecutor] = {}
        self._ended = False

    async def start(self) -> None:
        pass

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        self.deliver(events)

    def deliver(self, events: Sequence[DomainEvent]) -> None:
        """Hand events to this process's subscribers, synchronously."""
        subs = self._subs
        for event in events:
            topics = event.topics()
            if len(topics) == 1:
                for sub in tuple(subs.get(topics[0], ())):
                    sub._offer(event)
                continue
            seen: set[Subscription] = set()
            for topic in topics:
                for sub in tuple(subs.get(topic, ())):
                    if sub not in seen:
                        seen.add(sub)
                        sub._offer(event)

    def subscribe(self, *topics: str) -> Subscription:
        sub = Subscription(self, topics)
        if self._ended:
            sub.close()
            return sub
        for topic in topics:
            self._subs.setdefault(topic, set()).add(sub)
        return sub

    def has_subscribers(self, topics: Sequence[str]) -> bool:
        subs = self._subs
        return any(topic in subs for topic in topics)

    def resume_all(self) -> None:
        """Give every open subscription `BUS_RESUMED` (for a networked bus built on this one)."""
        for sub in {s for group in self._subs.values() for s in group}:
            sub._offer(BUS_RESUMED)

    def end_subscriptions(self) -> None:
        self._ended = True
        for sub in {s for group in self._subs.values() for s in group}:
            sub.close()

    async def aclose(self) -> None:
        self.end_subscriptions()

    def _remove(self, sub: Subscription) -> None:
        for topic in sub.topics:
            group = self._subs.get(topic)
            if group is not None:
                group.discard(sub)
                if not group:
                    del self._subs[topic]

    def subscriber_count(self) -> int:
        return len({s for group in self._subs.values() for s in group})

    def serve_station(self, charge_point_id: str, executor: CommandExecutor) -> None:
        self._executors[charge_point_id] = executor

    def release_station(self, charge_point_id: str, executor: CommandExecutor) -> None:
        # A reconnect may already have registered a newer executor: only drop our own.
        if self._executors.get(charge_point_id) is executor:
            del self._executors[charge_point_id]

    async def request(self, charge_point_id: str, command: Command, *, timeout: float) -> CommandReply:
        executor = self._executors.get(charge_point_id)
        if executor is None:
            raise StationOffline(f"station {charge_point_id} is not connected")
        return await run_executor(executor, charge_point_id, command, timeout)
