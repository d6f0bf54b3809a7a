"""Local authorization lists: what ChargeNet believes each station holds.

A station keeps a versioned list of id tags it may authorize on its own (offline, or before
asking the CSMS). ChargeNet keeps a copy of what it last installed there, entry by entry, so
the next update can be a differential one: the difference between the organisation's tokens
now and this snapshot. The snapshot only changes when the station accepted a SendLocalList.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import PrimaryKeyConstraint
from sqlmodel import Field, SQLModel

from schema.columns import utc_column


class LocalAuthListState(SQLModel, table=True):
    """One station's list: installed version, when it was last brought up to date, and whether
    an update is still owed (the last attempt failed, timed out, or found the station offline).

    A row exists once the station's list is managed by ChargeNet (its first sync); the worker
    keeps managed stations in step with their organisation's tokens.
    """

    __tablename__ = "local_auth_list_state"

    station_id: int = Field(foreign_key="charging_station.id", primary_key=True)
    # The version the station holds as far as ChargeNet knows; None: unknown (never installed).
    version: int | None = Field(default=None)
    entry_count: int = Field(default=0)
    # Last time the station held exactly the organisation's list.
    synced_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # Start of the last attempt: token changes after it are what the next sync must send.
    attempted_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    last_result: str | None = Field(default=None, max_length=20)
    last_message: str | None = Field(default=None, max_length=300)
    pending: bool = Field(default=False, index=True)


class LocalAuthListEntry(SQLModel, table=True):
    """One id tag of a station's installed list, with the information sent for it."""

    __tablename__ = "local_auth_list_entry"
    __table_args__ = (PrimaryKeyConstraint("station_id", "id_token", name="pk_local_auth_list_entry"),)

    station_id: int = Field(foreign_key="charging_station.id")
    id_token: str = Field(max_length=36)
    status: str = Field(max_length=20)
    expires_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    parent_token: str | None = Field(default=None, max_length=36)
