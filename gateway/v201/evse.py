"""OCPP 2.0.1 EVSEs and connectors as ChargeNet connectors, and their statuses.

ChargeNet's connector is the unit a session runs on, which 2.0.1 calls the EVSE (DESIGN.md:
"OCPP 1.6 has no EVSE level: treat each connector as an EVSE"). So:

* **EVSE id = ChargeNet connector id.** The common case, one connector per EVSE, maps 1:1.
* **Several connectors on one EVSE** (a DC post with CCS and CHAdeMO cables) are one ChargeNet
  connector. Only one of them can be in use at a time (2.0.1 §2.1: one transaction per EVSE),
  so the EVSE's status folds its connectors': Occupied if any is occupied, else Faulted if any
  is faulted (an operator must see it), else Reserved, else Available if any is available,
  else Unavailable. Commands that name a connector (UnlockConnector) use the EVSE's connector 1.
* **EVSE 0** (not a real EVSE in 2.0.1) is the station as a whole, ChargeNet connector 0.

2.0.1 reports "Occupied" where 1.6 said Preparing, Charging, SuspendedEV/EVSE or Finishing; the
charging state comes in TransactionEvent.transactionInfo.chargingState instead. ChargeNet keeps
the 1.6 words (schema.enums.ConnectorStatus), so nothing above the gateway sees a difference.
"""

from __future__ import annotations

from gateway.state import StationContext

# 2.0.1 StatusNotification carries no error code; a faulted connector gets 1.6's generic one.
FAULT_ERROR_CODE = "OtherError"
NO_ERROR = "NoError"
PREPARING = "Preparing"
FINISHING = "Finishing"
OCCUPIED = "Occupied"
# ChargeNet statuses that mean "something is plugged in", in the 1.6 words.
IN_USE = frozenset({PREPARING, "Charging", "SuspendedEV", "SuspendedEVSE", FINISHING})
# How the statuses of an EVSE's connectors fold into one (first found wins).
PRECEDENCE = (OCCUPIED, "Faulted", "Reserved", "Available", "Unavailable")
# TransactionEvent chargingState → ChargeNet status while the session runs. Idle (no EV) says
# nothing the StatusNotification that follows will not say better.
CHARGING_STATES = {
    "Charging": "Charging",
    "SuspendedEV": "SuspendedEV",
    "SuspendedEVSE": "SuspendedEVSE",
    "EVConnected": PREPARING,
}


class EvseStatuses:
    """What each connector of each EVSE of one station last reported (per connection: a
    station reports every connector after each boot, 2.0.1 B01.FR.06)."""

    def __init__(self) -> None:
        self._reported: dict[tuple[int, int], str] = {}

    def report(self, evse_id: int, connector_id: int, status: str) -> str:
        """Note one connector's status; return its EVSE's folded 2.0.1 status."""
        self._reported[(evse_id, connector_id)] = status
        mine = {s for (e, _c), s in self._reported.items() if e == evse_id}
        # The schema admits exactly the PRECEDENCE words.
        return next(s for s in PRECEDENCE if s in mine)


def chargenet_status(ctx: StationContext, connector_id: int, evse_status: str) -> str:
    """A folded 2.0.1 EVSE status in ChargeNet's words. Occupied keeps whatever in-use status
    the connector has (Charging stays Charging when the cable is reported again)."""
    if evse_status != OCCUPIED:
        return evse_status
    view = ctx.connectors.get(connector_id)
    return view.status if view is not None and view.status in IN_USE else PREPARING


def charging_status(charging_state: str | None, *, ended: bool) -> str | None:
    """The ChargeNet status a TransactionEvent's chargingState implies, if any."""
    if charging_state is None:
        return None
    if ended:
        return FINISHING if charging_state == "EVConnected" else None
    return CHARGING_STATES.get(charging_state)


def error_code(status: str) -> str:
    return FAULT_ERROR_CODE if status == "Faulted" else NO_ERROR
