"""How the simulated 2.0.1 charger answers each CSMS message ChargeNet sends, as a real one
would. Requests are checked against the 2.0.1 JSON schemas first.

The 1.6 logic that is the same in 2.0.1 is reused by translating the request into the 1.6
shape the shared helper takes (availability, data transfer, local list, reservations, charging
profiles, composite schedules, firmware and log transfers) and its answer back.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from gateway.sim_commands import SimCommands
from gateway.sim_types import CallError, FollowUp, Reply
from gateway.sim_v201_device import ITEMS_PER_MESSAGE, parts
from gateway.sim_v201_session import tag_info
from gateway.validation import PayloadInvalid, validate
from schema.timeutil import utcnow

if TYPE_CHECKING:
    from gateway.sim_v201 import Evse, SimCharger201

# 2.0.1 charging profile purposes in the 1.6 words the shared ChargingProfiles keeps.
PURPOSES_16 = {"ChargingStationMaxProfile": "ChargePointMaxProfile"}
# TriggerMessage messages the simulated charger sends on request.
TRIGGERABLE = frozenset(
    {
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "MeterValues",
        "TransactionEvent",
        "FirmwareStatusNotification",
        "LogStatusNotification",
    }
)


def _status(status: str, then: list[FollowUp] | None = None) -> Reply:
    return Reply({"status": status}, then or [])


def profile_16(profile: dict[str, Any]) -> dict[str, Any]:
    """A 2.0.1 chargingProfile in the 1.6 shape (its first schedule; ids as given)."""
    schedule = {k: v for k, v in profile["chargingSchedule"][0].items() if k not in ("id", "salesTariff")}
    converted = {
        "chargingProfileId": profile["id"],
        "stackLevel": profile["stackLevel"],
        "chargingProfilePurpose": PURPOSES_16.get(
            profile["chargingProfilePurpose"], profile["chargingProfilePurpose"]
        ),
        "chargingProfileKind": profile["chargingProfileKind"],
        "chargingSchedule": schedule,
    }
    for key in ("recurrencyKind", "validFrom", "validTo", "transactionId"):
        if key in profile:
            converted[key] = profile[key]
    return converted


class SimCommands201(SimCommands):
    """The CSMS → charger side of one SimCharger201."""

    def __init__(self, charger: SimCharger201) -> None:
        super().__init__(charger)
        self.cp201 = charger
        self.handlers = {
            "GetVariables": self.get_variables,
            "SetVariables": self.set_variables,
            "GetBaseReport": self.get_base_report,
            "RequestStartTransaction": self.request_start,
            "RequestStopTransaction": self.request_stop,
            "Reset": self.reset,
            "UnlockConnector": self.unlock_connector,
            "ChangeAvailability": self.change_availability,
            "ClearCache": self.clear_cache,
            "DataTransfer": self.data_transfer,
            "TriggerMessage": self.trigger,
            "UpdateFirmware": self.update_firmware,
            "GetLog": self.get_log,
            "SendLocalList": self.send_local_list,
            "GetLocalListVersion": self.get_local_list_version,
            "ReserveNow": self.reserve_now,
            "CancelReservation": self.cp.reservations.cancel,
            "SetChargingProfile": self.set_charging_profile,
            "ClearChargingProfile": self.clear_charging_profile,
            "GetCompositeSchedule": self.get_composite_schedule,
            "GetTransactionStatus": self.get_transaction_status,
        }

    def handle(self, action: str, payload: dict[str, Any]) -> Reply:
        handler = self.handlers.get(action)
        if handler is None:
            raise CallError("NotImplemented", f"{action} not simulated")
        try:
            validate("v201", action, payload)
        except PayloadInvalid as exc:
            raise CallError(exc.ocpp_code, exc.description) from None
        return handler(payload)

    def _evse(self, evse_id: int | None) -> Evse | None:
        return self.cp201.evses.get(evse_id) if evse_id is not None else None

    # -- device model ----------------------------------------------------------------------

    def get_variables(self, p: dict[str, Any]) -> Reply:
        items = p["getVariableData"]
        if len(items) > ITEMS_PER_MESSAGE:
            raise CallError("OccurrenceConstraintViolation", f"at most {ITEMS_PER_MESSAGE} variables")
        return Reply({"getVariableResult": [self.cp201.device.get(i) for i in items]})

    def set_variables(self, p: dict[str, Any]) -> Reply:
        items = p["setVariableData"]
        if len(items) > ITEMS_PER_MESSAGE:
            raise CallError("OccurrenceConstraintViolation", f"at most {ITEMS_PER_MESSAGE} variables")
        return Reply({"setVariableResult": [self.cp201.device.set(i) for i in items]})

    def get_base_report(self, p: dict[str, Any]) -> Reply:
        """B07: Accepted, then the report in NotifyReport parts (seqNo from 0, tbc until the last)."""
        items = self.cp201.device.report(p["reportBase"])
        if not items:
            return _status("EmptyResultSet")
        return _status("Accepted", [partial(self._notify_report, p["requestId"], items)])

    async def _notify_report(self, request_id: int, items: list[dict[str, Any]]) -> None:
        chunks = parts(items)
        for seq_no, chunk in enumerate(chunks):
            payload: dict[str, Any] = {
                "requestId": request_id,
                "generatedAt": utcnow().isoformat().replace("+00:00", "Z"),
                "seqNo": seq_no,
                "tbc": seq_no < len(chunks) - 1,
                "reportData": chunk,
            }
            await self.cp.notify("NotifyReport", payload)

    # -- transactions ----------------------------------------------------------------------

    def request_start(self, p: dict[str, Any]) -> Reply:
        """F01: Rejected when no EVSE can take a session for this token, or the profile is not
        a TxProfile; the session (TransactionEvent Started, remoteStartId) follows."""
        token, profile = p["idToken"]["idToken"], p.get("chargingProfile")
        if profile is not None and profile["chargingProfilePurpose"] != "TxProfile":
            return _status("Rejected")
        parent = self.cp.local_auth.parent_of(token)
        evse_id = p.get("evseId")
        conn = self._evse(self._pick_connector(token, parent) if evse_id is None else evse_id)
        if (
            conn is None
            or conn.transaction_id is not None
            or conn.status in ("Faulted", "Unavailable")
            or self.cp.is_inoperative(conn.connector_id)
        ):
            return _status("Rejected")
        admitted, _ = self.cp.reservations.admit(conn.connector_id, token, parent)
        if not admitted:
            return _status("Rejected")
        start = partial(
            self.cp201.charge,
            conn.connector_id,
            token,
            charging_profile=None if profile is None else profile_16(profile),
            remote_start_id=p["remoteStartId"],
        )
        return _status("Accepted", [start])

    def request_stop(self, p: dict[str, Any]) -> Reply:
        conn = self.cp201.evse_of(p["transactionId"])
        if conn is None:
            return _status("Rejected")
        self.cp.request_stop(conn, "Remote")
        return _status("Accepted")

    def get_transaction_status(self, p: dict[str, Any]) -> Reply:
        tx_id, queue = p.get("transactionId"), self.cp201.tx_queue
        if tx_id is None:
            return Reply({"messagesInQueue": len(queue) > 0})
        ongoing = self.cp201.evse_of(tx_id) is not None
        return Reply({"messagesInQueue": queue.holds(tx_id), "ongoingIndicator": ongoing})

    # -- control ---------------------------------------------------------------------------

    def reset(self, p: dict[str, Any]) -> Reply:
        """B11/B12: Immediate ends every session (ImmediateReset) and restarts; OnIdle waits
        for them (Scheduled) and then restarts. Resetting one EVSE is not simulated."""
        if p.get("evseId") is not None:
            return _status("Rejected")
        self.cp201.boot_reason = "RemoteReset"
        if p["type"] == "Immediate":
            return _status("Accepted", [partial(self.cp.reset, "Hard")])
        busy = any(e.transaction_id is not None for e in self.cp201.evses.values())
        return _status("Scheduled" if busy else "Accepted", [self.cp201.stop_when_idle])

    def unlock_connector(self, p: dict[str, Any]) -> Reply:
        """F05: an authorized session keeps its cable (OngoingAuthorizedTransaction)."""
        conn = self._evse(p["evseId"])
        if conn is None or p["connectorId"] != 1:
            return _status("UnknownConnector")
        if conn.tx_id is not None:
            return _status("OngoingAuthorizedTransaction")
        cid = conn.connector_id
        if cid in self.cp.cfg.fixed_cable_connectors or cid in self.cp.cfg.jammed_lock_connectors:
            return _status("UnlockFailed")
        return _status("Unlocked")

    def change_availability(self, p: dict[str, Any]) -> Reply:
        evse = p.get("evse") or {}
        if evse.get("connectorId", 1) != 1:
            return _status("Rejected")
        return super().change_availability({"connectorId": evse.get("id", 0), "type": p["operationalStatus"]})

    def trigger(self, p: dict[str, Any]) -> Reply:
        """F06: the requested message follows the Accepted."""
        what, evse_id = p["requestedMessage"], (p.get("evse") or {}).get("id")
        cp = self.cp201
        if evse_id is not None and evse_id != 0 and evse_id not in cp.evses:
            return _status("Rejected")
        if what not in TRIGGERABLE:
            return _status("NotImplemented")
        targets = [evse_id] if evse_id else list(cp.evses)
        then: list[FollowUp] = []
        if what == "BootNotification":
            cp.boot_reason = "Triggered"
            then = [cp.boot]
        elif what == "Heartbeat":
            then = [partial(cp.notify, "Heartbeat", {})]
        elif what == "StatusNotification":
            for t in targets:
                cp.evses[t].reported = None  # sent again even though unchanged
            then = [partial(cp.status, t, cp.evses[t].status) for t in targets]
        elif what in ("MeterValues", "TransactionEvent"):
            running = [t for t in targets if cp.evses[t].tx_id is not None]
            then = [partial(cp.meter_now, t) for t in (running if what == "TransactionEvent" else targets)]
        elif what == "FirmwareStatusNotification":
            then = [partial(cp.notify, what, {"status": cp.files.firmware_status})]
        else:
            then = [
                partial(cp.notify, "DiagnosticsStatusNotification", {"status": cp.files.diagnostics_status})
            ]
        return _status("Accepted", then)

    # -- firmware and logs -----------------------------------------------------------------

    def update_firmware(self, p: dict[str, Any]) -> Reply:
        """L01: a new request replaces one under way (AcceptedCanceled)."""
        busy = self.cp.files.firmware_status != "Idle"
        self.cp201.firmware_request_id = p["requestId"]
        request = {
            "location": p["firmware"]["location"],
            "retrieveDate": p["firmware"]["retrieveDateTime"],
            **{k: p[k] for k in ("retries", "retryInterval") if k in p},
        }
        started = self.cp.files.update_firmware(request)
        return _status("AcceptedCanceled" if busy else "Accepted", started.then)

    def get_log(self, p: dict[str, Any]) -> Reply:
        """N01: the diagnostics log is uploaded like 1.6 diagnostics; no security log here."""
        if p["logType"] != "DiagnosticsLog":
            return _status("Rejected")
        self.cp201.log_request_id = p["requestId"]
        log = p["log"]
        request = {
            "location": log["remoteLocation"],
            **{
                k16: log[k]
                for k, k16 in (("oldestTimestamp", "startTime"), ("latestTimestamp", "stopTime"))
                if k in log
            },
            **{k: p[k] for k in ("retries", "retryInterval") if k in p},
        }
        upload = self.cp.files.get_diagnostics(request)
        name = upload.payload.get("fileName")
        return Reply({"status": "Accepted", **({"filename": name} if name else {})}, upload.then)

    # -- local list and reservations -------------------------------------------------------

    def send_local_list(self, p: dict[str, Any]) -> Reply:
        entries = [
            {
                "idTag": e["idToken"]["idToken"],
                **({"idTagInfo": tag_info(e["idTokenInfo"])} if "idTokenInfo" in e else {}),
            }
            for e in p.get("localAuthorizationList") or ()
        ]
        request = {
            "listVersion": p["versionNumber"],
            "updateType": p["updateType"],
            "localAuthorizationList": entries,
        }
        status = super().send_local_list(request).payload["status"]
        return _status("Failed" if status == "NotSupported" else status)

    def get_local_list_version(self, p: dict[str, Any]) -> Reply:
        version = super().get_local_list_version(p).payload["listVersion"]
        return Reply({"versionNumber": max(0, version)})

    def reserve_now(self, p: dict[str, Any]) -> Reply:
        request = {
            "reservationId": p["id"],
            "connectorId": p.get("evseId", 0),  # no EVSE: any EVSE (1.6 connector 0)
            "expiryDate": p["expiryDateTime"],
            "idTag": p["idToken"]["idToken"],
        }
        if "groupIdToken" in p:
            request["parentIdTag"] = p["groupIdToken"]["idToken"]
        return self.cp.reservations.reserve_now(request)

    # -- smart charging --------------------------------------------------------------------

    def set_charging_profile(self, p: dict[str, Any]) -> Reply:
        evse_id, profile = p["evseId"], p["chargingProfile"]
        if profile["chargingProfilePurpose"] == "ChargingStationExternalConstraints":
            return _status("Rejected")  # set by an energy manager, never by the CSMS
        conn = self._evse(evse_id)
        status = self.cp.profiles.install(
            evse_id,
            profile_16(profile),
            active_transaction=conn.tx_id if conn is not None else None,  # type: ignore[arg-type]
            connector_ids=self.cp.connectors.keys(),
            rate_units=self.cp.cfg.charging_rate_units,
            now=utcnow(),
        )
        return _status("Rejected" if status == "NotSupported" else status)

    def clear_charging_profile(self, p: dict[str, Any]) -> Reply:
        criteria = p.get("chargingProfileCriteria") or {}
        purpose = criteria.get("chargingProfilePurpose")
        status = self.cp.profiles.clear(
            profile_id=p.get("chargingProfileId"),
            connector_id=criteria.get("evseId"),
            purpose=None if purpose is None else PURPOSES_16.get(purpose, purpose),
            stack_level=criteria.get("stackLevel"),
        )
        return _status(status)

    def get_composite_schedule(self, p: dict[str, Any]) -> Reply:
        request = {"connectorId": p["evseId"], "duration": p["duration"]}
        if "chargingRateUnit" in p:
            request["chargingRateUnit"] = p["chargingRateUnit"]
        answer = super().get_composite_schedule(request).payload
        if answer["status"] != "Accepted":
            return _status(answer["status"])
        schedule = answer["chargingSchedule"]
        return Reply(
            {
                "status": "Accepted",
                "schedule": {
                    "evseId": p["evseId"],
                    "duration": schedule["duration"],
                    "scheduleStart": answer["scheduleStart"],
                    "chargingRateUnit": schedule["chargingRateUnit"],
                    "chargingSchedulePeriod": schedule["chargingSchedulePeriod"],
                },
            }
        )
