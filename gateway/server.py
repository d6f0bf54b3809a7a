"""The charger-facing WebSocket server: handshake checks, one OCPP session per station,
and the command path from the bus to the station's socket.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import ssl
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from gateway import security, validation
from gateway.message_log import MessageLog
from gateway.ocppj import OcppJSession
from gateway.station_loader import LoadedStation, StationLoader, StationRecord
from gateway.stations import flush_last_seen, promote_password, register_station, set_online
from gateway.v16 import commands as v16_commands
from gateway.v16.handlers import ACTIONS as V16_ACTIONS
from gateway.v16.handlers import NOT_SUPPORTED as V16_NOT_SUPPORTED
from gateway.v16.handlers import ChargePoint16
from gateway.v201 import commands as v201_commands
from gateway.v201.handlers import ACTIONS as V201_ACTIONS
from gateway.v201.handlers import NOT_SUPPORTED as V201_NOT_SUPPORTED
from gateway.v201.handlers import ChargePoint201
from gateway.writer import Writer
from schema.bus import Bus
from schema.enums import MessageDirection, OcppVersion, RegistrationStatus
from schema.secrets import fingerprint, verify_secret
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

SUBPROTOCOLS = [OcppVersion.V201.value, OcppVersion.V16.value]
# One handler class per version (STYLE.md 9), with the charger-initiated messages it knows but
# does not take (answered NotSupported rather than NotImplemented).
HANDLERS: dict[str, tuple[type[ChargePoint16] | type[ChargePoint201], frozenset[str]]] = {
    OcppVersion.V16.value: (ChargePoint16, V16_NOT_SUPPORTED),
    OcppVersion.V201.value: (ChargePoint201, V201_NOT_SUPPORTED),
}
HEALTH_PATHS = ("/healthz", "/readyz")
# After a gateway restart thousands of chargers reconnect within seconds; asyncio's default
# listen backlog of 100 made the kernel drop their SYNs, and TCP's retransmit back-off then
# added tens of seconds per charger (bench/scale_out.py). The kernel caps it at somaxconn.
LISTEN_BACKLOG = 4096
PATH_PREFIX = "/ocpp/"
# OCPP 2.0.1 bounds the charging station identity to 48 characters; 1.6 leaves it open.
MAX_CHARGE_POINT_ID_LENGTH = 48
# Largest frame accepted: big enough for a StopTransaction with a long transactionData,
# small enough that one bad charger cannot make the gateway buffer megabytes.
MAX_FRAME_BYTES = 256 * 1024
# Keepalive pings hold NAT mappings open between heartbeats.
PING_INTERVAL_S = 30.0
# Last-seen feeds dashboards and offline detection (api/service/offline.py), which calls a
# station silent after heartbeat x 2 + a grace: written at least every half heartbeat, a live
# station's row is never stale enough to look silent. `online` follows the socket at once.
LIVENESS_FLUSH_S = 30.0
MIN_LIVENESS_FLUSH_S = 1.0
MESSAGE_LOG_FLUSH_S = 0.25
RETENTION_PURGE_S = 3600.0
# Close code a replaced connection gets when the same station connects again.
CLOSE_REPLACED = 4000


def _select_subprotocol(_connection: ServerConnection, offered: Sequence[str]) -> Subprotocol | None:
    """Pick the OCPP version: the first the station offers that ChargeNet speaks (its order is
    its preference). With none offered, accept and let the handler close with a reason (an
    HTTP 400 from the handshake is invisible on most chargers' diagnostics screens)."""
    for protocol in offered:
        if protocol in SUBPROTOCOLS:
            return Subprotocol(protocol)
    return None


@dataclass(slots=True)
class Connected:
    connection: ServerConnection
    session: OcppJSession


class Gateway:
    def __init__(
        self,
        engine: AsyncEngine,
        bus: Bus,
        *,
        host: str = "127.0.0.1",
        port: int = 9000,
        auto_register: bool = False,
        unknown_stations: str | None = None,
        tls: ssl.SSLContext | None = None,
        trust_proxy: bool = False,
        heartbeat_interval_s: int = 300,
        boot_retry_interval_s: int = 60,
        command_timeout_s: float = 30.0,
        message_log_retention_days: int = 14,
        message_log: bool = True,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.host = host
        self.port = port
        # What an unknown charge point id gets: refused (404), registered Pending until an
        # operator approves it, or registered Accepted (development and the demo).
        self.unknown_stations = unknown_stations or ("accept" if auto_register else "refuse")
        self.tls = tls
        # Behind a proxy that terminates TLS: its X-Forwarded-Proto and client-certificate
        # verdict count as the station's own (only when nothing else can reach the gateway).
        self.trust_proxy = trust_proxy
        self.heartbeat_interval_s = heartbeat_interval_s
        # The shortest heartbeat interval of any station this gateway has held (stations may
        # have their own): last-seen is flushed at least every half of it.
        self.fastest_heartbeat_s = float(heartbeat_interval_s)
        self.boot_retry_interval_s = boot_retry_interval_s
        self.command_timeout_s = command_timeout_s
        self.retention_days = message_log_retention_days
        self.writer = Writer(engine, bus)
        self.loader = StationLoader(engine)
        self.message_log = MessageLog(self.writer, enabled=message_log)
        self.connections: dict[str, Connected] = {}
        # Keyed weakly: a handshake that fails after our checks never reaches the handler.
        self._handshakes: weakref.WeakKeyDictionary[ServerConnection, LoadedStation] = (
            weakref.WeakKeyDictionary()
        )
        self._verified: set[str] = set()
        self._seen: dict[int, datetime] = {}
        self._server: Server | None = None
        # Set when shutdown begins: readiness fails first so a load balancer stops sending
        # chargers here before their sockets close.
        self.draining = False
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def bound_port(self) -> int:
        assert self._server is not None
        return int(next(iter(self._server.sockets)).getsockname()[1])

    async def start(self) -> None:
        validation.warm("v16", [*V16_ACTIONS, *v16_commands.ACTIONS, *v16_commands.RESPONSES])
        validation.warm("v201", [*V201_ACTIONS, *v201_commands.ACTIONS, *v201_commands.RESPONSES])
        self.writer.start()
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            select_subprotocol=_select_subprotocol,
            process_request=self._process_request,
            # Per-message deflate triples memory per connection; OCPP frames are small.
            compression=None,
            max_size=MAX_FRAME_BYTES,
            ping_interval=PING_INTERVAL_S,
            max_queue=4,
            server_header="ChargeNet",
            backlog=LISTEN_BACKLOG,
            ssl=self.tls,
        )
        self._tasks = [
            asyncio.create_task(self._liveness_loop()),
            asyncio.create_task(self._every(MESSAGE_LOG_FLUSH_S, self.message_log.flush)),
            asyncio.create_task(self._every(RETENTION_PURGE_S, self._purge_log, now=True)),
        ]

    async def stop(self) -> None:
        """Close charger sockets with 1001 going away (they reconnect), flush, stop writing."""
        self.draining = True
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._flush_liveness()
        await self.message_log.flush()
        await self.writer.stop()
        await self.loader.aclose()

    async def _every(self, seconds: float, fn: Any, *, now: bool = False) -> None:
        if not now:
            await asyncio.sleep(seconds)
        while True:
            try:
                result = fn()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("periodic task %s failed", getattr(fn, "__name__", fn))
            await asyncio.sleep(seconds)

    @property
    def liveness_flush_s(self) -> float:
        return min(LIVENESS_FLUSH_S, max(MIN_LIVENESS_FLUSH_S, self.fastest_heartbeat_s / 2))

    async def _liveness_loop(self) -> None:
        while True:
            await asyncio.sleep(self.liveness_flush_s)
            try:
                await self._flush_liveness()
            except Exception:
                log.exception("flushing last-seen times failed")

    async def _flush_liveness(self) -> None:
        # Copied and cleared in place: each connection's loop holds a reference to this dict,
        # so swapping in a new one would leave every open connection writing to the old one.
        seen = dict(self._seen)
        self._seen.clear()
        await flush_last_seen(self.writer, seen)

    async def _purge_log(self) -> None:
        removed = await self.message_log.purge(self.retention_days)
        if removed:
            log.info("purged %d OCPP log rows older than %d days", removed, self.retention_days)

    # -- handshake -------------------------------------------------------------------------

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path in HEALTH_PATHS:
            return self._health(connection, path)
        if self.draining:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down; reconnect elsewhere\n")
        if not path.startswith(PATH_PREFIX):
            return connection.respond(HTTPStatus.NOT_FOUND, "OCPP endpoint is /ocpp/{chargePointId}\n")
        cpid = unquote(path[len(PATH_PREFIX) :]).strip("/")
        if not cpid or "/" in cpid or len(cpid) > MAX_CHARGE_POINT_ID_LENGTH:
            return connection.respond(HTTPStatus.BAD_REQUEST, "invalid charge point id\n")
        loaded = await self.loader.load(cpid)
        if loaded is None:
            if self.unknown_stations == "refuse":
                log.info("refused unknown station %s", cpid)
                return connection.respond(HTTPStatus.NOT_FOUND, "unknown charge point\n")
            status = (
                RegistrationStatus.PENDING
                if self.unknown_stations == "pending"
                else RegistrationStatus.ACCEPTED
            )
            loaded = await register_station(
                self.writer, cpid, heartbeat_interval_s=self.heartbeat_interval_s, registration_status=status
            )
            log.info("auto-registered station %s (%s)", cpid, status.value)
        refusal = await self._admit(connection, loaded.record, request.headers)
        if refusal is not None:
            return refusal
        self._handshakes[connection] = loaded
        return None

    async def _admit(
        self, connection: ServerConnection, record: StationRecord, headers: Headers
    ) -> Response | None:
        """What the station's security profile demands, or the response refusing it."""
        profile = security.required_profile(record)
        if profile >= security.TLS_BASIC and not security.is_tls(
            connection, headers, trust_proxy=self.trust_proxy
        ):
            log.info("refused %s: profile %d needs TLS", record.charge_point_id, profile)
            return connection.respond(HTTPStatus.FORBIDDEN, "this charge point must connect over TLS\n")
        if profile == security.TLS_CLIENT_CERT:
            cn = security.client_common_name(connection, headers, trust_proxy=self.trust_proxy)
            if cn != record.charge_point_id:
                log.info("refused %s: no client certificate for it", record.charge_point_id)
                return connection.respond(HTTPStatus.FORBIDDEN, "client certificate required\n")
            return None
        if profile >= security.BASIC and not await self._authenticate(record, headers):
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "authentication required\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="ChargeNet OCPP"'
            return response
        return None

    def _health(self, connection: ServerConnection, path: str) -> Response:
        """Plain HTTP probes on the OCPP port: liveness while the process runs, readiness
        until shutdown begins (orchestrators need no second port)."""
        if path == "/readyz" and self.draining:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "draining\n")
        return connection.respond(HTTPStatus.OK, "ok\n")

    async def _authenticate(self, record: StationRecord, headers: Headers) -> bool:
        """OCPP security profile 1: Basic auth, user name = charge point id."""
        header = headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if user != record.charge_point_id:
            return False
        if record.password_hash is not None and await self._verify(password, record.password_hash):
            return True
        pending = record.pending_password_hash
        if pending is not None and await self._verify(password, pending):
            await promote_password(self.writer, record)
            log.info("station %s now uses its rotated password", record.charge_point_id)
            return True
        return False

    async def _verify(self, password: str, stored_hash: str) -> bool:
        # Argon2 is slow on purpose; a reconnect storm must not cost 50 ms per charger, so a
        # verified (password, hash) pair is remembered as a salted digest for this process.
        key = fingerprint(password, stored_hash)
        if key in self._verified:
            return True
        ok = await asyncio.to_thread(verify_secret, password, stored_hash)
        if ok:
            self._verified.add(key)
        return ok

    # -- connection ------------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        loaded = self._handshakes.pop(connection, None)
        if loaded is None:
            await connection.close(1011, "handshake state lost")
            return
        if connection.subprotocol is None:
            await connection.close(1002, "OCPP subprotocol required: offer ocpp2.0.1 or ocpp1.6")
            return
        ctx = loaded.context
        handler_class, not_supported = HANDLERS[connection.subprotocol]
        handler = handler_class(
            ctx, self.engine, self.writer, boot_retry_interval_s=self.boot_retry_interval_s
        )
        cpid = ctx.charge_point_id
        msg_log = self.message_log

        def log_frame(
            direction: MessageDirection, kind: int, mid: str, action: str | None, text: str
        ) -> None:
            msg_log.append(cpid, direction, kind, mid, action, text)

        session = OcppJSession(
            cpid,
            connection.send,
            handlers=handler.handlers(),
            not_supported=not_supported,
            schema_package=handler.schema_package,
            log_frame=log_frame,
        )

        handler.session = session
        execute = handler.execute

        previous = self.connections.get(cpid)
        self.connections[cpid] = Connected(connection, session)
        if previous is not None:
            # A second connection for the same id usually means the first one is dead.
            log.info("station %s reconnected; closing its previous socket", cpid)
            previous.session.connection_lost()
            closing = asyncio.create_task(
                previous.connection.close(CLOSE_REPLACED, "replaced by a new connection")
            )
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        self.bus.serve_station(cpid, execute)
        self.fastest_heartbeat_s = min(self.fastest_heartbeat_s, float(ctx.heartbeat_interval_s))
        await set_online(self.writer, ctx, True)
        seen = self._seen
        station_id = ctx.station_id
        try:
            async for message in connection:
                seen[station_id] = utcnow()
                await session.on_frame(message)
        except ConnectionClosed:
            pass
        finally:
            session.connection_lost()
            self.bus.release_station(cpid, execute)
            current = self.connections.get(cpid)
            if current is not None and current.connection is connection:
                del self.connections[cpid]
                try:
                    await set_online(self.writer, ctx, False)
                except Exception:
                    log.exception("could not mark %s offline", cpid)
