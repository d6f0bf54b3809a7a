"""Serviceability records: incidents (something is wrong with a station), the evidence and
conversation behind each, and port outages (the intervals a connector could not charge).

These are the contract between the parts of serviceability: detection opens and resolves
incidents and writes outages; work orders link to incidents; uptime reads outages and their
exclusions. Outages are their own rows, not derived from incidents, because uptime must count
every minute a port was down even when no incident was opened (an operator's own maintenance,
an outage shorter than a detection grace).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, text
from sqlmodel import Field, SQLModel

from schema.columns import bigint_pk, utc_column
from schema.timeutil import utcnow


def _incident_fk(*, nullable: bool) -> Column[int]:
    """Incident ids are 64-bit on PostgreSQL; the references match."""
    return Column(
        BigInteger().with_variant(Integer(), "sqlite"), ForeignKey("incident.id"), nullable=nullable
    )


class IncidentKind(StrEnum):
    OFFLINE = "offline"  # the station stopped talking (silent or socket closed beyond a grace)
    FAULT = "fault"  # a connector or the station reported a fault / error code
    NOT_CHARGING = "not_charging"  # consecutive failed sessions on a connector
    DEGRADED = "degraded"  # the health score crossed its threshold: an early warning
    SECURITY = "security"  # a 2.0.1 SecurityEventNotification worth a look
    DRIVER_REPORT = "driver_report"  # a driver reported a problem from the app


class IncidentSeverity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class IncidentState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class OutageCause(StrEnum):
    OFFLINE = "offline"  # the station was unreachable
    FAULTED = "faulted"  # the connector reported Faulted / an error
    UNAVAILABLE = "unavailable"  # the connector was Unavailable (Inoperative)


class ExclusionReason(StrEnum):
    """Why an outage does not count against uptime (the exclusions 23 CFR 680.116(b) allows)."""

    UTILITY_INTERRUPTION = "utility_interruption"
    VEHICLE_FAULT = "vehicle_fault"
    SCHEDULED_MAINTENANCE = "scheduled_maintenance"
    VANDALISM = "vandalism"
    NATURAL_DISASTER = "natural_disaster"


class Incident(SQLModel, table=True):
    """One problem on one station (connector 0 or NULL: the station as a whole).

    `dedup_key` names the problem (e.g. "fault:12:2:GroundFailure"); while an incident with
    that key is not resolved no second one opens — the partial unique index makes that true
    under concurrent workers too. A repeat sighting bumps `occurrences` and `last_seen_at`.
    """

    __tablename__ = "incident"
    __table_args__ = (
        Index(
            "uq_incident_open_dedup",
            "dedup_key",
            unique=True,
            postgresql_where=text("state <> 'resolved'"),
            sqlite_where=text("state <> 'resolved'"),
        ),
        Index("ix_incident_org_state_opened", "organization_id", "state", "opened_at"),
        Index("ix_incident_station_opened", "station_id", "opened_at"),
    )

    id: int | None = Field(default=None, sa_column=bigint_pk())
    organization_id: int | None = Field(default=None, foreign_key="organization.id")
    station_id: int = Field(foreign_key="charging_station.id")
    connector_id: int | None = None
    kind: str = Field(max_length=20)
    severity: str = Field(max_length=10)
    state: str = Field(default=IncidentState.OPEN.value, max_length=14)
    dedup_key: str = Field(max_length=200)
    title: str = Field(max_length=200)
    # The OCPP error code and the vendor's own, kept as reported.
    error_code: str | None = Field(default=None, max_length=50)
    vendor_error_code: str | None = Field(default=None, max_length=50)
    # Auto-resolution is off for codes that need a technician's confirmation.
    auto_resolve: bool = True
    occurrences: int = 1
    opened_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    last_seen_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    acknowledged_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    acknowledged_by: int | None = Field(default=None, foreign_key="user_account.id")
    resolved_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # NULL with resolved_at set: resolved automatically (the station recovered).
    resolved_by: int | None = Field(default=None, foreign_key="user_account.id")
    resolution: str | None = Field(default=None, max_length=500)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class IncidentEntry(SQLModel, table=True):
    """The incident's timeline: the station facts behind it (status notifications, events,
    failed sessions) and what people did (acknowledged, commented, resolved)."""

    __tablename__ = "incident_entry"
    __table_args__ = (Index("ix_incident_entry_incident_at", "incident_id", "at"),)

    id: int | None = Field(default=None, sa_column=bigint_pk())
    incident_id: int = Field(sa_column=_incident_fk(nullable=False))
    at: datetime = Field(sa_column=utc_column())
    # evidence | opened | acknowledged | comment | resolved | reopened | work_order
    kind: str = Field(max_length=20)
    user_id: int | None = Field(default=None, foreign_key="user_account.id")
    text: str | None = Field(default=None, max_length=2000)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON(), nullable=False))


class PortOutage(SQLModel, table=True):
    """An interval during which one connector (a "port" in NEVI's words) could not deliver
    energy. Open while `ended_at` is NULL. Overlapping rows of different causes are allowed
    (a faulted connector on a station that then goes offline); uptime takes their union."""

    __tablename__ = "port_outage"
    __table_args__ = (
        Index("ix_port_outage_station_conn_start", "station_id", "connector_id", "started_at"),
        Index(
            "ix_port_outage_open",
            "station_id",
            postgresql_where=text("ended_at IS NULL"),
            sqlite_where=text("ended_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, sa_column=bigint_pk())
    station_id: int = Field(foreign_key="charging_station.id")
    connector_id: int
    cause: str = Field(max_length=16)
    started_at: datetime = Field(sa_column=utc_column())
    ended_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    incident_id: int | None = Field(default=None, sa_column=_incident_fk(nullable=True))
    error_code: str | None = Field(default=None, max_length=50)


class OutageExclusion(SQLModel, table=True):
    """An interval an operator (or a maintenance visit) classified as excluded from uptime,
    on one port or — `connector_id` NULL — every port of the station. Kept as its own interval
    rather than a flag on an outage, so an exclusion may cover part of an outage, or several.
    Never deleted: withdrawing one stamps `revoked_at`, and the audit log says who and why."""

    __tablename__ = "outage_exclusion"
    __table_args__ = (Index("ix_outage_exclusion_station_start", "station_id", "started_at"),)

    id: int | None = Field(default=None, sa_column=bigint_pk())
    organization_id: int | None = Field(default=None, foreign_key="organization.id")
    station_id: int = Field(foreign_key="charging_station.id")
    connector_id: int | None = None
    started_at: datetime = Field(sa_column=utc_column())
    ended_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    reason: str = Field(max_length=24)
    note: str | None = Field(default=None, max_length=500)
    # The maintenance visit (work order) that caused it, when it was recorded automatically.
    work_order_id: int | None = None
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    revoked_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    revoked_by: int | None = Field(default=None, foreign_key="user_account.id")
