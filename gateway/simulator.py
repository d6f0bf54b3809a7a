"""A charger simulator speaking OCPP 1.6J over a real WebSocket.

Used by the demo (`chargenet serve`, `chargenet simulate`), the tests and the benchmarks.
Each simulated charger boots, reports its connectors, heartbeats, answers the central
system's commands and, when asked to, runs realistic sessions: the energy register rises with
a power curve that tapers as the state of charge climbs, and now and then a connector faults.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from schema.timeutil import to_ocpp, utcnow

log = logging.getLogger(__name__)


class CallError(Exception):
    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


# Returned by an `on_call` hook: the charger never answers that CALL.
NO_ANSWER: dict[str, Any] = {}


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


class SimCharger:
    """One charger. `run()` keeps it connected (with backoff) until `stop()`."""

    def __init__(self, config: SimConfig, *, rng: random.Random | None = None) -> None:
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
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers=self._headers(),
            compression=None,
            open_timeout=30,
            ping_interval=None,
        )
        self._spawn(self._reader(self.ws))

    async def close(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        if self.ws is not None:
            await self.ws.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _reader(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if frame[0] == 2:
                    self._spawn(self._answer(frame[1], frame[2], frame[3]))
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
        result: dict[str, Any] | None = None
        if self.on_call is not None:
            try:
                result = self.on_call(action, payload)
            except CallError as exc:
                await self._send_frame([4, mid, exc.code, exc.description, {}])
                return
            if result is NO_ANSWER:
                return
        if result is not None:
            pass
        elif action == "RemoteStartTransaction":
            result = self._remote_start(payload)
        elif action == "RemoteStopTransaction":
            result = self._remote_stop(payload)
        elif action == "Reset":
            result = {"status": "Accepted"}
            self._spawn(self._reset())
        elif action == "TriggerMessage":
            result = self._trigger(payload)
        else:
            await self._send_frame([4, mid, "NotImplemented", f"{action} not simulated", {}])
            return
        await self._send_frame([3, mid, result])

    async def _send_frame(self, frame: list[Any]) -> None:
        if self.ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(json.dumps(frame))

    def _remote_start(self, p: dict[str, Any]) -> dict[str, Any]:
        cid = p.get("connectorId") or next(
            (
                c.connector_id
                for c in self.connectors.values()
                if c.transaction_id is None and c.status in ("Available", "Preparing")
            ),
            None,
        )
        conn = self.connectors.get(cid) if cid is not None else None
        if conn is None or conn.transaction_id is not None or conn.status == "Faulted":
            return {"status": "Rejected"}
        self._spawn(self.run_session(conn.connector_id, p["idTag"]))
        return {"status": "Accepted"}

    def _remote_stop(self, p: dict[str, Any]) -> dict[str, Any]:
        for conn in self.connectors.values():
            if conn.transaction_id == p["transactionId"]:
                conn.stop_requested = True
                return {"status": "Accepted"}
        return {"status": "Rejected"}

    def _trigger(self, p: dict[str, Any]) -> dict[str, Any]:
        what = p["requestedMessage"]
        if what == "Heartbeat":
            self._spawn(self.call("Heartbeat", {}))
        elif what == "BootNotification":
            self._spawn(self.boot())
        elif what == "StatusNotification":
            targets = [p["connectorId"]] if p.get("connectorId") else list(self.connectors)
            for cid in targets:
                if cid in self.connectors:
                    self._spawn(self.status(cid, self.connectors[cid].status))
        elif what == "MeterValues":
            self._spawn(self._meter_now(p.get("connectorId") or 1))
        else:
            return {"status": "NotImplemented"}
        return {"status": "Accepted"}

    async def _reset(self) -> None:
        await asyncio.sleep(0.05)
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
                "firmwareVersion": "1.4.2",
            },
        )
        self.heartbeat_interval = float(self.cfg.heartbeat_interval_s or result["interval"] or 300)
        if result["status"] == "Accepted":
            self.booted.set()
        return result

    async def status(self, connector_id: int, status: str, error_code: str = "NoError", **extra: Any) -> None:
        if connector_id in self.connectors:
            self.connectors[connector_id].status = status
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

    async def _meter_now(self, connector_id: int) -> None:
        conn = self.connectors.get(connector_id)
        if conn is not None:
            await self.meter(conn, 0)

    async def meter(self, conn: SimConnector, power_w: int) -> None:
        sampled: list[dict[str, Any]] = [
            {
                "value": str(self.register_wh),
                "measurand": "Energy.Active.Import.Register",
                "unit": "Wh",
                "context": "Sample.Periodic",
                "location": "Outlet",
            },
            {
                "value": str(power_w),
                "measurand": "Power.Active.Import",
                "unit": "W",
                "context": "Sample.Periodic",
            },
        ]
        if conn.transaction_id is not None:
            sampled.append(
                {
                    "value": f"{conn.soc:.0f}",
                    "measurand": "SoC",
                    "unit": "Percent",
                    "location": "EV",
                    "context": "Sample.Periodic",
                }
            )
        payload: dict[str, Any] = {
            "connectorId": conn.connector_id,
            "meterValue": [{"timestamp": to_ocpp(utcnow()), "sampledValue": sampled}],
        }
        if conn.transaction_id is not None:
            payload["transactionId"] = conn.transaction_id
        await self.call_transactional("MeterValues", payload)

    def power_at(self, conn: SimConnector) -> int:
        """A DC-style taper: full power to 50 % SoC, then falling to a quarter at 100 %."""
        if conn.soc < 50:
            factor = 1.0
        else:
            factor = max(0.25, 1.0 - (conn.soc - 50) / 50 * 0.75)
        return int(conn.max_power_w * factor * self.rng.uniform(0.95, 1.0))

    async def run_session(self, connector_id: int, id_tag: str) -> int | None:
        """Plug in, start, meter until the target SoC or a stop request, stop, unplug."""
        conn = self.connectors[connector_id]
        if conn.transaction_id is not None:
            return None
        conn.soc = self.rng.uniform(10, 40)
        conn.target_soc = self.rng.uniform(70, 95)
        conn.battery_wh = self.rng.choice([40_000, 60_000, 77_000, 100_000])
        conn.stop_requested = False
        await self.status(connector_id, "Preparing")
        result = await self.call_transactional(
            "StartTransaction",
            {
                "connectorId": connector_id,
                "idTag": id_tag,
                "meterStart": self.register_wh,
                "timestamp": to_ocpp(utcnow()),
            },
        )
        if result["idTagInfo"]["status"] != "Accepted":
            await self.call(
                "StopTransaction",
                {
                    "transactionId": result["transactionId"],
                    "meterStop": self.register_wh,
                    "timestamp": to_ocpp(utcnow()),
                    "reason": "DeAuthorized",
                },
            )
            await self.status(connector_id, "Available")
            return None
        conn.transaction_id, conn.id_tag = result["transactionId"], id_tag
        await self.status(connector_id, "Charging")
        step_real = self.cfg.meter_interval_s / self.cfg.speed
        reason = "Local"
        while not self._stopping:
            await asyncio.sleep(step_real)
            if conn.stop_requested:
                reason = "Remote"
                break
            power = self.power_at(conn)
            delta_wh = int(power * self.cfg.meter_interval_s / 3600)
            self.register_wh += delta_wh
            conn.soc = min(100.0, conn.soc + delta_wh / conn.battery_wh * 100)
            await self.meter(conn, power)
            if conn.soc >= conn.target_soc:
                reason = "EVDisconnected"
                break
        tx_id = conn.transaction_id
        await self.call_transactional(
            "StopTransaction",
            {
                "transactionId": tx_id,
                "meterStop": self.register_wh,
                "timestamp": to_ocpp(utcnow()),
                "idTag": id_tag,
                "reason": reason,
            },
        )
        conn.transaction_id = None
        await self.status(connector_id, "Finishing")
        await self.status(connector_id, "Available")
        return tx_id

    # -- life cycle -------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.heartbeat_interval / self.cfg.speed)
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
            self._spawn(self.run_session(conn.connector_id, self.rng.choice(self.cfg.id_tags)))

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
        await self.status(0, "Available")
        for cid, conn in self.connectors.items():
            await self.status(cid, "Available" if conn.transaction_id is None else "Charging")

    async def run(self) -> None:
        """Stay connected until `close()`, reconnecting with backoff like a real charger."""
        backoff = 1.0
        while not self._stopping:
            try:
                await self.start()
                backoff = 1.0
                workers = [self._spawn(self._heartbeats())]
                if self.cfg.auto_sessions:
                    workers.append(self._spawn(self._autopilot()))
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
            await asyncio.sleep(backoff * self.rng.uniform(0.5, 1.5))
            backoff = min(backoff * 2, 60.0)
