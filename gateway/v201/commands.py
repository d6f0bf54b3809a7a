"""Version-neutral commands as OCPP 2.0.1 CALLs, and the station's answers as neutral replies.

What 1.6 carries by ChargeNet's own numbers 2.0.1 carries by the station's: a session is named
by the transactionId string the station chose, a request by an id the CSMS picks. The handler
looks those up first (`Refs`). Outgoing payloads are checked against the 2.0.1 request schemas
before they are sent, as gateway/v16/commands.py does for 1.6.

Reply `detail` uses the neutral shapes documented in schema/commands.py; commands whose 1.6
reply is a bare status answer {"status"} here too, plus `reason` when the station gave one
(2.0.1 statusInfo.reasonCode).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.v16.commands import schedule_detail, schedule_from_payload, schedule_payload
from gateway.v201.variables import PASSWORD_KEYS, Address, InvalidKey, address_of, is_secret, parse_key
from gateway.validation import PayloadInvalid, validate
from schema.commands import (
    CancelReservation,
    ChangeAvailability,
    ChangeConfiguration,
    ChargingProfile,
    ClearCache,
    ClearChargingProfile,
    Command,
    CommandReply,
    DataTransfer,
    GetBaseReport,
    GetCompositeSchedule,
    GetConfiguration,
    GetDiagnostics,
    GetLocalListVersion,
    GetTransactionStatus,
    ProfilePurpose,
    RemoteStart,
    RemoteStop,
    ReserveNow,
    Reset,
    ResetKind,
    SendLocalList,
    SetChargingProfile,
    TriggerMessage,
    UnlockConnector,
    UpdateFirmware,
)
from schema.errors import InvalidInput
from schema.timeutil import parse_ocpp_datetime, to_ocpp

PURPOSES = {
    ProfilePurpose.STATION_MAX: "ChargingStationMaxProfile",
    ProfilePurpose.TX_DEFAULT: "TxDefaultProfile",
    ProfilePurpose.TX: "TxProfile",
}
RESET_TYPES = {ResetKind.SOFT: "OnIdle", ResetKind.HARD: "Immediate"}
# TriggerMessage names 1.6 gave other words; the rest are the same in both versions (and 2.0.1
# names such as TransactionEvent pass through).
TRIGGERED_MESSAGES = {"DiagnosticsStatusNotification": "LogStatusNotification"}
DIAGNOSTICS_LOG = "DiagnosticsLog"
# Without a token type on record (schema IdToken.token_type), a token is one ChargeNet issued.
DEFAULT_TOKEN_TYPE = "Central"
# The connector of an EVSE that commands naming a ChargeNet connector act on (gateway/v201/evse.py).
EVSE_CONNECTOR = 1
# SetVariables statuses that mean "no such variable": the neutral reply says NotSupported, as a
# 1.6 station does for an unknown key.
UNKNOWN_VARIABLE = frozenset({"UnknownComponent", "UnknownVariable", "NotSupportedAttributeType"})


@dataclass(frozen=True, slots=True)
class Refs:
    """What a command needs that the station's records hold, looked up by the handler."""

    request_id: int
    # The station's id of the ChargeNet transaction the command names (None: none, or unknown).
    transaction: str | None = None
    # 2.0.1 IdTokenEnumType of the tokens the command carries, by token.
    token_types: dict[str, str] = field(default_factory=dict)

    def id_token(self, token: str) -> dict[str, Any]:
        return {"idToken": token, "type": self.token_types.get(token, DEFAULT_TOKEN_TYPE)}


@dataclass(frozen=True, slots=True)
class Call:
    """A CALL to send. `action` None: the gateway answers alone (every key was malformed)."""

    action: str | None
    payload: dict[str, Any]
    # GetVariables / SetVariables: each asked key by the address the station answers under.
    keys: dict[Address, str] = field(default_factory=dict)
    # Keys that name no variable: answered unknown without asking.
    malformed: tuple[str, ...] = ()


def _compact(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if v is not None}


def _when(value: datetime | None) -> str | None:
    return None if value is None else to_ocpp(value)


def _evse(connector_id: int | None) -> dict[str, Any] | None:
    """An EVSE reference for a ChargeNet connector; 0 or None is the whole station."""
    return {"id": connector_id} if connector_id else None


