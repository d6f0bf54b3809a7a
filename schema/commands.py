"""Version-neutral commands to a station and their replies, carried by the bus.

The gateway translates each into the OCPP message of the version the station speaks, and the
station's answer back into a `CommandReply` whose `detail` uses the neutral names below, so
GraphQL never needs to know which version a station speaks.

Commands cross processes as JSON (`to_dict` / `command_from_dict`): enums, datetimes and nested
dataclasses are rebuilt from their type hints, so adding a command needs no serialisation code.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any, ClassVar


class ResetKind(StrEnum):
    SOFT = "Soft"
    HARD = "Hard"


class UpdateType(StrEnum):
    FULL = "Full"
    DIFFERENTIAL = "Differential"


class ProfilePurpose(StrEnum):
    """OCPP charging profile purposes; 2.0.1's ChargingStationMaxProfile is the 1.6 ChargePointMax."""

    STATION_MAX = "StationMax"
    TX_DEFAULT = "TxDefault"
    TX = "Tx"


class RateUnit(StrEnum):
    AMPERES = "A"
    WATTS = "W"


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    name: ClassVar[str] = "command"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **_plain(self)}


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteStart(Command):
    name: ClassVar[str] = "RemoteStart"
    id_tag: str
    connector_id: int | None = None
    # A limit for this session only (a Tx charging profile sent with the start).
    profile: ChargingProfile | None = None
    # The charging request it answers: 2.0.1 stations echo it (remoteStartId) in the session's
    # TransactionEvent, which links the session to the request exactly. 1.6 has no such field.
    remote_start_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteStop(Command):
    name: ClassVar[str] = "RemoteStop"
    transaction_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Reset(Command):
    name: ClassVar[str] = "Reset"
    kind: ResetKind = ResetKind.SOFT


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerMessage(Command):
    name: ClassVar[str] = "TriggerMessage"
    message: str
    connector_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnlockConnector(Command):
    name: ClassVar[str] = "UnlockConnector"
    connector_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeAvailability(Command):
    """`connector_id` 0 is the whole station."""

    name: ClassVar[str] = "ChangeAvailability"
    connector_id: int
    operative: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class GetConfiguration(Command):
    """Reply detail: `configuration` [{key, value, readonly}], `unknown` [key]. No keys: all."""

    name: ClassVar[str] = "GetConfiguration"
    keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeConfiguration(Command):
    """Reply status: Accepted, Rejected, RebootRequired or NotSupported (unknown key)."""

    name: ClassVar[str] = "ChangeConfiguration"
    key: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ClearCache(Command):
    name: ClassVar[str] = "ClearCache"


