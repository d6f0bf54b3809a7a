"""The networked bus on Redis: many gateway, API and worker processes share events and commands.

- Events: each published batch is one PUBLISH of one JSON message on `{prefix}:events`. Every
  process holds ONE pub/sub connection; its listener decodes a batch once and hands the events
  to local subscribers through an `InProcessBus`, with the same topic semantics. Live events
  are best effort: publishing never waits for Redis (a background task sends, and drops with a
  warning when Redis is slow or down); what money depends on travels through the outbox.
- Commands: a gateway records which stations it holds (`bus_routing.StationOwnership`); a
  request looks up the owner and is published on the owner's command channel, the reply comes
  back on the caller's reply channel, both on the same single pub/sub connection.
- Outages: the listener reconnects with capped backoff, re-registers held stations and gives
  every open subscription `BUS_RESUMED`, so subscribers re-read their snapshot. Requests fail
  at once with `BusUnavailable` while Redis is unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from schema import bus_routing as routing
from schema.bus import Bus, CommandExecutor, InProcessBus, Subscription, run_executor
from schema.bus_listener import PubSubListener
from schema.commands import Command, CommandReply, command_from_dict
from schema.errors import BusUnavailable, ChargeNetError, CommandFailed, CommandTimeout, StationOffline
from schema.events import DomainEvent, event_from_dict

log = logging.getLogger(__name__)

# Connecting to a reachable Redis takes milliseconds; beyond this it is down for our purposes.
CONNECT_TIMEOUT_S = 0.5
# The owner lookup and the publish of a command: a caller learns "bus unavailable" this fast.
LOOKUP_TIMEOUT_S = 0.5
# Connections for lookups, publishes and ownership renewals of one process: each is busy for
# a fraction of a millisecond, so this many serve thousands of commands a second.
COMMAND_POOL_SIZE = 32
# A batch of live events not sent within this is dropped (subscribers resnapshot on resume).
PUBLISH_TIMEOUT_S = 1.0
# Batches waiting for Redis beyond this are dropped: memory stays bounded during an outage.
MAX_UNSENT_BATCHES = 10_000
# Batches sent in one pipeline round trip when the publisher has fallen behind.
MAX_PIPELINE_BATCHES = 500
# How long `start()` waits for the first connection before carrying on in the background.
START_WAIT_S = 3.0
# How long `aclose()` gives queued events and station releases to reach Redis.
CLOSE_FLUSH_S = 1.0


def bus_from_url(url: str, **options: Any) -> Bus:
    """ "memory" → the in-process bus; "redis://…", "rediss://…" or "unix://…" → `RedisBus`."""
    if url == "memory":
        return InProcessBus()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBus(url, **options)
    raise ValueError("BUS_URL must be 'memory' or a redis:// URL")


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class RedisBus:
    """A drop-in `Bus` over Redis pub/sub; see the module docstring for the guarantees."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "chargenet",
        node_id: str | None = None,
        ownership_ttl_s: float = routing.OWNERSHIP_TTL_S,
    ) -> None:
        self.node_id = node_id or routing.make_node_id()
        self._keys = routing.BusKeys(prefix)
        self._command_channel = self._keys.commands(self.node_id).encode()
        self._reply_channel = self._keys.replies(self.node_id).encode()
        self._events_channel = self._keys.events.encode()
        # Commands fail fast: one quick reconnect for a connection Redis dropped, no backoff.
        # A bulk command has hundreds of lookups in flight; a plain pool refuses the one past
        # its size at once ("too many connections"), so callers queue for a connection instead.
        self._redis = Redis(
            connection_pool=BlockingConnectionPool.from_url(
                url,
                max_connections=COMMAND_POOL_SIZE,
                timeout=LOOKUP_TIMEOUT_S,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=PUBLISH_TIMEOUT_S,
                retry=Retry(NoBackoff(), 1),
            )
        )
        # The listener's connection blocks on reads indefinitely (its keepalive notices a dead
        # peer) and reconnects by itself. RESP2: pub/sub messages arrive as plain replies.
        self._listen_pool = ConnectionPool.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=None,
            protocol=2,
            retry=Retry(NoBackoff(), 0),
        )
        self._local = InProcessBus()
        self._executors: dict[str, CommandExecutor] = {}
        self._ownership = routing.StationOwnership(self._redis, self._keys, self.node_id, ownership_ttl_s)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_request = 0
        self._unsent: deque[str] = deque()
        self._unsent_ready = asyncio.Event()
        self._all_sent = asyncio.Event()
        self._all_sent.set()
        self._dropped = 0
        self._dropping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._serving: set[asyncio.Task[None]] = set()
        self._listener = PubSubListener(
            self._listen_pool,
            self._where(),
            {self._command_channel: self._on_command, self._reply_channel: self._on_reply},
            on_subscribed=self._on_subscribed,
            on_lost=self._on_lost,
        )
        self._confirmed: set[bytes] = set()
        self._up = asyncio.Event()
        self._events_wanted = False
        self._started = False
        self._closed = False

    # --- lifecycle ---

    @property
    def connected(self) -> bool:
        """Subscribed to this node's channels: commands can be routed and answered."""
        return self._up.is_set()

    def _where(self) -> str:
        kw = self._listen_pool.connection_kwargs
        return str(kw.get("path") or f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}")

    def _ensure_started(self) -> None:
        if self._started or self._closed:
            return
        self._started = True
        self._tasks = [
            asyncio.create_task(self._listener.run(), name="bus-listener"),
            asyncio.create_task(self._publish_forever(), name="bus-publisher"),
            asyncio.create_task(self._ownership.run(), name="bus-ownership"),
        ]

    async def start(self) -> None:
        self._ensure_started()
        try:
            async with asyncio.timeout(START_WAIT_S):
                await self._up.wait()
        except TimeoutError:
            log.warning("Redis at %s is not reachable yet; retrying in the background", self._where())

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._local.end_subscriptions()
        if self._started:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_FLUSH_S):
                    await self._all_sent.wait()
        for task in (*self._tasks, *self._serving):
            task.cancel()
        for task in (*self._tasks, *self._serving):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._started:
            try:
                async with asyncio.timeout(CLOSE_FLUSH_S):
                    await self._ownership.release_all()
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("stations not released (%s); they expire by themselves", exc)
        self._fail_pending(BusUnavailable("the bus is closing"))
        await self._redis.aclose()
        await self._listen_pool.disconnect()

    def end_subscriptions(self) -> None:
        self._local.end_subscriptions()

    # --- events ---

    def subscribe(self, *topics: str) -> Subscription:
        sub = self._local.subscribe(*topics)
        if not self._events_wanted and not self._closed:
            # The events channel is joined on first use: a gateway never decodes events.
            self._events_wanted = True
            self._ensure_started()
            self._listener.listen(self._events_channel, self._on_events)
        return sub

    def subscriber_count(self) -> int:
        return self._local.subscriber_count()

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        if not events or self._closed:
            return
        if len(self._unsent) >= MAX_UNSENT_BATCHES:
            self._drop(1, "too many batches waiting for Redis")
            return
        # Topics ride along so a listener decodes only the events someone here subscribed to.
        self._unsent.append(
            json.dumps(
                [[e.topics(), e.to_dict()] for e in events], default=_json_default, separators=(",", ":")
            )
        )
        self._ensure_started()
        self._all_sent.clear()
        self._unsent_ready.set()

    async def _publish_forever(self) -> None:
        channel = self._events_channel
        while True:
            await self._unsent_ready.wait()
            self._unsent_ready.clear()
            while self._unsent:
                batch = [self._unsent.popleft() for _ in range(min(len(self._unsent), MAX_PIPELINE_BATCHES))]
                try:
                    async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                        if len(batch) == 1:
                            await self._redis.publish(channel, batch[0])
                        else:
                            pipe = self._redis.pipeline(transaction=False)
                            for payload in batch:
                                pipe.publish(channel, payload)
                            await pipe.execute()
                    if self._dropping:
                        self._dropping = False
                        log.info("live events flow again (%d batches dropped so far)", self._dropped)
                except (RedisError, OSError, TimeoutError) as exc:
                    # What waited behind a failure is stale by the time Redis answers again.
                    dropped = len(batch) + len(self._unsent)
                    self._unsent.clear()
                    self._drop(dropped, str(exc) or exc.__class__.__name__)
            self._all_sent.set()

    def _drop(self, batches: int, why: str) -> None:
        self._dropped += batches
        if not self._dropping:
            self._dropping = True
            log.warning("live events not delivered (%s); dropping until Redis answers", why)

    def _on_events(self, data: bytes) -> None:
        try:
            items = json.loads(data)
        except ValueError:
            log.warning("undecodable event batch on the bus")
            return
        local = self._local
        events: list[DomainEvent] = []
        for topics, body in items:
            if local.has_subscribers(topics):
                try:
                    events.append(event_from_dict(body))
                except (KeyError, TypeError, ValueError):
                    log.warning("undecodable %s event on the bus", body.get("kind"))
        if events:
            local.deliver(events)

    # --- commands ---

    def serve_station(self, charge_point_id: str, executor: CommandExecutor) -> None:
        self._executors[charge_point_id] = executor
        if not self._closed:
            self._ensure_started()
            self._ownership.claim(charge_point_id)

    def release_station(self, charge_point_id: str, executor: CommandExecutor) -> None:
        # A reconnect to this gateway may already have registered a newer executor: keep it.
        if self._executors.get(charge_point_id) is executor:
            del self._executors[charge_point_id]
            if not self._closed:
                self._ownership.release(charge_point_id)

    async def settled(self) -> None:
        """Wait until every station claim and release made here is written to Redis."""
        await self._ownership.written.wait()

    async def owner_of(self, charge_point_id: str) -> str | None:
        """The node holding the station, per Redis."""
        return await self._ownership.owner(charge_point_id)

    async def request(self, charge_point_id: str, command: Command, *, timeout: float) -> CommandReply:
        if self._closed:
            raise BusUnavailable("the bus is closed")
        self._ensure_started()
        offline = StationOffline(f"station {charge_point_id} is not connected")
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT_S):
                owner = await self._ownership.owner(charge_point_id)
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._unavailable() from exc
        if owner is None:
            raise offline
        if owner == self.node_id:
            executor = self._executors.get(charge_point_id)
            if executor is None:
                raise offline
            return await run_executor(executor, charge_point_id, command, timeout)
        if not self._up.is_set():
            raise self._unavailable()  # the reply could not reach us
        self._next_request += 1
        request_id = self._next_request
        reply = asyncio.get_running_loop().create_future()
        self._pending[request_id] = reply
        try:
            payload = routing.encode_request(
                request_id, charge_point_id, command, reply_to=self.node_id, timeout=timeout
            )
            try:
                async with asyncio.timeout(LOOKUP_TIMEOUT_S):
                    receivers = await self._redis.publish(self._keys.commands(owner), payload)
            except (RedisError, OSError, TimeoutError) as exc:
                raise self._unavailable() from exc
            if receivers == 0:
                raise offline  # its gateway is gone; the key expires soon
            try:
                async with asyncio.timeout(timeout + 2 * LOOKUP_TIMEOUT_S + 1.0):
                    body = await reply
            except TimeoutError as exc:
                raise CommandTimeout(f"{command.name} to {charge_point_id} timed out") from exc
            return routing.decode_reply(body)
        finally:
            self._pending.pop(request_id, None)

    def _unavailable(self) -> BusUnavailable:
        return BusUnavailable(f"the message bus (Redis at {self._where()}) is unreachable")

    def _fail_pending(self, error: ChargeNetError) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)

    def _on_reply(self, data: bytes) -> None:
        try:
            body = json.loads(data)
            future = self._pending.get(body["id"])
        except (ValueError, KeyError, TypeError):
            log.warning("undecodable command reply on the bus")
            return
        if future is not None and not future.done():
            future.set_result(body)

    async def _serve_request(self, data: bytes) -> None:
        try:
            request = json.loads(data)
            request_id, reply_to = request["id"], request["reply_to"]
        except (ValueError, KeyError, TypeError):
            log.warning("undecodable command on the bus")
            return
        cpid = request.get("cpid")
        try:
            executor = self._executors.get(cpid)
            if executor is None:
                raise StationOffline(f"station {cpid} is not connected")
            command = command_from_dict(request["command"])
            left = routing.time_left(request)
            if left <= 0:
                raise CommandTimeout(f"{command.name} to {cpid} arrived after its deadline")
            answer = routing.encode_reply(request_id, await run_executor(executor, cpid, command, left))
        except ChargeNetError as exc:
            answer = routing.encode_error(request_id, exc)
        except Exception:
            log.exception("command for %s failed on this gateway", cpid)
            error = CommandFailed("the gateway could not run the command", station_code="InternalError")
            answer = routing.encode_error(request_id, error)
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT_S):
                await self._redis.publish(self._keys.replies(reply_to), answer)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("reply to %s for %s not sent (%s)", reply_to, cpid, exc)

    # --- the one pub/sub connection ---

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    def _on_command(self, data: bytes) -> None:
        self._spawn(self._serve_request(data))

    def _on_subscribed(self, channel: bytes) -> None:
        self._confirmed.add(channel)
        if channel == self._events_channel:
            # Whatever was published before this point may have been missed.
            self._local.resume_all()
        elif {self._command_channel, self._reply_channel} <= self._confirmed and not self._up.is_set():
            self._up.set()
            self._ownership.resync()

    def _on_lost(self) -> None:
        self._confirmed.clear()
        self._up.clear()
        self._fail_pending(self._unavailable())