def profile_payload(profile: ChargingProfile, transaction: str | None) -> dict[str, Any]:
    """A neutral profile in the 2.0.1 shape: ids, a list of schedules, the station's tx id."""
    return _compact(
        {
            "id": profile.profile_id,
            "stackLevel": profile.stack_level,
            "chargingProfilePurpose": PURPOSES[profile.purpose],
            "chargingProfileKind": profile.kind,
            "recurrencyKind": profile.recurrency,
            "validFrom": _when(profile.valid_from),
            "validTo": _when(profile.valid_to),
            "transactionId": transaction,
            # One schedule; its id only has to be unique within the profile.
            "chargingSchedule": [{"id": profile.profile_id, **schedule_payload(profile.schedule)}],
        }
    )


def _remote_start(c: RemoteStart, refs: Refs) -> dict[str, Any]:
    return _compact(
        {
            "idToken": refs.id_token(c.id_tag),
            "remoteStartId": c.remote_start_id or refs.request_id,
            "evseId": c.connector_id or None,
            "chargingProfile": None if c.profile is None else profile_payload(c.profile, None),
        }
    )


def _send_local_list(c: SendLocalList, refs: Refs) -> dict[str, Any]:
    entries = []
    for e in c.entries:
        entry: dict[str, Any] = {"idToken": refs.id_token(e.id_tag)}
        if e.status is not None:
            entry["idTokenInfo"] = _compact(
                {
                    "status": e.status,
                    "cacheExpiryDateTime": _when(e.expires_at),
                    "groupIdToken": None if e.parent_id_tag is None else refs.id_token(e.parent_id_tag),
                }
            )
        entries.append(entry)
    payload: dict[str, Any] = {"versionNumber": c.version, "updateType": c.update_type.value}
    if entries:  # the list, when present, has at least one entry
        payload["localAuthorizationList"] = entries
    return payload


def _reserve_now(c: ReserveNow, refs: Refs) -> dict[str, Any]:
    return _compact(
        {
            "id": c.reservation_id,
            "expiryDateTime": to_ocpp(c.expires_at),
            "idToken": refs.id_token(c.id_tag),
            "evseId": c.connector_id or None,  # none: any EVSE (1.6 connector 0)
            "groupIdToken": None if c.parent_id_tag is None else refs.id_token(c.parent_id_tag),
        }
    )


def _set_charging_profile(c: SetChargingProfile, refs: Refs) -> dict[str, Any]:
    if c.profile.transaction_id is not None and refs.transaction is None:
        raise InvalidInput(f"transaction {c.profile.transaction_id} is not a session of this station")
    return {"evseId": c.connector_id, "chargingProfile": profile_payload(c.profile, refs.transaction)}


def _clear_charging_profile(c: ClearChargingProfile, _refs: Refs) -> dict[str, Any]:
    criteria = _compact(
        {
            "evseId": c.connector_id,
            "chargingProfilePurpose": None if c.purpose is None else PURPOSES[c.purpose],
            "stackLevel": c.stack_level,
        }
    )
    return _compact({"chargingProfileId": c.profile_id, "chargingProfileCriteria": criteria or None})


def _trigger(c: TriggerMessage) -> dict[str, Any]:
    evse = _evse(c.connector_id)
    if evse is not None and c.message == "StatusNotification":
        # A status is a connector's: name the EVSE's connector (many stations refuse without).
        evse["connectorId"] = EVSE_CONNECTOR
    return _compact({"requestedMessage": TRIGGERED_MESSAGES.get(c.message, c.message), "evse": evse})


def _transaction_status(c: GetTransactionStatus, refs: Refs) -> dict[str, Any]:
    if c.transaction_id is not None and refs.transaction is None:
        raise InvalidInput(f"transaction {c.transaction_id} is not a session of this station")
    return _compact({"transactionId": refs.transaction})


