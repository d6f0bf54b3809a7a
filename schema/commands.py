"""Version-neutral commands to a station and their replies, carried by the bus.

The gateway translates each into the OCPP message of the version the station speaks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
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


def command_from_dict(data: dict[str, Any]) -> Command:
    data = dict(data)
    return COMMAND_TYPES[data.pop("name")](**data)


@dataclass(frozen=True, slots=True)
class CommandReply:
    """The station's answer: `status` is its own word (Accepted, Rejected, NotImplemented…)."""

    status: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.status == "Accepted"
