"""A charger simulator speaking OCPP 1.6J over a real WebSocket.

Used by the demo (`chargenet serve`, `chargenet simulate`), the tests and the benchmarks.
Each simulated charger boots, reports its connectors, heartbeats, answers the central
system's commands and, when asked to, runs realistic sessions: the energy register rises with
a power curve that tapers as the state of charge climbs (and stays within the charging
profiles in force), and now and then a connector faults.

It answers every central-system message of the six OCPP 1.6 feature profiles: the command
logic lives in gateway/sim_commands.py and the modules it uses (sim_config: configuration
keys; sim_auth: local list and cache; sim_reservations; sim_smart: charging profiles;
sim_files: firmware and diagnostics).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.sim_auth import LocalAuth
from gateway.sim_commands import SimCommands
from gateway.sim_config import ConfigStore, seconds, standard_keys
from gateway.sim_files import FIRMWARE_FAILURES, FileTransfers
from gateway.sim_reservations import Reservations
from gateway.sim_session import meter_payload, run_session
from gateway.sim_smart import ChargingProfiles
from gateway.sim_types import FEATURE_PROFILES, CallError, Reply
from schema.timeutil import to_ocpp, utcnow

log = logging.getLogger(__name__)

__all__ = ["NO_ANSWER", "CallError", "SimCharger", "SimConfig", "SimConnector"]

# Returned by an `on_call` hook: the charger never answers that CALL.
NO_ANSWER: dict[str, Any] = {}

RESET_GRACE_S = 0.05  # real seconds between Reset.conf and acting on it, so the .conf leaves first
SOFT_RESET_STOP_WAIT_S = 10.0  # real seconds a soft reset waits for sessions to send StopTransaction
REBOOT_S = 10.0  # simulated seconds a charger takes to restart before it reconnects
SENT_LOG_LENGTH = 1_000  # acknowledged CALLs kept in `sent` for tests and the demo


@dataclass
class SimConnector:
    connector_id: int
    max_power_w: int
    status: str = "Available"
    transaction_id: int | None = None
    id_tag: str | None = None
    soc: float = 0.0
    battery_wh: int = 60_000
    target_soc: float = 80.0
    stop_requested: bool = False
    # Why the running session is to stop (StopTransaction.reason); None means "Remote".
    stop_reason: str | None = None
    tx_started_at: datetime | None = None
    power_w: int = 0  # what the session draws now
    # Set to end the session's current metering pause at once (a stop was requested).
    wake: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)


@dataclass
class SimConfig:
    charge_point_id: str
    url: str = "ws://127.0.0.1:9000/ocpp"
    connectors: list[int] = field(default_factory=lambda: [22_000])  # max power per connector
    vendor: str = "ChargeNetSim"
    model: str = "SimAC22"
    password: str | None = None
    id_tags: list[str] = field(default_factory=lambda: ["DEMO-TAG-1"])
    # Simulated seconds per real second: 60 makes a 45-minute session last 45 seconds.
    speed: float = 1.0
    meter_interval_s: float = 60.0
    heartbeat_interval_s: float | None = None  # None: use what BootNotification says
    auto_sessions: bool = False
    fault_probability: float = 0.02
    # Further central-system addresses to try in turn when a connection fails (what a DNS
    # name with several gateways behind a load balancer gives a real charger).
    fallback_urls: list[str] = field(default_factory=list)
    firmware_version: str = "1.4.2"
    # SupportedFeatureProfiles: messages of any other profile get a CALLERROR NotSupported.
    feature_profiles: list[str] = field(default_factory=lambda: list(FEATURE_PROFILES))
    reserve_connector_zero: bool = True  # ReserveConnectorZeroSupported
    charging_rate_units: list[str] = field(default_factory=lambda: ["A", "W"])  # "A" Current, "W" Power
    # DataTransfer vendorIds understood besides `vendor` itself; their data is echoed.
    data_transfer_vendor_ids: list[str] = field(default_factory=list)
    # Vendor configuration keys and their values; a change answers RebootRequired.
    vendor_keys: dict[str, str] = field(default_factory=lambda: {"ChargeNetSim.DisplayLanguage": "en"})
    fixed_cable_connectors: list[int] = field(default_factory=list)  # UnlockConnector: NotSupported
    jammed_lock_connectors: list[int] = field(default_factory=list)  # UnlockConnector: UnlockFailed
    # Every firmware update fails at this step: "DownloadFailed" or "InstallationFailed" (an
    # unreachable server or a bad image, on demand); None: updates succeed when the image does.
    firmware_failure: str | None = None


class SimCharger:
    """One charger. `run()` keeps it connected (with backoff) until `stop()`."""

    # The OCPP version it speaks (gateway/sim_v201.py's SimCharger201 speaks ocpp2.0.1).
    SUBPROTOCOL = "ocpp1.6"

    def __init__(self, config: SimConfig, *, rng: random.Random | None = None) -> None:
        unknown = set(config.feature_profiles) - set(FEATURE_PROFILES)
        if unknown:
            raise ValueError(f"unknown OCPP 1.6 feature profiles {sorted(unknown)}")
        if config.firmware_failure not in FIRMWARE_FAILURES:
            raise ValueError(
                f"firmware_failure is one of {sorted(f for f in FIRMWARE_FAILURES if f)} or None"
            )
        self.cfg = config
        self.rng = rng or random.Random(config.charge_point_id)
        self.connectors = {i + 1: SimConnector(i + 1, p) for i, p in enumerate(config.connectors)}
        self.register_wh = self.rng.randint(100_000, 5_000_000)
        self.ws: ClientConnection | None = None
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._call_lock = asyncio.Lock()
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.booted = asyncio.Event()
        # Set while connected and booted: transaction messages wait for it (OCPP 1.6 §4.8 queue).
        self.online = asyncio.Event()
        self._url_index = 0
        self.heartbeat_interval = 300.0
        self.received_calls: list[tuple[str, dict[str, Any]]] = []
        # Transaction messages the central system acknowledged (each once, however often sent).
        self.delivered: list[tuple[str, dict[str, Any]]] = []
        # Tests script odd chargers here: return a payload to answer with it, None for the
        # default behaviour, NO_ANSWER to stay silent, or raise CallError to answer CALLERROR.
        self.on_call: Callable[[str, dict[str, Any]], dict[str, Any] | None] | None = None
        # Every CALL the central system answered with a CALLRESULT, newest last.
        self.sent: deque[tuple[str, dict[str, Any]]] = deque(maxlen=SENT_LOG_LENGTH)
        self.firmware_version = config.firmware_version
        # Connectors set Inoperative by ChangeAvailability (0: the whole charger); kept
        # across reboots, as §5.2 requires.
        self.inoperative: set[int] = set()
        self._rebooting = False
        self._heartbeat_changed = asyncio.Event()
        self.session_ended = asyncio.Event()  # set each time a session has sent StopTransaction
        keys = standard_keys(config, connectors=len(self.connectors), heartbeat_s=self.heartbeat_interval)
        self.config = ConfigStore(keys, profiles=config.feature_profiles)
        self.local_auth = LocalAuth()
        self.reservations = Reservations(self)
        self.profiles = ChargingProfiles()
        self.files = FileTransfers(self)
        self.commands = SimCommands(self)

    # -- connection -------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        if self.cfg.password is None:
            return {}
        token = base64.b64encode(f"{self.cfg.charge_point_id}:{self.cfg.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    @property
    def urls(self) -> list[str]:
        return [self.cfg.url, *self.cfg.fallback_urls]

    async def connect(self) -> None:
        """Connect to the last address that worked, else each of the others in turn."""
        urls = self.urls
        error: Exception | None = None
        for step in range(len(urls)):
            index = (self._url_index + step) % len(urls)
            try:
                await self._connect(urls[index])
            except (OSError, TimeoutError, InvalidStatus) as exc:
                error = exc
                continue
            self._url_index = index
            return
        assert error is not None
        raise error

    async def _connect(self, url: str) -> None:
        self.ws = await connect(
            f"{url.rstrip('/')}/{self.cfg.charge_point_id}",
            subprotocols=[self.SUBPROTOCOL],  # type: ignore[list-item]
            additional_headers=self._headers(),
            compression=None,
            open_timeout=30,
            ping_interval=None,
        )
        self.spawn(self._reader(self.ws))

    async def close(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        if self.ws is not None:
            await self.ws.close()

    @property
    def stopping(self) -> bool:
        """close() was called: sessions end, nothing reconnects."""
        return self._stopping

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _reader(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if frame[0] == 2:
                    self.spawn(self._answer(frame[1], frame[2], frame[3]))
                else:
                    fut = self._pending.pop(frame[1], None)
                    if fut is not None and not fut.done():
                        fut.set_result(frame)
        except ConnectionClosed:
            pass
        finally:
            self.online.clear()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))
            self._pending.clear()

    async def call(self, action: str, payload: dict[str, Any], *, timeout: float = 30.0) -> dict[str, Any]:
        """Send a CALL and return the CALLRESULT payload; CallError on CALLERROR."""
        async with self._call_lock:
            return await self.call_unlocked(action, payload, timeout=timeout)

    async def call_unlocked(
        self, action: str, payload: dict[str, Any], *, timeout: float = 30.0
    ) -> dict[str, Any]:
        assert self.ws is not None, "not connected"
        mid = uuid.uuid4().hex[:16]
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[mid] = fut
        await self.ws.send(json.dumps([2, mid, action, payload]))
        frame = await asyncio.wait_for(fut, timeout)
        if frame[0] == 4:
            raise CallError(frame[2], frame[3])
        self.sent.append((action, payload))
        return frame[2]  # type: ignore[no-any-return]

    async def call_transactional(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Deliver a transaction-related message whatever happens to the connection: wait while
        offline, resend the same frame payload after a reconnect (OCPP 1.6 §4.8). The central
        system must treat the resend as the same fact."""
        while True:
            await self.online.wait()
            try:
                result = await self.call(action, payload)
                self.delivered.append((action, payload))
                return result
            except (ConnectionError, ConnectionClosed, TimeoutError):
                if self._stopping:
                    raise
                self.online.clear()

    async def send_raw(self, text: str, *, expect_id: str | None = None, timeout: float = 10.0) -> list[Any]:
        """Send any text and wait for the frame answering `expect_id` (for bad-input tests)."""
        assert self.ws is not None
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[expect_id or "-1"] = fut
        await self.ws.send(text)
        return await asyncio.wait_for(fut, timeout)  # type: ignore[no-any-return]

    # -- central system → charger -----------------------------------------------------------

    async def _answer(self, mid: str, action: str, payload: dict[str, Any]) -> None:
        self.received_calls.append((action, payload))
        self.files.note(f"received {action}")
        scripted: dict[str, Any] | None = None
        if self.on_call is not None:
            try:
                scripted = self.on_call(action, payload)
            except CallError as exc:
                await self._send_frame([4, mid, exc.code, exc.description, {}])
                return
            if scripted is NO_ANSWER:
                return
        try:
            reply = Reply(scripted) if scripted is not None else self.commands.handle(action, payload)
        except CallError as exc:
            await self._send_frame([4, mid, exc.code, exc.description, {}])
            return
        await self._send_frame([3, mid, reply.payload])
        for follow_up in reply.then:
            self.spawn(follow_up())

    async def _send_frame(self, frame: list[Any]) -> None:
        if self.ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(json.dumps(frame))

    def is_inoperative(self, connector_id: int) -> bool:
        return connector_id in self.inoperative or 0 in self.inoperative

    def idle_status(self, connector_id: int) -> str:
        """What a connector without a session reports: Unavailable, Reserved or Available."""
        if self.is_inoperative(connector_id):
            return "Unavailable"
        if connector_id != 0 and self.reservations.on(connector_id) is not None:
            return "Reserved"
        return "Available"

    def current_status(self, connector_id: int) -> str:
        conn = self.connectors.get(connector_id)
        return conn.status if conn is not None else self.idle_status(0)

    @property
    def rated_w(self) -> int:
        return sum(c.max_power_w for c in self.connectors.values())

    def request_stop(self, conn: SimConnector, reason: str) -> None:
        """Ask the session on this connector to stop now with this StopTransaction reason."""
        conn.stop_requested, conn.stop_reason = True, reason
        conn.wake.set()

    def set_heartbeat_interval(self, interval_s: float) -> None:
        self.heartbeat_interval = interval_s
        self.config.set_value("HeartbeatInterval", seconds(interval_s))
        self._heartbeat_changed.set()

    async def reset(self, kind: str) -> None:
        """§5.14: a soft reset stops every session (StopTransaction reason SoftReset) and
        then restarts; a hard reset restarts at once and sends those StopTransactions (reason
        HardReset) after the boot. `run()` reconnects after REBOOT_S."""
        await asyncio.sleep(RESET_GRACE_S)
        running = [c for c in self.connectors.values() if c.transaction_id is not None]
        if kind == "Hard":
            await self.reboot()
            for conn in running:
                self.request_stop(conn, "HardReset")
            return
        for conn in running:
            self.request_stop(conn, "SoftReset")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SOFT_RESET_STOP_WAIT_S):
                while any(c.transaction_id is not None for c in running):
                    self.session_ended.clear()
                    await self.session_ended.wait()
        await self.reboot()

    async def reboot(self) -> None:
        """Restart: vendor keys take their new values and the connection drops."""
        self._rebooting = True
        self.config.apply_pending()
        if self.ws is not None:
            await self.ws.close()

    # -- charger → central system -----------------------------------------------------------

    async def boot(self) -> dict[str, Any]:
        result = await self.call(
            "BootNotification",
            {
                "chargePointVendor": self.cfg.vendor,
                "chargePointModel": self.cfg.model,
                "chargePointSerialNumber": f"SN-{self.cfg.charge_point_id}"[:25],
                "firmwareVersion": self.firmware_version,
            },
        )
        self.set_heartbeat_interval(float(self.cfg.heartbeat_interval_s or result["interval"] or 300))
        if result["status"] == "Accepted":
            self.booted.set()
        return result

    async def notify(self, action: str, payload: dict[str, Any]) -> None:
        """Send a message that is not queued while offline (unlike transaction messages)."""
        try:
            await self.call(action, payload)
        except (ConnectionError, ConnectionClosed, AssertionError, TimeoutError, CallError):
            log.debug("%s: %s not delivered", self.cfg.charge_point_id, action)

    async def status(self, connector_id: int, status: str, error_code: str = "NoError", **extra: Any) -> None:
        if connector_id in self.connectors:
            self.connectors[connector_id].status = status
        self.files.note(f"status connector {connector_id} {status}")
        payload = {
            "connectorId": connector_id,
            "status": status,
            "errorCode": error_code,
            "timestamp": to_ocpp(utcnow()),
            **extra,
        }
        try:
            await self.call("StatusNotification", payload)
        except (ConnectionError, ConnectionClosed, AssertionError):
            # Offline: a status is not queued; start() reports every connector's current
            # status after the reconnect, as real chargers do after a boot.
            log.debug("%s: status %s not sent (offline)", self.cfg.charge_point_id, status)

    async def meter_now(self, connector_id: int) -> None:
        """A triggered reading (connector 0: the charger's main meter)."""
        conn = self.connectors.get(connector_id) or SimConnector(0, self.rated_w)
        await self.meter(conn, conn.power_w)

    async def meter(self, conn: SimConnector, power_w: int) -> None:
        await self.call_transactional("MeterValues", meter_payload(conn, self.register_wh, power_w))

    def power_at(self, conn: SimConnector) -> int:
        """A DC-style taper: full power to 50 % SoC, then falling to a quarter at 100 %."""
        if conn.soc < 50:
            factor = 1.0
        else:
            factor = max(0.25, 1.0 - (conn.soc - 50) / 50 * 0.75)
        return int(conn.max_power_w * factor * self.rng.uniform(0.95, 1.0))

    async def run_session(
        self,
        connector_id: int,
        id_tag: str,
        *,
        charging_profile: dict[str, Any] | None = None,
        remote: bool = False,
    ) -> int | None:
        """Plug in, start, meter until the target SoC or a stop request, stop, unplug
        (gateway/sim_session.py says what may refuse it). Returns the transaction id."""
        return await run_session(self, connector_id, id_tag, charging_profile=charging_profile, remote=remote)

    # -- life cycle -------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        """A Heartbeat every HeartbeatInterval; a changed interval starts a new wait at once."""
        while not self._stopping:
            self._heartbeat_changed.clear()
            try:
                await asyncio.wait_for(
                    self._heartbeat_changed.wait(), self.heartbeat_interval / self.cfg.speed
                )
            except TimeoutError:
                await self.call("Heartbeat", {})

    async def _autopilot(self) -> None:
        """Drivers arrive at random, charge, leave; now and then a connector faults."""
        while not self._stopping:
            await asyncio.sleep(self.rng.uniform(5, 40) * 60 / self.cfg.speed)
            free = [
                c for c in self.connectors.values() if c.transaction_id is None and c.status == "Available"
            ]
            if not free:
                continue
            conn = self.rng.choice(free)
            if self.rng.random() < self.cfg.fault_probability:
                await self.status(conn.connector_id, "Faulted", "GroundFailure", vendorErrorCode="E-GF-01")
                await asyncio.sleep(self.rng.uniform(2, 10) * 60 / self.cfg.speed)
                await self.status(conn.connector_id, "Available")
                continue
            self.spawn(self.run_session(conn.connector_id, self.rng.choice(self.cfg.id_tags)))

    async def start(self) -> None:
        """Connect (unless connected), boot until accepted, report every connector."""
        if self.ws is None or self.ws.state.name != "OPEN":
            await self.connect()
        while True:
            result = await self.boot()
            if result["status"] == "Accepted":
                break
            await asyncio.sleep(max(1.0, float(result["interval"])) / self.cfg.speed)
        self.online.set()
        await self.status(0, self.idle_status(0))
        for cid, conn in self.connectors.items():
            await self.status(cid, self.idle_status(cid) if conn.transaction_id is None else "Charging")

    async def run(self) -> None:
        """Stay connected until `close()`, reconnecting with backoff like a real charger."""
        backoff = 1.0
        while not self._stopping:
            try:
                await self.start()
                backoff = 1.0
                workers = [self.spawn(self._heartbeats())]
                if self.cfg.auto_sessions:
                    workers.append(self.spawn(self._autopilot()))
                assert self.ws is not None
                await self.ws.wait_closed()
                for w in workers:
                    w.cancel()
            except (OSError, ConnectionClosed, TimeoutError, CallError) as exc:
                log.debug("%s: %s; retrying in %.0fs", self.cfg.charge_point_id, exc, backoff)
            except asyncio.CancelledError:
                raise
            if self._stopping:
                break
            if self._rebooting:  # a restart, not a failure: back as soon as it has booted
                self._rebooting = False
                await asyncio.sleep(REBOOT_S / self.cfg.speed)
                continue
            await asyncio.sleep(backoff * self.rng.uniform(0.5, 1.5))
            backoff = min(backoff * 2, 60.0)