@dataclass(frozen=True, slots=True, kw_only=True)
class DataTransfer(Command):
    """Reply detail: `data` (the station's answer text, if any)."""

    name: ClassVar[str] = "DataTransfer"
    vendor_id: str
    message_id: str | None = None
    data: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateFirmware(Command):
    name: ClassVar[str] = "UpdateFirmware"
    location: str
    retrieve_at: datetime
    retries: int | None = None
    retry_interval_s: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GetDiagnostics(Command):
    """Reply detail: `file_name` the station will upload (absent: nothing to upload)."""

    name: ClassVar[str] = "GetDiagnostics"
    location: str
    retries: int | None = None
    retry_interval_s: int | None = None
    start_at: datetime | None = None
    stop_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LocalAuthEntry:
    """One id tag of a station's local list; `status` None removes it (differential update)."""

    id_tag: str
    status: str | None = None
    expires_at: datetime | None = None
    parent_id_tag: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SendLocalList(Command):
    name: ClassVar[str] = "SendLocalList"
    version: int
    update_type: UpdateType
    entries: tuple[LocalAuthEntry, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class GetLocalListVersion(Command):
    """Reply detail: `version` (0: no list installed)."""

    name: ClassVar[str] = "GetLocalListVersion"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReserveNow(Command):
    name: ClassVar[str] = "ReserveNow"
    reservation_id: int
    connector_id: int
    id_tag: str
    expires_at: datetime
    parent_id_tag: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelReservation(Command):
    name: ClassVar[str] = "CancelReservation"
    reservation_id: int


@dataclass(frozen=True, slots=True)
class SchedulePeriod:
    start_s: int
    limit: float
    phases: int | None = None


@dataclass(frozen=True, slots=True)
class ChargingSchedule:
    unit: RateUnit
    periods: tuple[SchedulePeriod, ...]
    duration_s: int | None = None
    start_at: datetime | None = None
    min_rate: float | None = None


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    profile_id: int
    stack_level: int
    purpose: ProfilePurpose
    schedule: ChargingSchedule
    # Absolute (from start_at or the session start when None), or Recurring daily/weekly.
    kind: str = "Absolute"
    recurrency: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetChargingProfile(Command):
    name: ClassVar[str] = "SetChargingProfile"
    connector_id: int
    profile: ChargingProfile


@dataclass(frozen=True, slots=True, kw_only=True)
class ClearChargingProfile(Command):
    """Every field narrows what is cleared; none clears every profile the operator set."""

    name: ClassVar[str] = "ClearChargingProfile"
    profile_id: int | None = None
    connector_id: int | None = None
    purpose: ProfilePurpose | None = None
    stack_level: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GetCompositeSchedule(Command):
    """Reply detail: `schedule` as a ChargingSchedule dict (`to_dict` form) and `connector_id`."""

    name: ClassVar[str] = "GetCompositeSchedule"
    connector_id: int
    duration_s: int
    unit: RateUnit | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GetTransactionStatus(Command):
    """Whether the station still has messages of a session to send (OCPP 2.0.1 only).

    Reply detail: `ongoing` (is that session still running; None when none was named) and
    `messages_in_queue` (for it, or for any session when none was named).
    """

    name: ClassVar[str] = "GetTransactionStatus"
    transaction_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GetBaseReport(Command):
    """Ask for the station's device model (OCPP 2.0.1 only): FullInventory,
    ConfigurationInventory or SummaryInventory. The report arrives later, in parts, and is
    stored as it comes. Reply detail: `request_id` the parts will carry."""

    name: ClassVar[str] = "GetBaseReport"
    report: str = "FullInventory"


COMMAND_TYPES: dict[str, type[Command]] = {
    c.name: c
    for c in (
        RemoteStart,
        RemoteStop,
        Reset,
        TriggerMessage,
        UnlockConnector,
        ChangeAvailability,
        GetConfiguration,
        ChangeConfiguration,
        ClearCache,
        DataTransfer,
        UpdateFirmware,
        GetDiagnostics,
        SendLocalList,
        GetLocalListVersion,
        ReserveNow,
        CancelReservation,
        SetChargingProfile,
        ClearChargingProfile,
        GetCompositeSchedule,
        GetTransactionStatus,
        GetBaseReport,
    )
}


def _plain(obj: Any) -> dict[str, Any]:
    return {f.name: _plain_value(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _plain_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(value)
    if isinstance(value, tuple | list):
        return [_plain_value(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    return value


def _rebuild(hint: Any, value: Any) -> Any:
    """`value` (JSON form) as the type `hint` names: enums, datetimes, dataclasses, tuples."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _rebuild(inner[0], value) if len(inner) == 1 else value
    if origin is tuple:
        (item, *_) = typing.get_args(hint)
        return tuple(_rebuild(item, v) for v in value)
    if isinstance(hint, type):
        if issubclass(hint, Enum):
            return value if isinstance(value, hint) else hint(value)
        if hint is datetime:
            return datetime.fromisoformat(value) if isinstance(value, str) else value
        if dataclasses.is_dataclass(hint):
            return value if isinstance(value, hint) else _from_fields(hint, value)
    return value


def _from_fields(cls: type, data: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    return cls(**{k: _rebuild(hints[k], v) for k, v in data.items()})


def command_from_dict(data: dict[str, Any]) -> Command:
    data = dict(data)
    cls = COMMAND_TYPES[data.pop("name")]
    command: Command = _from_fields(cls, data)
    return command


@dataclass(frozen=True, slots=True)
class CommandReply:
    """The station's answer: `status` is its own word (Accepted, Rejected, NotImplemented…)."""

    status: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.status == "Accepted"