# command type → (OCPP 2.0.1 action, payload builder)
REQUESTS: dict[type[Command], tuple[str, Callable[[Any, Refs], dict[str, Any]]]] = {
    RemoteStart: ("RequestStartTransaction", _remote_start),
    RemoteStop: ("RequestStopTransaction", lambda c, r: {"transactionId": r.transaction}),
    Reset: ("Reset", lambda c, r: {"type": RESET_TYPES[c.kind]}),
    TriggerMessage: ("TriggerMessage", lambda c, r: _trigger(c)),
    UnlockConnector: (
        "UnlockConnector",
        lambda c, r: {"evseId": c.connector_id, "connectorId": EVSE_CONNECTOR},
    ),
    ChangeAvailability: (
        "ChangeAvailability",
        lambda c, r: _compact(
            {
                "operationalStatus": "Operative" if c.operative else "Inoperative",
                "evse": _evse(c.connector_id),
            }
        ),
    ),
    ClearCache: ("ClearCache", lambda c, r: {}),
    DataTransfer: (
        "DataTransfer",
        lambda c, r: _compact({"vendorId": c.vendor_id, "messageId": c.message_id, "data": c.data}),
    ),
    UpdateFirmware: (
        "UpdateFirmware",
        lambda c, r: _compact(
            {
                "requestId": r.request_id,
                "firmware": {"location": c.location, "retrieveDateTime": to_ocpp(c.retrieve_at)},
                "retries": c.retries,
                "retryInterval": c.retry_interval_s,
            }
        ),
    ),
    GetDiagnostics: (
        "GetLog",
        lambda c, r: _compact(
            {
                "logType": DIAGNOSTICS_LOG,
                "requestId": r.request_id,
                "log": _compact(
                    {
                        "remoteLocation": c.location,
                        "oldestTimestamp": _when(c.start_at),
                        "latestTimestamp": _when(c.stop_at),
                    }
                ),
                "retries": c.retries,
                "retryInterval": c.retry_interval_s,
            }
        ),
    ),
    SendLocalList: ("SendLocalList", _send_local_list),
    GetLocalListVersion: ("GetLocalListVersion", lambda c, r: {}),
    ReserveNow: ("ReserveNow", _reserve_now),
    CancelReservation: ("CancelReservation", lambda c, r: {"reservationId": c.reservation_id}),
    SetChargingProfile: ("SetChargingProfile", _set_charging_profile),
    ClearChargingProfile: ("ClearChargingProfile", _clear_charging_profile),
    GetCompositeSchedule: (
        "GetCompositeSchedule",
        lambda c, r: _compact(
            {
                "evseId": c.connector_id,
                "duration": c.duration_s,
                "chargingRateUnit": None if c.unit is None else c.unit.value,
            }
        ),
    ),
    GetTransactionStatus: ("GetTransactionStatus", _transaction_status),
    GetBaseReport: (
        "GetBaseReport",
        lambda c, r: {"requestId": r.request_id, "reportBase": c.report},
    ),
}
ACTIONS = (*(action for action, _ in REQUESTS.values()), "GetVariables", "SetVariables")
RESPONSES = tuple(f"{action}Response" for action in ACTIONS)


