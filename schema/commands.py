"""Version-neutral commands to a station and their replies, carried by the bus.

The gateway translates each into the OCPP message of the version the station speaks.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, ClassVar


class ResetKind(StrEnum):
    SOFT = "Soft"
    HARD = "Hard"


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    name: ClassVar[str] = "command"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self)}


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteStart(Command):
    name: ClassVar[str] = "RemoteStart"
    id_tag: str
    connector_id: int | None = None


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


COMMAND_TYPES: dict[str, type[Command]] = {
    c.name: c for c in (RemoteStart, RemoteStop, Reset, TriggerMessage)
}


def _enum_fields(cls: type[Command]) -> dict[str, type[Enum]]:
    hints = typing.get_type_hints(cls)
    return {
        f.name: hint
        for f in dataclasses.fields(cls)
        if isinstance(hint := hints.get(f.name), type) and issubclass(hint, Enum)
    }


# Fields whose JSON text must become enum members again (Reset.kind "Hard" → ResetKind.HARD).
ENUM_FIELDS: dict[type[Command], dict[str, type[Enum]]] = {c: _enum_fields(c) for c in COMMAND_TYPES.values()}


def command_from_dict(data: dict[str, Any]) -> Command:
    data = dict(data)
    cls = COMMAND_TYPES[data.pop("name")]
    for name, kind in ENUM_FIELDS[cls].items():
        if name in data and not isinstance(data[name], kind):
            data[name] = kind(data[name])
    return cls(**data)


@dataclass(frozen=True, slots=True)
class CommandReply:
    """The station's answer: `status` is its own word (Accepted, Rejected, NotImplemented…)."""

    status: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.status == "Accepted"
