"""How the simulated charger answers each OCPP 1.6 central-system message (all six feature
profiles, OCPP 1.6 §5), as a real charger would.

A message of a feature profile the charger does not list in SimConfig.feature_profiles gets a
CALLERROR NotSupported, with one exception the spec makes: GetLocalListVersion answers -1
(§5.10, "the Charge Point does not support Local Authorization Lists"). Requests are checked
against the 1.6 JSON schemas first, as the gateway checks what chargers send.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from gateway.sim_reservations import BUSY
from gateway.sim_smart import TX_PROFILE, TooManyPeriods
from gateway.sim_types import (
    ACTION_PROFILES,
    FIRMWARE_MANAGEMENT,
    LOCAL_AUTH_LIST_MANAGEMENT,
    CallError,
    FollowUp,
    Reply,
)
from gateway.validation import PayloadInvalid, validate
from schema.timeutil import to_ocpp, utcnow

if TYPE_CHECKING:
    from gateway.simulator import SimCharger, SimConnector

Handler = Callable[[dict[str, Any]], Reply]


def _status(status: str) -> Reply:
    return Reply({"status": status})


class SimCommands:
    """The central system → charger side of one SimCharger."""

    def __init__(self, charger: SimCharger) -> None:
        self.cp = charger
        self.handlers: dict[str, Handler] = {
            "ChangeAvailability": self.change_availability,
            "ChangeConfiguration": self.change_configuration,
            "ClearCache": self.clear_cache,
            "DataTransfer": self.data_transfer,
            "GetConfiguration": self.get_configuration,
            "RemoteStartTransaction": self.remote_start,
            "RemoteStopTransaction": self.remote_stop,
            "Reset": self.reset,
            "UnlockConnector": self.unlock_connector,
            "GetDiagnostics": self.cp.files.get_diagnostics,
            "UpdateFirmware": self.cp.files.update_firmware,
            "GetLocalListVersion": self.get_local_list_version,
            "SendLocalList": self.send_local_list,
            "ReserveNow": self.cp.reservations.reserve_now,
            "CancelReservation": self.cp.reservations.cancel,
            "SetChargingProfile": self.set_charging_profile,
            "ClearChargingProfile": self.clear_charging_profile,
            "GetCompositeSchedule": self.get_composite_schedule,
            "TriggerMessage": self.trigger,
        }
        assert self.handlers.keys() == ACTION_PROFILES.keys()

    def handle(self, action: str, payload: dict[str, Any]) -> Reply:
        """The reply to one CALL; raises CallError for a CALLERROR."""
        handler = self.handlers.get(action)
        if handler is None:
            raise CallError("NotImplemented", f"{action} not simulated")
        profile = ACTION_PROFILES[action]
        if profile not in self.cp.cfg.feature_profiles and action != "GetLocalListVersion":
            raise CallError("NotSupported", f"{action} needs the {profile} feature profile")
        try:
            validate("v16", action, payload)
        except PayloadInvalid as exc:
            raise CallError(exc.ocpp_code, exc.description) from None
        return handler(payload)

    def _connector(self, connector_id: int | None) -> SimConnector | None:
        return self.cp.connectors.get(connector_id) if connector_id is not None else None

    # -- Core -------------------------------------------------------------------------------

    def change_availability(self, p: dict[str, Any]) -> Reply:
        """§5.2: Scheduled when a session runs on an affected connector (it changes when the
        session ends); each connector whose status changes reports it."""
        cid, operative = p["connectorId"], p["type"] == "Operative"
        if cid != 0 and cid not in self.cp.connectors:
            return _status("Rejected")
        affected = list(self.cp.connectors) if cid == 0 else [cid]
        charger_was = self.cp.idle_status(0)
        if operative:
            self.cp.inoperative.difference_update([cid, *affected] if cid == 0 else [cid])
        else:
            self.cp.inoperative.add(cid)
        busy = any(self.cp.connectors[c].transaction_id is not None for c in affected)
        then: list[FollowUp] = []
        if cid == 0 and self.cp.idle_status(0) != charger_was:
            then.append(partial(self.cp.status, 0, self.cp.idle_status(0)))
        for c in affected:
            conn = self.cp.connectors[c]
            idle = conn.transaction_id is None and conn.status not in BUSY and conn.status != "Faulted"
            if idle and conn.status != self.cp.idle_status(c):
                then.append(partial(self.cp.status, c, self.cp.idle_status(c)))
        return Reply({"status": "Scheduled" if busy and not operative else "Accepted"}, then)

    def change_configuration(self, p: dict[str, Any]) -> Reply:
        key, value = p["key"], p["value"]
        status = self.cp.config.change(key, value)
        if status == "Accepted":
            name = key.lower()
            if name == "heartbeatinterval":
                self.cp.set_heartbeat_interval(float(int(value)))
            elif name == "metervaluesampleinterval":
                self.cp.cfg.meter_interval_s = float(int(value))
            elif name == "authorizationkey":
                # Security whitepaper: the new key is the Basic-auth password from the next
                # connection on; this one stays up.
                self.cp.cfg.password = value
        return _status(status)

    def clear_cache(self, _p: dict[str, Any]) -> Reply:
        self.cp.local_auth.clear_cache()
        return _status("Accepted")

    def data_transfer(self, p: dict[str, Any]) -> Reply:
        """Vendor extensions of this charger's vendor (and SimConfig.data_transfer_vendor_ids)
        are understood and echo their data; anything else is UnknownVendorId (§5.6)."""
        known = {self.cp.cfg.vendor, *self.cp.cfg.data_transfer_vendor_ids}
        if p["vendorId"] not in known:
            return _status("UnknownVendorId")
        result: dict[str, Any] = {"status": "Accepted"}
        if "data" in p:
            result["data"] = p["data"]
        return Reply(result)

    def get_configuration(self, p: dict[str, Any]) -> Reply:
        return Reply(self.cp.config.get_configuration(p.get("key")))

    def remote_start(self, p: dict[str, Any]) -> Reply:
        """§5.11: Rejected when the connector cannot take a session for this tag (busy,
        faulted, unavailable, reserved for someone else) or the chargingProfile is not a
        TxProfile; the session itself follows the Accepted."""
        id_tag, profile = p["idTag"], p.get("chargingProfile")
        if profile is not None and profile["chargingProfilePurpose"] != TX_PROFILE:
            return _status("Rejected")
        parent = self.cp.local_auth.parent_of(id_tag)
        cid = p.get("connectorId")
        conn = self._connector(self._pick_connector(id_tag, parent) if cid is None else cid)
        if (
            conn is None
            or conn.transaction_id is not None
            or conn.status in ("Faulted", "Unavailable")
            or self.cp.is_inoperative(conn.connector_id)
        ):
            return _status("Rejected")
        admitted, _ = self.cp.reservations.admit(conn.connector_id, id_tag, parent)
        if not admitted and not (parent is None and self.cp.reservations.needs_parent()):
            return _status("Rejected")
        return Reply(
            {"status": "Accepted"},
            [lambda: self.cp.run_session(conn.connector_id, id_tag, charging_profile=profile, remote=True)],
        )

    def _pick_connector(self, id_tag: str, parent: str | None) -> int | None:
        """A connector reserved for this tag, else the first free one."""
        idle = [
            c
            for c in self.cp.connectors.values()
            if c.transaction_id is None
            and c.status in ("Available", "Preparing", "Reserved")
            and not self.cp.is_inoperative(c.connector_id)
        ]
        for conn in idle:
            held = self.cp.reservations.on(conn.connector_id)
            if held is not None and held.admits(id_tag, parent):
                return conn.connector_id
        return next((c.connector_id for c in idle if self.cp.reservations.on(c.connector_id) is None), None)

    def remote_stop(self, p: dict[str, Any]) -> Reply:
        for conn in self.cp.connectors.values():
            if conn.transaction_id == p["transactionId"]:
                self.cp.request_stop(conn, "Remote")
                return _status("Accepted")
        return _status("Rejected")

    def reset(self, p: dict[str, Any]) -> Reply:
        return Reply({"status": "Accepted"}, [lambda: self.cp.reset(p["type"])])

    def unlock_connector(self, p: dict[str, Any]) -> Reply:
        """§5.18: a session on the connector is stopped (reason UnlockCommand) first. A
        tethered cable has no lock to open (NotSupported); a jammed lock stays shut."""
        cid = p["connectorId"]
        conn = self._connector(cid)
        if conn is None or cid in self.cp.cfg.fixed_cable_connectors:
            return _status("NotSupported")
        if conn.transaction_id is not None:
            self.cp.request_stop(conn, "UnlockCommand")
        return _status("UnlockFailed" if cid in self.cp.cfg.jammed_lock_connectors else "Unlocked")

    # -- Local Auth List Management -------------------------------------------------------

    def _local_list_enabled(self) -> bool:
        return LOCAL_AUTH_LIST_MANAGEMENT in self.cp.cfg.feature_profiles and self.cp.config.flag(
            "LocalAuthListEnabled"
        )

    def get_local_list_version(self, _p: dict[str, Any]) -> Reply:
        return Reply({"listVersion": self.cp.local_auth.list_version(enabled=self._local_list_enabled())})

    def send_local_list(self, p: dict[str, Any]) -> Reply:
        if not self._local_list_enabled():  # its limits are not even configured then
            return _status("NotSupported")
        status = self.cp.local_auth.send_local_list(
            p,
            enabled=self._local_list_enabled(),
            max_send=self.cp.config.number("SendLocalListMaxLength"),
            max_length=self.cp.config.number("LocalAuthListMaxLength"),
        )
        return _status(status)

    # -- Smart Charging -------------------------------------------------------------------

    def set_charging_profile(self, p: dict[str, Any]) -> Reply:
        conn = self._connector(p["connectorId"])
        status = self.cp.profiles.install(
            p["connectorId"],
            p["csChargingProfiles"],
            active_transaction=conn.transaction_id if conn is not None else None,
            connector_ids=self.cp.connectors.keys(),
            rate_units=self.cp.cfg.charging_rate_units,
            now=utcnow(),
        )
        return _status(status)

    def clear_charging_profile(self, p: dict[str, Any]) -> Reply:
        status = self.cp.profiles.clear(
            profile_id=p.get("id"),
            connector_id=p.get("connectorId"),
            purpose=p.get("chargingProfilePurpose"),
            stack_level=p.get("stackLevel"),
        )
        return _status(status)

    def get_composite_schedule(self, p: dict[str, Any]) -> Reply:
        cid, duration, unit = p["connectorId"], p["duration"], p.get("chargingRateUnit")
        conn = self._connector(cid)
        if (
            (cid != 0 and conn is None)
            or duration <= 0
            or (unit and unit not in self.cp.cfg.charging_rate_units)
        ):
            return _status("Rejected")
        start = utcnow().replace(microsecond=0)
        try:
            schedule = self.cp.profiles.composite(
                cid,
                start=start,
                duration_s=duration,
                unit=unit,
                transaction_start=conn.tx_started_at if conn is not None else None,
                rated_w=conn.max_power_w if conn is not None else self.cp.rated_w,
            )
        except TooManyPeriods:
            return _status("Rejected")
        return Reply(
            {
                "status": "Accepted",
                "connectorId": cid,
                "scheduleStart": to_ocpp(start),
                "chargingSchedule": schedule,
            }
        )

    # -- Remote Trigger -------------------------------------------------------------------

    def trigger(self, p: dict[str, Any]) -> Reply:
        """§5.17: the requested message follows the Accepted; Rejected for a connector this
        charger does not have."""
        what, cid = p["requestedMessage"], p.get("connectorId")
        if cid is not None and cid != 0 and cid not in self.cp.connectors:
            return _status("Rejected")
        cp = self.cp
        targets = [cid] if cid is not None else list(cp.connectors)
        then: list[FollowUp]
        if what == "Heartbeat":
            then = [partial(cp.notify, "Heartbeat", {})]
        elif what == "BootNotification":
            then = [cp.boot]
        elif what == "StatusNotification":
            then = [partial(cp.status, c, cp.current_status(c)) for c in targets]
        elif what == "MeterValues":
            then = [partial(cp.meter_now, c) for c in targets]
        elif what in ("FirmwareStatusNotification", "DiagnosticsStatusNotification"):
            if FIRMWARE_MANAGEMENT not in cp.cfg.feature_profiles:
                return _status("NotImplemented")
            files = cp.files
            status = (
                files.firmware_status if what == "FirmwareStatusNotification" else files.diagnostics_status
            )
            then = [partial(cp.notify, what, {"status": status})]
        else:
            return _status("NotImplemented")
        return Reply({"status": "Accepted"}, then)