def _checked(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    try:
        validate("v201", action, payload)
    except PayloadInvalid as exc:
        raise InvalidInput(f"{action} cannot carry that: {exc.description}") from None
    return payload


def _addresses(keys: tuple[str, ...]) -> tuple[dict[Address, str], tuple[str, ...]]:
    found: dict[Address, str] = {}
    malformed: list[str] = []
    for key in dict.fromkeys(keys):
        try:
            found.setdefault(parse_key(key), key)
        except InvalidKey:
            malformed.append(key)
    return found, tuple(malformed)


def to_call(command: Command, refs: Refs) -> Call:
    """The CALL for `command` (a full GetConfiguration is the handler's: a report, not a CALL)."""
    if isinstance(command, GetConfiguration):
        keys, malformed = _addresses(command.keys)
        if not keys:
            return Call(None, {}, malformed=malformed)
        payload = {"getVariableData": [a.request() for a in keys]}
        return Call("GetVariables", _checked("GetVariables", payload), keys, malformed)
    if isinstance(command, ChangeConfiguration):
        keys, malformed = _addresses((command.key,))
        if not keys:
            return Call(None, {}, malformed=malformed)
        [address] = keys
        if is_secret(address) and command.key not in PASSWORD_KEYS:
            raise InvalidInput(f"{command.key} is the station's password: only password rotation sets it")
        payload = {"setVariableData": [{**address.request(), "attributeValue": command.value}]}
        return Call("SetVariables", _checked("SetVariables", payload), keys)
    found = REQUESTS.get(type(command))
    if found is None:
        raise InvalidInput(f"{command.name} is not available for OCPP 2.0.1 stations")
    action, build = found
    return Call(action, _checked(action, build(command, refs)))


def _status(result: dict[str, Any], status: str | None = None) -> CommandReply:
    status = status or str(result.get("status", "Accepted"))
    detail: dict[str, Any] = {"status": status}
    info = result.get("statusInfo")
    if info:
        detail["reason"] = info["reasonCode"]
        if info.get("additionalInfo"):
            detail["reason_detail"] = info["additionalInfo"]
    return CommandReply(status, detail)


def _variables(call: Call, result: dict[str, Any]) -> CommandReply:
    """GetVariables in the neutral GetConfiguration shape: values read, every other key unknown.
    `readonly` is not in a GetVariables answer; the device-model report says it (the handler
    fills it in from there)."""
    found, unknown = [], list(call.malformed)
    answered: set[str] = set()
    for r in result.get("getVariableResult") or ():
        address = address_of(r["component"], r["variable"], r.get("attributeType"))
        key = call.keys.get(address, address.key)
        answered.add(key)
        if r["attributeStatus"] == "Accepted":
            found.append({"key": key, "value": r.get("attributeValue"), "readonly": False})
        else:
            unknown.append(key)
    unknown += [k for k in call.keys.values() if k not in answered]
    return CommandReply("Accepted", {"configuration": found, "unknown": unknown})


def _set_variable(result: dict[str, Any]) -> CommandReply:
    results = result.get("setVariableResult") or ()
    if not results:
        return CommandReply("Rejected", {"status": "Rejected"})
    first = results[0]
    status = first["attributeStatus"]
    return _status(
        {"statusInfo": first.get("attributeStatusInfo")},
        "NotSupported" if status in UNKNOWN_VARIABLE else status,
    )


def to_reply(command: Command, call: Call, refs: Refs, result: dict[str, Any]) -> CommandReply:
    """The station's CALLRESULT in neutral words (schema/commands.py)."""
    if isinstance(command, GetConfiguration):
        return _variables(call, result)
    if isinstance(command, ChangeConfiguration):
        if call.action is None:
            return CommandReply("NotSupported", {"status": "NotSupported"})
        return _set_variable(result)
    if isinstance(command, GetDiagnostics):
        reply = _status(result)
        return CommandReply(reply.status, _compact({**reply.detail, "file_name": result.get("filename")}))
    if isinstance(command, GetLocalListVersion):
        return CommandReply("Accepted", {"version": int(result["versionNumber"])})
    if isinstance(command, DataTransfer):
        data = result.get("data")
        text = data if data is None or isinstance(data, str) else json.dumps(data)
        return CommandReply(str(result.get("status", "Accepted")), _compact({"data": text}))
    if isinstance(command, GetTransactionStatus):
        return CommandReply(
            "Accepted",
            {"ongoing": result.get("ongoingIndicator"), "messages_in_queue": bool(result["messagesInQueue"])},
        )
    if isinstance(command, GetCompositeSchedule):
        return _composite(command, result)
    reply = _status(result)
    if isinstance(command, RemoteStart):
        remote_start_id = command.remote_start_id or refs.request_id
        extra = {"remote_start_id": remote_start_id, "station_transaction_id": result.get("transactionId")}
        return CommandReply(reply.status, _compact({**reply.detail, **extra}))
    if isinstance(command, UpdateFirmware | GetBaseReport):
        return CommandReply(reply.status, {**reply.detail, "request_id": refs.request_id})
    return reply


def _composite(command: GetCompositeSchedule, result: dict[str, Any]) -> CommandReply:
    reply = _status(result)
    found = result.get("schedule")
    if found is None:
        return reply
    schedule = schedule_from_payload(found)
    start = parse_ocpp_datetime(found["scheduleStart"])
    return CommandReply(
        reply.status,
        {
            "connector_id": found.get("evseId", command.connector_id),
            "schedule": schedule_detail(dataclasses.replace(schedule, start_at=start)),
        },
    )
