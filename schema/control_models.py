"""Tables of remote control: every command sent to a station, and each station's own
configuration as it last reported it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from schema.columns import bigint_pk, utc_column
from schema.timeutil import utcnow


class StationCommand(SQLModel, table=True):
    """One command to a station: who asked, what, and how the station answered.

    Written by the API replica that sent it, after the answer (or the timeout), so the
    operator's trail shows latency and outcome; the audit log keeps its own, shorter entry.
    """

    __tablename__ = "station_command"
    __table_args__ = (
        Index("ix_station_command_station_requested", "station_id", "requested_at"),
        Index("ix_station_command_org_requested", "organization_id", "requested_at"),
    )

    id: int | None = Field(default=None, sa_column=bigint_pk())
    organization_id: int | None = Field(default=None, foreign_key="organization.id")
    station_id: int = Field(foreign_key="charging_station.id")
    # Version-neutral command name (Reset, ChangeConfiguration…) and its arguments.
    name: str = Field(max_length=40)
    payload: dict[str, Any] = Field(sa_column=Column(JSON(), nullable=False))
    actor_kind: str = Field(max_length=16)
    actor_user_id: int | None = Field(default=None, foreign_key="user_account.id")
    actor_api_key_id: int | None = Field(default=None, foreign_key="api_key.id")
    actor_label: str = Field(max_length=120)
    # A bulk command's station results share its id, so a rollout reads as one action.
    bulk_id: str | None = Field(default=None, max_length=36, index=True)
    requested_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    completed_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    latency_ms: int = Field(default=0)
    outcome: str = Field(max_length=20)
    # The station's own word (Accepted, Rejected, Scheduled, RebootRequired…), when it answered.
    station_status: str | None = Field(default=None, max_length=30)
    message: str = Field(default="", max_length=300)
    reply: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON(), nullable=True))


class StationConfigurationKey(SQLModel, table=True):
    """A configuration key as the station reported it (1.6 GetConfiguration), replaced on
    each read; write-only keys (AuthorizationKey) never appear, so no secret is stored here."""

    __tablename__ = "station_configuration_key"

    station_id: int = Field(foreign_key="charging_station.id", primary_key=True)
    key: str = Field(max_length=50, primary_key=True)
    value: str | None = Field(default=None, max_length=500)
    readonly: bool = Field(default=False)
    read_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
