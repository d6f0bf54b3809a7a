"""A charging station simulator speaking OCPP 2.0.1 over a real WebSocket.

SimCharger201 is the 1.6 SimCharger (gateway/simulator.py: connection, reconnects with
backoff, heartbeats, autopilot, the `on_call` hook) with the 2.0.1 messages: BootNotification
with a reason, StatusNotification per EVSE and connector (one connector per EVSE, connectorId
1), sessions as TransactionEvents with seqNo and an offline queue (gateway/sim_v201_session.py),
a device model (gateway/sim_v201_device.py) and every 2.0.1 CSMS message ChargeNet sends
(gateway/sim_v201_commands.py). The version-neutral helpers of the 1.6 charger are shared:
local list and cache, reservations, charging profiles, firmware and log transfers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections import deque
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed

from gateway.sim_types import CallError
from gateway.sim_v201_commands import SimCommands201
from gateway.sim_v201_device import DeviceModel
from gateway.sim_v201_session import meter_value, run_session
from gateway.simulator import NO_ANSWER, SimCharger, SimConfig, SimConnector
from schema.timeutil import to_ocpp, utcnow

log = logging.getLogger(__name__)

__all__ = ["NO_ANSWER", "CallError", "Evse", "SimCharger201", "SimConfig"]

# Internal (1.6-worded) connector statuses as 2.0.1 ConnectorStatusEnumType; the rest is Occupied.
CONNECTOR_STATUS = {
    "Available": "Available",
    "Reserved": "Reserved",
    "Unavailable": "Unavailable",
    "Faulted": "Faulted",
}
OCCUPIED = "Occupied"
IDLE_POLL_S = 0.05  # real seconds between checks that a reset OnIdle may go ahead
CONNECTOR_ID = 1  # each simulated EVSE has one connector
# The 1.6 notifications the shared helpers send, in 2.0.1 words.
LOG_STATUS = {"UploadFailed": "UploadFailure"}


@dataclass
class Evse(SimConnector):
    """A simulated EVSE (with its one connector): the 1.6 connector plus 2.0.1 session state."""

    tx_id: str | None = None
    seq_no: int = 0
    reported: str | None = None  # the 2.0.1 connector status last sent


class TransactionQueue:
    """TransactionEvents in the order they happened (2.0.1 E04/E08): sent one by one, kept
    while the connection is down and sent after the reconnect with offline=true, resent
    unchanged when a reply is lost."""

    def __init__(self, charger: SimCharger201) -> None:
        self.cp = charger
        self.items: deque[tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]] = deque()
        self._task: asyncio.Task[Any] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def holds(self, tx_id: str) -> bool:
        return any(p["transactionInfo"]["transactionId"] == tx_id for p, _ in self.items)

    def put(self, payload: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        if not self.cp.online.is_set():
            payload["offline"] = True
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.items.append((payload, future))
        if self._task is None or self._task.done():
            self._task = self.cp.spawn(self._send())
        return future

    async def _send(self) -> None:
        while self.items:
            payload, future = self.items[0]
            try:
                result = await self.cp.call_transactional("TransactionEvent", payload)
            except CallError as exc:  # the CSMS refused it: resending would not help
                log.warning("%s: TransactionEvent refused: %s", self.cp.cfg.charge_point_id, exc)
                result = {}
            self.items.popleft()
            if not future.done():
                future.set_result(result)


class SimCharger201(SimCharger):
    """One OCPP 2.0.1 charging station; `charge()` runs a session, `run()` keeps it connected."""

    SUBPROTOCOL = "ocpp2.0.1"

    def __init__(self, config: SimConfig, *, rng: random.Random | None = None) -> None:
        super().__init__(config, rng=rng)
        self.evses = {cid: Evse(cid, c.max_power_w) for cid, c in self.connectors.items()}
        self.connectors = {cid: evse for cid, evse in self.evses.items()}
        self.device = DeviceModel(self)
        self.commands = SimCommands201(self)
        self.tx_queue = TransactionQueue(self)
        # Why the next BootNotification happens (2.0.1 BootReasonEnumType).
        self.boot_reason = "PowerUp"
        # requestId of the firmware update and the log upload under way (their notifications carry it).
        self.firmware_request_id: int | None = None
        self.log_request_id: int | None = None
        self._sessions = itertools.count(1)

    def next_session_number(self) -> int:
        """A local number marking an EVSE busy (the shared helpers test transaction_id)."""
        return next(self._sessions)

    def evse_of(self, tx_id: str) -> Evse | None:
        return next((e for e in self.evses.values() if e.tx_id == tx_id), None)

    def availability(self, evse_id: int) -> str:
        """AvailabilityState of the station (0) or an EVSE, as the device model reports it."""
        conn = self.evses.get(evse_id)
        status = self.idle_status(0) if conn is None else conn.status
        return CONNECTOR_STATUS.get(status, OCCUPIED)

    # -- charger → CSMS ---------------------------------------------------------------------

    async def boot(self) -> dict[str, Any]:
        station = {
            "model": self.cfg.model,
            "vendorName": self.cfg.vendor,
            "serialNumber": f"SN-{self.cfg.charge_point_id}"[:25],
            "firmwareVersion": self.firmware_version,
        }
        result = await self.call("BootNotification", {"chargingStation": station, "reason": self.boot_reason})
        self.set_heartbeat_interval(float(self.cfg.heartbeat_interval_s or result["interval"] or 300))
        if result["status"] == "Accepted":
            self.boot_reason = "PowerUp"  # what a later boot says unless something else caused it
            self.booted.set()
        return result

    async def start(self) -> None:
        """Connect, boot until accepted, and report every connector (2.0.1 B01.FR.06)."""
        for evse in self.evses.values():
            evse.reported = None
        await super().start()

    async def status(self, connector_id: int, status: str, error_code: str = "NoError", **extra: Any) -> None:
        """Note an EVSE's status; report it when its 2.0.1 connector status changes (Preparing,
        Charging and Finishing are all Occupied: the charging state goes in TransactionEvent)."""
        conn = self.evses.get(connector_id)
        if conn is None:  # 2.0.1 has no status for the station as a whole
            return
        conn.status = status
        self.files.note(f"status evse {connector_id} {status}")
        reported = CONNECTOR_STATUS.get(status, OCCUPIED)
        if reported == conn.reported:
            return
        payload = {
            "timestamp": to_ocpp(utcnow()),
            "connectorStatus": reported,
            "evseId": connector_id,
            "connectorId": CONNECTOR_ID,
        }
        try:
            await self.call("StatusNotification", payload)
            conn.reported = reported
        except (ConnectionError, ConnectionClosed, AssertionError, CallError, TimeoutError, OSError):
            log.debug("%s: status %s not sent (offline)", self.cfg.charge_point_id, status)

    async def notify(self, action: str, payload: dict[str, Any]) -> None:
        """The shared helpers' 1.6 notifications, in 2.0.1 words with their requestId."""
        if action == "FirmwareStatusNotification":
            if payload["status"] == "Installed":
                self.boot_reason = "FirmwareUpdate"
            if self.firmware_request_id is not None:
                payload = {**payload, "requestId": self.firmware_request_id}
        elif action == "DiagnosticsStatusNotification":
            action = "LogStatusNotification"
            payload = {"status": LOG_STATUS.get(payload["status"], payload["status"])}
            if self.log_request_id is not None:
                payload["requestId"] = self.log_request_id
        await super().notify(action, payload)

    def transaction_event(
        self,
        conn: Evse,
        event_type: str,
        trigger: str,
        *,
        meter: list[dict[str, Any]] | None = None,
        id_token: dict[str, Any] | None = None,
        charging_state: str | None = None,
        stopped_reason: str | None = None,
        reservation_id: int | None = None,
        remote_start_id: int | None = None,
        evse: bool = False,
    ) -> asyncio.Future[dict[str, Any]]:
        """Queue one TransactionEvent of the session on `conn` (its seqNo is the next one)."""
        assert conn.tx_id is not None
        info: dict[str, Any] = {"transactionId": conn.tx_id}
        for key, value in (
            ("chargingState", charging_state),
            ("stoppedReason", stopped_reason),
            ("remoteStartId", remote_start_id),
        ):
            if value is not None:
                info[key] = value
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": to_ocpp(utcnow()),
            "triggerReason": trigger,
            "seqNo": conn.seq_no,
            "transactionInfo": info,
        }
        conn.seq_no += 1
        if evse:
            payload["evse"] = {"id": conn.connector_id, "connectorId": CONNECTOR_ID}
        if id_token is not None:
            payload["idToken"] = id_token
        if meter:
            payload["meterValue"] = meter
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        return self.tx_queue.put(payload)

    async def meter(self, conn: SimConnector, power_w: int) -> None:
        """A periodic reading: in a session a TransactionEvent Updated, else MeterValues."""
        evse = self.evses.get(conn.connector_id)
        if evse is not None and evse.tx_id is not None:
            self.transaction_event(
                evse,
                "Updated",
                "MeterValuePeriodic",
                meter=meter_value(self, evse, power_w, "Sample.Periodic"),
            )
            return
        reading = meter_value(self, evse or Evse(0, self.rated_w), power_w, "Trigger")
        await self.notify("MeterValues", {"evseId": conn.connector_id, "meterValue": reading})

    async def meter_now(self, connector_id: int) -> None:
        """A triggered reading (TriggerMessage MeterValues / TransactionEvent)."""
        evse = self.evses.get(connector_id)
        if evse is not None and evse.tx_id is not None:
            self.transaction_event(
                evse, "Updated", "Trigger", meter=meter_value(self, evse, evse.power_w, "Trigger")
            )
            return
        await self.meter(evse or Evse(0, self.rated_w), evse.power_w if evse else 0)

    # -- sessions ---------------------------------------------------------------------------

    async def charge(
        self,
        evse_id: int,
        id_tag: str,
        *,
        charging_profile: dict[str, Any] | None = None,
        remote_start_id: int | None = None,
    ) -> str | None:
        """Run one session on an EVSE; returns its transaction id (None: it could not start)."""
        return await run_session(
            self, evse_id, id_tag, charging_profile=charging_profile, remote_start_id=remote_start_id
        )

    async def run_session(
        self,
        connector_id: int,
        id_tag: str,
        *,
        charging_profile: dict[str, Any] | None = None,
        remote: bool = False,
    ) -> int | None:
        """The 1.6 entry point (autopilot): runs `charge`; the result is only whether it ran."""
        tx_id = await self.charge(connector_id, id_tag, charging_profile=charging_profile)
        return None if tx_id is None else 1

    async def stop_when_idle(self) -> None:
        """Reset OnIdle: reboot once no session runs and every TransactionEvent is delivered."""
        while any(e.transaction_id is not None for e in self.evses.values()) or self.tx_queue:
            self.session_ended.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.session_ended.wait(), IDLE_POLL_S)
        self.boot_reason = "RemoteReset"
        await self.reboot()
