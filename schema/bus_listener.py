"""The one Redis pub/sub connection of a process: subscribes to the channels wanted, hands each
message to its channel's handler, notices a dead peer, and reconnects with capped backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# Reconnect backoff: quick first retry, capped so a restarted Redis is back in use within
# about two seconds.
RECONNECT_MIN_S = 0.05
RECONNECT_MAX_S = 2.0
# An idle connection is pinged this often and given up after two silent intervals (a
# half-open TCP connection never errors by itself).
KEEPALIVE_S = 5.0

Handler = Callable[[bytes], None]


class PubSubListener:
    """Subscribed to `handlers`' channels (more may be added with `listen`) while Redis answers.

    `on_subscribed(channel)` runs when Redis confirms a channel (after every reconnect too);
    `on_lost()` when the connection is gone. Handlers run on the listener's task: they must not
    block (spawn a task for anything that waits).
    """

    def __init__(
        self,
        pool: ConnectionPool,
        where: str,
        handlers: dict[bytes, Handler],
        *,
        on_subscribed: Callable[[bytes], None],
        on_lost: Callable[[], None],
    ) -> None:
        self._pool = pool
        self._where = where
        self._handlers = dict(handlers)
        self._on_subscribed = on_subscribed
        self._on_lost = on_lost
        self._conn: AbstractConnection | None = None
        self._last_heard = 0.0
        self._sending: set[asyncio.Task[None]] = set()

    def listen(self, channel: bytes, handler: Handler) -> None:
        """Add a channel, joined at once when connected and on every reconnect."""
        if channel in self._handlers:
            return
        self._handlers[channel] = handler
        if self._conn is not None:
            task = asyncio.create_task(self._send(self._conn, "SUBSCRIBE", channel))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def run(self) -> None:
        delay = RECONNECT_MIN_S
        lost = False
        while True:
            conn = self._pool.make_connection()
            keepalive: asyncio.Task[None] | None = None
            try:
                await conn.connect()
                self._conn = conn
                await conn.send_command("SUBSCRIBE", *self._handlers, check_health=False)
                self._last_heard = asyncio.get_running_loop().time()
                keepalive = asyncio.create_task(self._keepalive(conn))
                if lost:
                    log.info("Redis at %s is back", self._where)
                lost = False
                delay = RECONNECT_MIN_S
                await self._read(conn)
            except (RedisError, OSError) as exc:
                if not lost:
                    log.warning("Redis at %s unreachable (%s); reconnecting", self._where, exc)
                lost = True
            finally:
                self._conn = None
                if keepalive is not None:
                    keepalive.cancel()
                self._on_lost()
                await conn.disconnect(nowait=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _read(self, conn: AbstractConnection) -> None:
        loop = asyncio.get_running_loop()
        handlers = self._handlers
        while True:
            message = await conn.read_response()
            self._last_heard = loop.time()
            try:
                kind = message[0]
                if kind == b"message":
                    handler = handlers.get(message[1])
                    if handler is not None:
                        handler(message[2])
                elif kind == b"subscribe":
                    self._on_subscribed(message[1])
            except Exception:
                # One bad message (another version's format, say) must not stop the listener.
                log.exception("bus message not handled")

    async def _send(self, conn: AbstractConnection, *args: str | bytes) -> None:
        if conn.is_connected:
            with contextlib.suppress(RedisError, OSError):
                await conn.send_command(*args, check_health=False)

    async def _keepalive(self, conn: AbstractConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            if loop.time() - self._last_heard > 2 * KEEPALIVE_S:
                log.warning("Redis at %s stopped answering; reconnecting", self._where)
                await conn.disconnect(nowait=True)
                return
            await self._send(conn, "PING")
