"""OCPP-J framing: CALL / CALLRESULT / CALLERROR over one WebSocket, both directions.

Inbound CALLs are answered in order (OCPP allows one CALL in flight per direction); outbound
calls wait for their CALLRESULT with a timeout. Handlers never send calls themselves: the
command path runs in its own task, so a handler cannot deadlock waiting on its own socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.validation import PayloadInvalid, format_violation, validate
from schema.enums import MessageDirection
from schema.errors import CommandFailed, CommandTimeout, StationOffline

log = logging.getLogger(__name__)

CALL, CALLRESULT, CALLERROR = 2, 3, 4
# OCPP-J limits the unique id to 36 characters.
MAX_MESSAGE_ID_LENGTH = 36

# Follow-up tasks still running, held so the loop does not drop them mid-way.
_FOLLOW_UPS: set[asyncio.Task[None]] = set()

Send = Callable[[str], Awaitable[None]]
LogFrame = Callable[[MessageDirection, int, str, str | None, str], None]


class OcppError(Exception):
    """Raised by a handler to answer with a CALLERROR of this code."""

    def __init__(self, code: str, description: str = "", details: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.details = details or {}


Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def _error_frame(message_id: str, code: str, description: str, details: dict[str, Any] | None = None) -> str:
    return json.dumps([CALLERROR, message_id, code, description[:255], details or {}], separators=(",", ":"))


class OcppJSession:
    """One station's OCPP-J conversation, independent of the WebSocket library."""

    __slots__ = (
        "_follow_ups",
        "_format_violation",
        "_lock",
        "_log",
        "_pending",
        "_send",
        "charge_point_id",
        "handlers",
        "not_supported",
        "schema_package",
    )

    def __init__(
        self,
        charge_point_id: str,
        send: Send,
        *,
        handlers: dict[str, Handler],
        not_supported: frozenset[str],
        schema_package: str,
        log_frame: LogFrame,
    ) -> None:
        self.charge_point_id = charge_point_id
        self._send = send
        self.handlers = handlers
        self.not_supported = not_supported
        self.schema_package = schema_package
        self._format_violation = format_violation(schema_package)
        self._log = log_frame
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._lock: asyncio.Lock | None = None
        # Created on first use: tens of thousands of idle sessions should not each carry one.
        self._follow_ups: list[Callable[[], Awaitable[None]]] | None = None

    def after_reply(self, follow_up: Callable[[], Awaitable[None]]) -> None:
        """Run `follow_up` once the CALLRESULT being prepared has been sent.

        A handler cannot itself await a CALL to the station: the reader that would receive the
        answer is the one running the handler. And what the central system asks after a
        BootNotification must reach the station after the Accepted that permits it.
        """
        if self._follow_ups is None:
            self._follow_ups = []
        self._follow_ups.append(follow_up)

    async def on_frame(self, raw: str | bytes) -> None:
        """Handle one frame; never raises: bad input gets a CALLERROR and the socket stays up."""
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                await self._reply_error("-1", self._format_violation, "frame is not UTF-8 text")
                return
        try:
            frame = json.loads(raw)
        except ValueError:
            await self._reply_error("-1", self._format_violation, "frame is not valid JSON", raw)
            return
        if not isinstance(frame, list) or len(frame) < 3 or not isinstance(frame[1], str):
            has_id = isinstance(frame, list) and len(frame) > 1 and isinstance(frame[1], str)
            mid = frame[1] if has_id else "-1"
            await self._reply_error(mid, self._format_violation, "frame is not an OCPP-J message", raw)
            return
        kind, message_id = frame[0], frame[1]
        if kind == CALL:
            await self._on_call(frame, message_id, raw)
        elif kind in (CALLRESULT, CALLERROR):
            self._log(MessageDirection.IN, kind, message_id, None, raw)
            future = self._pending.pop(message_id, None)
            if future is not None and not future.done():
                future.set_result(frame)
        else:
            await self._reply_error(message_id, "ProtocolError", f"unknown message type {kind!r}", raw)

    async def _on_call(self, frame: list[Any], message_id: str, raw: str) -> None:
        if len(frame) != 4 or not isinstance(frame[2], str) or not isinstance(frame[3], dict):
            await self._reply_error(
                message_id, self._format_violation, "CALL must be [2, id, action, {payload}]", raw
            )
            return
        if len(message_id) > MAX_MESSAGE_ID_LENGTH:
            await self._reply_error(
                message_id[:MAX_MESSAGE_ID_LENGTH],
                self._format_violation,
                "message id longer than 36 characters",
                raw,
            )
            return
        action, payload = frame[2], frame[3]
        self._log(MessageDirection.IN, CALL, message_id, action, raw)
        handler = self.handlers.get(action)
        if handler is None:
            if action in self.not_supported:
                await self._reply_error(message_id, "NotSupported", f"{action} is not supported")
            else:
                await self._reply_error(message_id, "NotImplemented", f"unknown action {action!r}")
            return
        try:
            validate(self.schema_package, action, payload)
            result = await handler(payload)
        except PayloadInvalid as exc:
            await self._reply_error(message_id, exc.ocpp_code, exc.description)
            return
        except OcppError as exc:
            await self._reply_error(message_id, exc.code, exc.description, details=exc.details)
            return
        except Exception:
            log.exception("%s handler failed for %s", action, self.charge_point_id)
            await self._reply_error(message_id, "InternalError", f"{action} could not be processed")
            return
        text = json.dumps([CALLRESULT, message_id, result], separators=(",", ":"))
        self._log(MessageDirection.OUT, CALLRESULT, message_id, action, text)
        await self._send(text)
        if self._follow_ups:
            follow_ups, self._follow_ups = self._follow_ups, None
            for follow_up in follow_ups:
                task = asyncio.create_task(self._run_follow_up(follow_up))
                _FOLLOW_UPS.add(task)
                task.add_done_callback(_FOLLOW_UPS.discard)

    async def _run_follow_up(self, follow_up: Callable[[], Awaitable[None]]) -> None:
        try:
            await follow_up()
        except (CommandFailed, CommandTimeout, StationOffline) as exc:
            log.info("follow-up for %s not done: %s", self.charge_point_id, exc)
        except Exception:
            log.exception("follow-up for %s failed", self.charge_point_id)

    async def _reply_error(
        self,
        message_id: str,
        code: str,
        description: str,
        raw: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        if raw is not None:
            self._log(MessageDirection.IN, 0, message_id, None, raw[:2000])
        text = _error_frame(message_id, code, description, details)
        self._log(MessageDirection.OUT, CALLERROR, message_id, None, text)
        try:
            await self._send(text)
        except Exception:  # the socket went away while we answered; nothing to keep up
            log.debug("could not send CALLERROR to %s", self.charge_point_id)

    async def call(self, action: str, payload: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """Send a CALL and return the CALLRESULT payload (validated against its schema).

        Raises CommandFailed on CALLERROR, CommandTimeout when no answer comes in time.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one outbound CALL in flight per connection
            message_id = str(uuid.uuid4())
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._pending[message_id] = future
            text = json.dumps([CALL, message_id, action, payload], separators=(",", ":"))
            self._log(MessageDirection.OUT, CALL, message_id, action, text)
            try:
                await self._send(text)
                frame = await asyncio.wait_for(future, timeout)
            except TimeoutError as exc:
                raise CommandTimeout(f"{action} to {self.charge_point_id}: no answer in {timeout}s") from exc
            except (ConnectionError, OSError) as exc:
                raise StationOffline(f"{self.charge_point_id} disconnected") from exc
            finally:
                self._pending.pop(message_id, None)
        if frame[0] == CALLERROR:
            code = frame[2] if len(frame) > 2 else "GenericError"
            desc = frame[3] if len(frame) > 3 else ""
            raise CommandFailed(f"{action} failed on station: {code} {desc}".strip(), station_code=str(code))
        result = frame[2] if len(frame) > 2 and isinstance(frame[2], dict) else {}
        try:
            validate(self.schema_package, f"{action}Response", result)
        except PayloadInvalid as exc:
            raise CommandFailed(
                f"{action}: station answered with an invalid payload: {exc.description}",
                station_code=self._format_violation,
            ) from None
        return result

    def connection_lost(self) -> None:
        self._follow_ups = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("station disconnected"))
        self._pending.clear()
