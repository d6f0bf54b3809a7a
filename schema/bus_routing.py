"""Command routing for the Redis bus: who holds which station, and the wire format of a command
and its reply between the calling node and the owning gateway.

Ownership is a key per station naming the node that holds its socket, with an expiry that the
holder renews while connected; a node that dies without releasing loses its stations after
`ttl`. A new connection always takes the key; renewal and release never take it back from
another node, so a station that moved to another gateway keeps its new owner.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from schema.commands import Command, CommandReply
from schema.errors import ChargeNetError, CommandFailed, CommandTimeout, StationOffline

log = logging.getLogger(__name__)

# Ownership outlives a renewal missed by a busy or briefly disconnected gateway, and a dead
# gateway's stations are free again within this long (their chargers reconnect elsewhere).
OWNERSHIP_TTL_S = 45.0
# Keys per renewal script call: one call blocks Redis for well under a millisecond.
RENEW_CHUNK = 500
# After a failed ownership write, retry no later than this.
OWNERSHIP_RETRY_MAX_S = 2.0

# Delete the key only while it still names this node (a moved station keeps its new owner).
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Extend what is ours, take back what nobody holds (Redis restarted empty, or our key expired
# during an outage), and report the stations another node has taken since.
RENEW_SCRIPT = """
local lost = {}
for _, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == false or owner == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    lost[#lost + 1] = key
  end
end
return lost
"""


def make_node_id() -> str:
    """host-pid-random: readable in Redis, unique across restarts and containers."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class BusKeys:
    """Every Redis key and channel the bus uses, under one prefix (one prefix per deployment)."""

    prefix: str

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    def station(self, charge_point_id: str) -> str:
        return f"{self.prefix}:station:{charge_point_id}"

    def commands(self, node: str) -> str:
        return f"{self.prefix}:node:{node}"

    def replies(self, node: str) -> str:
        return f"{self.prefix}:reply:{node}"


class StationOwnership:
    """This node's claims on stations, written to Redis by one task in the order they were made.

    `claim`/`release` are synchronous (the gateway calls them from its connection handler);
    the task batches them into one pipeline and renews every held station every `ttl / 3`.
    """

    def __init__(self, redis: Redis, keys: BusKeys, node: str, ttl_s: float) -> None:
        self._redis = redis
        self._keys = keys
        self._node = node
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self.renew_every_s = ttl_s / 3
        self.held: set[str] = set()
        # Held here, but another node has since taken the key: no longer renewed.
        self._yielded: set[str] = set()
        self._ops: deque[tuple[bool, str]] = deque()
        self._wake = asyncio.Event()
        self._resync = False
        # Set while every claim and release made so far is written.
        self.written = asyncio.Event()
        self.written.set()

    def claim(self, charge_point_id: str) -> None:
        self.held.add(charge_point_id)
        self._ops.append((True, charge_point_id))
        self.written.clear()
        self._wake.set()

    def release(self, charge_point_id: str) -> None:
        self.held.discard(charge_point_id)
        self._ops.append((False, charge_point_id))
        self.written.clear()
        self._wake.set()

    def resync(self) -> None:
        """Re-register every held station now (after reconnecting: Redis may have restarted)."""
        self._resync = True
        self._wake.set()

    async def owner(self, charge_point_id: str) -> str | None:
        value = await self._redis.get(self._keys.station(charge_point_id))
        return value.decode() if isinstance(value, bytes) else value

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_renewal = loop.time() + self.renew_every_s
        retry_s = 0.1
        while True:
            if not self._ops and not self._resync:
                self._wake.clear()
                left = next_renewal - loop.time()
                if left > 0:
                    try:
                        async with asyncio.timeout(left):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
            try:
                await self._write_ops()
                if self._resync or loop.time() >= next_renewal:
                    self._resync = False
                    await self._renew()
                    next_renewal = loop.time() + self.renew_every_s
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("station ownership not written (%s); retrying", exc)
                self._resync = True
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, OWNERSHIP_RETRY_MAX_S)
                continue
            retry_s = 0.1

    async def _write_ops(self) -> None:
        if not self._ops:
            return
        ops = list(self._ops)
        pipe = self._redis.pipeline(transaction=False)
        for claim, cpid in ops:
            key = self._keys.station(cpid)
            if claim:
                pipe.set(key, self._node, px=self._ttl_ms)
            else:
                pipe.eval(RELEASE_SCRIPT, 1, key, self._node)
        await pipe.execute()
        # Only now: on failure the same ops are written again, still in order.
        for _ in ops:
            claim, cpid = self._ops.popleft()
            if claim:
                self._yielded.discard(cpid)
        if not self._ops:
            self.written.set()

    async def _renew(self) -> None:
        stations = sorted(self.held - self._yielded)
        for i in range(0, len(stations), RENEW_CHUNK):
            chunk = [self._keys.station(cpid) for cpid in stations[i : i + RENEW_CHUNK]]
            lost = await self._redis.eval(RENEW_SCRIPT, len(chunk), *chunk, self._node, self._ttl_ms)  # type: ignore[misc]
            prefix = len(self._keys.station(""))
            for key in lost:
                cpid = key.decode()[prefix:]
                if cpid in self.held:
                    log.info("station %s is now held by another gateway", cpid)
                    self._yielded.add(cpid)

    async def release_all(self) -> None:
        """Compare-and-delete every held station and any release not yet written."""
        stations = self.held | {cpid for claim, cpid in self._ops if not claim}
        self.held.clear()
        self._ops.clear()
        if not stations:
            return
        pipe = self._redis.pipeline(transaction=False)
        for cpid in stations:
            pipe.eval(RELEASE_SCRIPT, 1, self._keys.station(cpid), self._node)
        await pipe.execute()


# --- the wire format of commands and replies ---


def encode_request(
    request_id: int, charge_point_id: str, command: Command, *, reply_to: str, timeout: float
) -> str:
    return json.dumps(
        {
            "id": request_id,
            "cpid": charge_point_id,
            "command": command.to_dict(),
            "reply_to": reply_to,
            "timeout": timeout,
            # Wall clock: a command that reaches its gateway after the caller gave up is not run.
            "deadline": time.time() + timeout,
        }
    )


def time_left(request: dict[str, Any]) -> float:
    return min(float(request["timeout"]), float(request["deadline"]) - time.time())


def encode_reply(request_id: int, reply: CommandReply) -> str:
    return json.dumps({"id": request_id, "status": reply.status, "detail": reply.detail}, default=str)


def encode_error(request_id: int, error: ChargeNetError) -> str:
    return json.dumps(
        {
            "id": request_id,
            "error": error.code,
            "message": error.message,
            "station_code": getattr(error, "station_code", None),
        }
    )


def decode_reply(body: dict[str, Any]) -> CommandReply:
    """The owner's reply, or the error it reported, raised again on the caller's side."""
    code = body.get("error")
    if code is None:
        return CommandReply(status=body["status"], detail=body.get("detail") or {})
    message = str(body.get("message") or "the command failed")
    if code == StationOffline.code:
        raise StationOffline(message)
    if code == CommandTimeout.code:
        raise CommandTimeout(message)
    if code == CommandFailed.code:
        raise CommandFailed(message, station_code=body.get("station_code") or "GenericError")
    raise ChargeNetError(message, code=str(code))
