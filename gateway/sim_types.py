"""What the simulator's modules share: its CALLERROR exception, a command's reply, and the
names of the OCPP 1.6 feature profiles with the central-system messages each one brings.

Kept apart from gateway/simulator.py so the command modules (sim_*.py) can use them without
importing the charger they serve.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any


class CallError(Exception):
    """Raised by a command handler (or an `on_call` hook) to answer with a CALLERROR."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


# Something the charger does once its answer has left (OCPP 1.6 §4: a triggered message, a
# status change or a reboot follows the .conf that announced it, never precedes it).
FollowUp = Callable[[], Coroutine[Any, Any, Any]]


@dataclass
class Reply:
    """A command's CALLRESULT payload and what the charger does after sending it."""

    payload: dict[str, Any]
    then: list[FollowUp] = field(default_factory=list)


CORE = "Core"
FIRMWARE_MANAGEMENT = "FirmwareManagement"
LOCAL_AUTH_LIST_MANAGEMENT = "LocalAuthListManagement"
RESERVATION = "Reservation"
SMART_CHARGING = "SmartCharging"
REMOTE_TRIGGER = "RemoteTrigger"

# OCPP 1.6 §3 (feature profiles), in the order the spec lists them.
FEATURE_PROFILES: tuple[str, ...] = (
    CORE,
    FIRMWARE_MANAGEMENT,
    LOCAL_AUTH_LIST_MANAGEMENT,
    RESERVATION,
    SMART_CHARGING,
    REMOTE_TRIGGER,
)

# Every central-system-initiated 1.6 message and the profile that brings it (OCPP 1.6 §3).
ACTION_PROFILES: dict[str, str] = {
    "ChangeAvailability": CORE,
    "ChangeConfiguration": CORE,
    "ClearCache": CORE,
    "DataTransfer": CORE,
    "GetConfiguration": CORE,
    "RemoteStartTransaction": CORE,
    "RemoteStopTransaction": CORE,
    "Reset": CORE,
    "UnlockConnector": CORE,
    "GetDiagnostics": FIRMWARE_MANAGEMENT,
    "UpdateFirmware": FIRMWARE_MANAGEMENT,
    "GetLocalListVersion": LOCAL_AUTH_LIST_MANAGEMENT,
    "SendLocalList": LOCAL_AUTH_LIST_MANAGEMENT,
    "ReserveNow": RESERVATION,
    "CancelReservation": RESERVATION,
    "SetChargingProfile": SMART_CHARGING,
    "ClearChargingProfile": SMART_CHARGING,
    "GetCompositeSchedule": SMART_CHARGING,
    "TriggerMessage": REMOTE_TRIGGER,
}
