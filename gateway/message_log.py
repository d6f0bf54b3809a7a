"""The raw OCPP message log: every frame in and out, written in batches, purged by age."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.tables import OCPP_MESSAGE
from gateway.writer import Unit, Writer
from schema.enums import MessageDirection
from schema.events import Event
from schema.timeutil import utcnow

# A frame longer than this is cut in the log (the charger's data still lands in its tables);
# it bounds the memory the buffer can hold between flushes.
MAX_LOGGED_FRAME_CHARS = 16_384
# Above this many buffered frames the oldest are dropped rather than growing without bound
# while the database is slow: the log is for debugging, not a record anything depends on.
MAX_BUFFERED_FRAMES = 200_000
FLUSH_CHUNK_ROWS = 250


# Heartbeats say only "still here" (kept as the station's last-seen time); logging them would
# double the log's write load of an idle fleet for no debugging value.
UNLOGGED_ACTIONS = frozenset({"Heartbeat"})


# Configuration values that are the station's password (1.6 security whitepaper, 2.0.1
# SecurityCtrlr): a frame that carries one is logged with the value replaced.
SECRET_NAMES = frozenset({"authorizationkey", "basicauthpassword"})
REDACTED = "(redacted)"


def _names_secret(d: dict[str, Any]) -> bool:
    variable = d.get("variable")
    names = [d.get("key"), d.get("name"), variable.get("name") if isinstance(variable, dict) else None]
    return any(isinstance(n, str) and n.lower() in SECRET_NAMES for n in names)


def _scrub(value: Any, secret: bool = False) -> Any:
    if isinstance(value, dict):
        secret = secret or _names_secret(value)
        return {
            k: REDACTED
            if secret and k in ("value", "attributeValue") and isinstance(v, str)
            else _scrub(v, secret)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v, secret) for v in value]
    return value


def redact(text: str) -> str:
    """The frame with any password value replaced; untouched (and unparsed) when none can be in it."""
    lowered = text.lower()
    if not any(name in lowered for name in SECRET_NAMES):
        return text
    try:
        return json.dumps(_scrub(json.loads(text)), separators=(",", ":"))
    except ValueError:
        return REDACTED  # unparseable and naming a password: keep nothing


class MessageLog:
    def __init__(
        self, writer: Writer, *, enabled: bool = True, skip_actions: frozenset[str] = UNLOGGED_ACTIONS
    ) -> None:
        self._writer = writer
        self._rows: list[dict[str, Any]] = []
        self.enabled = enabled
        self.skip_actions = skip_actions
        self.dropped = 0

    def append(
        self,
        charge_point_id: str,
        direction: MessageDirection,
        message_type: int,
        message_id: str,
        action: str | None,
        text: str,
    ) -> None:
        if not self.enabled or action in self.skip_actions:
            return
        if len(self._rows) >= MAX_BUFFERED_FRAMES:
            self.dropped += 1
            return
        self._rows.append(
            {
                "charge_point_id": charge_point_id,
                "direction": direction.value,
                "message_type": message_type,
                "message_id": message_id[:64],
                "action": action,
                "payload": redact(text)[:MAX_LOGGED_FRAME_CHARS],
                "logged_at": utcnow(),
            }
        )

    async def flush(self) -> None:
        """Write what is buffered in modest chunks, each its own commit, so the chargers'
        own messages queued behind the log are never held up by one long insert."""
        rows, self._rows = self._rows, []
        for start in range(0, len(rows), FLUSH_CHUNK_ROWS):
            try:
                await self._writer.submit(
                    Unit(inserts=[(OCPP_MESSAGE, rows[start : start + FLUSH_CHUNK_ROWS])])
                )
            except asyncio.CancelledError:
                # Stopping: keep what was not written so the final flush still writes it.
                self._rows[:0] = rows[start + FLUSH_CHUNK_ROWS :]
                raise

    async def purge(self, retention_days: int) -> int:
        cutoff = utcnow() - timedelta(days=retention_days)

        async def fn(conn: AsyncConnection, _events: list[Event]) -> int:
            result = await conn.execute(delete(OCPP_MESSAGE).where(OCPP_MESSAGE.c.logged_at < cutoff))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

        return int(await self._writer.submit(Unit(fn=fn)))
