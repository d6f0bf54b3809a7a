"""Tables of pricing: tariffs, their immutable versions, and where each applies.

A session is priced with the tariff version in force when it started (US NEVI, 23 CFR
680.116(a): the price a driver was shown is the price they pay). Versions are never edited and
assignments are never deleted — a change ends the old row (`removed_at`) and adds a new one —
so "what was in force at instant T" is a query, whenever it is asked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from schema.columns import bigint_pk, utc_column
from schema.timeutil import utcnow


class StoredTariff(SQLModel, table=True):
    """A named tariff of an organisation; its prices live in its versions."""

    __tablename__ = "tariff"
    __table_args__ = (UniqueConstraint("organization_id", "name", name="uq_tariff_org_name"),)

    id: int | None = Field(default=None, sa_column=bigint_pk())
    organization_id: int = Field(foreign_key="organization.id", index=True)
    name: str = Field(max_length=80)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    # Archived tariffs price the sessions that started under them, and nothing new.
    archived_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class TariffVersion(SQLModel, table=True):
    """One immutable set of prices (see api.billing.codec for `definition`)."""

    __tablename__ = "tariff_version"
    __table_args__ = (UniqueConstraint("tariff_id", "version", name="uq_tariff_version"),)

    id: int | None = Field(default=None, sa_column=bigint_pk())
    tariff_id: int = Field(foreign_key="tariff.id")
    version: int
    definition: dict[str, Any] = Field(sa_column=Column(JSON(), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class TariffAssignment(SQLModel, table=True):
    """Where a tariff applies: the whole organisation, a location, a station or one connector
    (the most specific wins). Active while `removed_at` is NULL."""

    __tablename__ = "tariff_assignment"
    __table_args__ = (Index("ix_tariff_assignment_org_active", "organization_id", "removed_at"),)

    id: int | None = Field(default=None, sa_column=bigint_pk())
    organization_id: int = Field(foreign_key="organization.id")
    tariff_id: int = Field(foreign_key="tariff.id")
    location_id: int | None = Field(default=None, foreign_key="location.id")
    station_id: int | None = Field(default=None, foreign_key="charging_station.id")
    # With station_id: one connector of that station.
    connector_id: int | None = Field(default=None)
    # Only for members of this plan (they get it in preference to the general tariffs).
    plan_id: int | None = Field(default=None, foreign_key="membership_plan.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    removed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
