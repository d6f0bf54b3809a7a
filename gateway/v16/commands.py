"""Version-neutral commands as OCPP 1.6 CALLs, and the station's answers as neutral replies.

Outgoing payloads are checked against the 1.6 request schemas before they are sent, so an
operator's input that the protocol cannot carry (a 51-character configuration key, say) is
refused with a reason instead of earning a CALLERROR from the station.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any

from gateway.ocppj import OcppJSession
from gateway.validation import PayloadInvalid, validate
from schema.commands import (
    CancelReservation,
    ChangeAvailability,
    ChangeConfiguration,
    ChargingProfile,
    ChargingSchedule,
    ClearCache,
    ClearChargingProfile,
    Command,
    CommandReply,
    DataTransfer,
    GetCompositeSchedule,
    GetConfiguration,
    GetDiagnostics,
    GetLocalListVersion,
    ProfilePurpose,
    RateUnit,
    RemoteStart,
    RemoteStop,
    ReserveNow,
    Reset,
    SchedulePeriod,
    SendLocalList,
    SetChargingProfile,
    TriggerMessage,
    UnlockConnector,
    UpdateFirmware,
)
from schema.errors import InvalidInput
from schema.timeutil import parse_ocpp_datetime, to_ocpp

PURPOSES = {
    ProfilePurpose.STATION_MAX: "ChargePointMaxProfile",
    ProfilePurpose.TX_DEFAULT: "TxDefaultProfile",
    ProfilePurpose.TX: "TxProfile",
}


def _without_none(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if v is not None}


def _when(value: datetime | None) -> str | None:
    return None if value is None else to_ocpp(value)


def schedule_payload(schedule: ChargingSchedule) -> dict[str, Any]:
    return _without_none(
        {
            "duration": schedule.duration_s,
            "startSchedule": _when(schedule.start_at),
            "chargingRateUnit": schedule.unit.value,
            "chargingSchedulePeriod": [
                _without_none({"startPeriod": p.start_s, "limit": p.limit, "numberPhases": p.phases})
                for p in schedule.periods
            ],
            "minChargingRate": schedule.min_rate,
        }
    )


def profile_payload(profile: ChargingProfile) -> dict[str, Any]:
    return _without_none(
        {
            "chargingProfileId": profile.profile_id,
            "transactionId": profile.transaction_id,
            "stackLevel": profile.stack_level,
            "chargingProfilePurpose": PURPOSES[profile.purpose],
            "chargingProfileKind": profile.kind,
            "recurrencyKind": profile.recurrency,
            "validFrom": _when(profile.valid_from),
            "validTo": _when(profile.valid_to),
            "chargingSchedule": schedule_payload(profile.schedule),
        }
    )


def schedule_from_payload(p: dict[str, Any]) -> ChargingSchedule:
    return ChargingSchedule(
        unit=RateUnit(p["chargingRateUnit"]),
        periods=tuple(
            SchedulePeriod(int(x["startPeriod"]), float(x["limit"]), x.get("numberPhases"))
            for x in p["chargingSchedulePeriod"]
        ),
        duration_s=p.get("duration"),
        start_at=parse_ocpp_datetime(p["startSchedule"]) if p.get("startSchedule") else None,
        min_rate=p.get("minChargingRate"),
    )


def schedule_detail(schedule: ChargingSchedule) -> dict[str, Any]:
    """A schedule as plain JSON values: replies cross the bus as JSON."""
    return {
        "unit": schedule.unit.value,
        "periods": [{"start_s": p.start_s, "limit": p.limit, "phases": p.phases} for p in schedule.periods],
        "duration_s": schedule.duration_s,
        "start_at": None if schedule.start_at is None else schedule.start_at.isoformat(),
        "min_rate": schedule.min_rate,
    }


def _remote_start(c: RemoteStart) -> dict[str, Any]:
    return _without_none(
        {
            "idTag": c.id_tag,
            "connectorId": c.connector_id,
            "chargingProfile": None if c.profile is None else profile_payload(c.profile),
        }
    )


def _send_local_list(c: SendLocalList) -> dict[str, Any]:
    entries = []
    for e in c.entries:
        entry: dict[str, Any] = {"idTag": e.id_tag}
        if e.status is not None:
            entry["idTagInfo"] = _without_none(
                {"status": e.status, "expiryDate": _when(e.expires_at), "parentIdTag": e.parent_id_tag}
            )
        entries.append(entry)
    return {"listVersion": c.version, "updateType": c.update_type.value, "localAuthorizationList": entries}


# command type → (OCPP 1.6 action, payload builder)
REQUESTS: dict[type[Command], tuple[str, Callable[[Any], dict[str, Any]]]] = {
    RemoteStart: ("RemoteStartTransaction", _remote_start),
    RemoteStop: ("RemoteStopTransaction", lambda c: {"transactionId": c.transaction_id}),
    Reset: ("Reset", lambda c: {"type": c.kind.value}),
    TriggerMessage: (
        "TriggerMessage",
        lambda c: _without_none({"requestedMessage": c.message, "connectorId": c.connector_id}),
    ),
    UnlockConnector: ("UnlockConnector", lambda c: {"connectorId": c.connector_id}),
    ChangeAvailability: (
        "ChangeAvailability",
        lambda c: {"connectorId": c.connector_id, "type": "Operative" if c.operative else "Inoperative"},
    ),
    GetConfiguration: ("GetConfiguration", lambda c: {"key": list(c.keys)} if c.keys else {}),
    ChangeConfiguration: ("ChangeConfiguration", lambda c: {"key": c.key, "value": c.value}),
    ClearCache: ("ClearCache", lambda c: {}),
    DataTransfer: (
        "DataTransfer",
        lambda c: _without_none({"vendorId": c.vendor_id, "messageId": c.message_id, "data": c.data}),
    ),
    UpdateFirmware: (
        "UpdateFirmware",
        lambda c: _without_none(
            {
                "location": c.location,
                "retrieveDate": to_ocpp(c.retrieve_at),
                "retries": c.retries,
                "retryInterval": c.retry_interval_s,
            }
        ),
    ),
    GetDiagnostics: (
        "GetDiagnostics",
        lambda c: _without_none(
            {
                "location": c.location,
                "retries": c.retries,
                "retryInterval": c.retry_interval_s,
                "startTime": _when(c.start_at),
                "stopTime": _when(c.stop_at),
            }
        ),
    ),
    SendLocalList: ("SendLocalList", _send_local_list),
    GetLocalListVersion: ("GetLocalListVersion", lambda c: {}),
    ReserveNow: (
        "ReserveNow",
        lambda c: _without_none(
            {
                "connectorId": c.connector_id,
                "expiryDate": to_ocpp(c.expires_at),
                "idTag": c.id_tag,
                "parentIdTag": c.parent_id_tag,
                "reservationId": c.reservation_id,
            }
        ),
    ),
    CancelReservation: ("CancelReservation", lambda c: {"reservationId": c.reservation_id}),
    SetChargingProfile: (
        "SetChargingProfile",
        lambda c: {"connectorId": c.connector_id, "csChargingProfiles": profile_payload(c.profile)},
    ),
    ClearChargingProfile: (
        "ClearChargingProfile",
        lambda c: _without_none(
            {
                "id": c.profile_id,
                "connectorId": c.connector_id,
                "chargingProfilePurpose": None if c.purpose is None else PURPOSES[c.purpose],
                "stackLevel": c.stack_level,
            }
        ),
    ),
    GetCompositeSchedule: (
        "GetCompositeSchedule",
        lambda c: _without_none(
            {
                "connectorId": c.connector_id,
                "duration": c.duration_s,
                "chargingRateUnit": None if c.unit is None else c.unit.value,
            }
        ),
    ),
}

# Every central-system message of 1.6's six feature profiles, by profile: a station that does
# not list a profile in SupportedFeatureProfiles is not offered its messages.
FEATURE_PROFILES: dict[str, frozenset[str]] = {
    "Core": frozenset(
        {
            "ChangeAvailability",
            "ChangeConfiguration",
            "ClearCache",
            "DataTransfer",
            "GetConfiguration",
            "RemoteStartTransaction",
            "RemoteStopTransaction",
            "Reset",
            "UnlockConnector",
        }
    ),
    "FirmwareManagement": frozenset({"GetDiagnostics", "UpdateFirmware"}),
    "LocalAuthListManagement": frozenset({"GetLocalListVersion", "SendLocalList"}),
    "Reservation": frozenset({"ReserveNow", "CancelReservation"}),
    "SmartCharging": frozenset({"SetChargingProfile", "ClearChargingProfile", "GetCompositeSchedule"}),
    "RemoteTrigger": frozenset({"TriggerMessage"}),
}
PROFILE_OF_ACTION = {action: profile for profile, actions in FEATURE_PROFILES.items() for action in actions}
ACTIONS = tuple(action for action, _ in REQUESTS.values())
RESPONSES = tuple(f"{action}Response" for action in ACTIONS)


def to_call(command: Command) -> tuple[str, dict[str, Any]]:
    found = REQUESTS.get(type(command))
    if found is None:
        raise InvalidInput(f"{command.name} is not available for OCPP 1.6 stations")
    action, build = found
    payload = build(command)
    try:
        validate("v16", action, payload)
    except PayloadInvalid as exc:
        raise InvalidInput(f"{action} cannot carry that: {exc.description}") from None
    return action, payload


def _configuration(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "configuration": [
            {"key": k["key"], "value": k.get("value"), "readonly": bool(k.get("readonly", False))}
            for k in result.get("configurationKey") or ()
        ],
        "unknown": list(result.get("unknownKey") or ()),
    }


def to_reply(command: Command, result: dict[str, Any]) -> CommandReply:
    """The station's CALLRESULT in neutral words. Replies without a status (GetConfiguration,
    GetDiagnostics, GetLocalListVersion, UpdateFirmware) count as Accepted: the station answered."""
    status = str(result.get("status", "Accepted"))
    if isinstance(command, GetConfiguration):
        return CommandReply(status, _configuration(result))
    if isinstance(command, GetDiagnostics):
        return CommandReply(status, _without_none({"file_name": result.get("fileName")}))
    if isinstance(command, GetLocalListVersion):
        return CommandReply(status, {"version": int(result["listVersion"])})
    if isinstance(command, DataTransfer):
        return CommandReply(status, _without_none({"data": result.get("data")}))
    if isinstance(command, GetCompositeSchedule) and "chargingSchedule" in result:
        schedule = schedule_from_payload(result["chargingSchedule"])
        start = schedule.start_at or (
            parse_ocpp_datetime(result["scheduleStart"]) if result.get("scheduleStart") else None
        )
        return CommandReply(
            status,
            {
                "connector_id": result.get("connectorId", command.connector_id),
                "schedule": schedule_detail(dataclasses.replace(schedule, start_at=start)),
            },
        )
    return CommandReply(status, dict(result))


async def execute(session: OcppJSession, command: Command, timeout: float) -> CommandReply:
    action, payload = to_call(command)
    return to_reply(command, await session.call(action, payload, timeout=timeout))
