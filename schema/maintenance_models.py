"""Maintenance records: work orders (the job that fixes or prevents a problem), what happened
on each (its timeline, checklist, parts, attachments), drivers' problem reports, inspection
plans and each organisation's maintenance rules (SLA per severity, auto-creation).

A work order links to the incident, driver report or inspection plan that caused it; at most
one work order exists per incident and at most one unfinished one per inspection plan and
station — partial unique indexes, so racing workers cannot create a second.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, text
from sqlmodel import Field, SQLModel

from schema.columns import bigint_pk, utc_column
from schema.timeutil import utcnow


def _fk(target: str, *, nullable: bool) -> Column[int]:
    """References to 64-bit ids (BIGINT on PostgreSQL, INTEGER on SQLite)."""
    return Column(BigInteger().with_variant(Integer(), "sqlite"), ForeignKey(target), nullable=nullable)


class WorkOrderState(StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    VERIFIED = "verified"
    CANCELLED = "cancelled"


# States in which nothing more happens to an order (its SLA no longer runs).
FINAL_STATES = frozenset({WorkOrderState.VERIFIED, WorkOrderState.CANCELLED})
# States after the work itself is done: the SLA is met or missed by then.
DONE_STATES = frozenset({WorkOrderState.RESOLVED, WorkOrderState.VERIFIED, WorkOrderState.CANCELLED})
_UNFINISHED_SQL = "state NOT IN ('resolved', 'verified', 'cancelled')"


class WorkOrderSource(StrEnum):
    INCIDENT = "incident"
    MANUAL = "manual"
    DRIVER_REPORT = "driver_report"
    INSPECTION = "inspection"


class WorkOrder(SQLModel, table=True):
    __tablename__ = "work_order"
    __table_args__ = (
        Index(
            "uq_work_order_incident",
            "incident_id",
            unique=True,
            postgresql_where=text("incident_id IS NOT NULL"),
            sqlite_where=text("incident_id IS NOT NULL"),
        ),
        Index(
            "uq_work_order_open_inspection",
            "inspection_plan_id",
            "station_id",
            unique=True,
            postgresql_where=text(f"inspection_plan_id IS NOT NULL AND {_UNFINISHED_SQL}"),
            sqlite_where=text(f"inspection_plan_id IS NOT NULL AND {_UNFINISHED_SQL}"),
        ),
        Index("ix_work_order_org_state", "organization_id", "state"),
        Index("ix_work_order_assignee_due", "assignee_id", "sla_due_at"),
        Index("ix_work_order_station_created", "station_id", "created_at"),
    )

    id: int | None = Field(default=None, sa_column=bigint_pk())
    organization_id: int = Field(foreign_key="organization.id")
    station_id: int = Field(foreign_key="charging_station.id")
    connector_id: int | None = None
    title: str = Field(max_length=200)
    description: str = Field(default="", max_length=4000)
    source: str = Field(max_length=16)
    incident_id: int | None = Field(default=None, sa_column=_fk("incident.id", nullable=True))
    inspection_plan_id: int | None = Field(default=None, sa_column=_fk("inspection_plan.id", nullable=True))
    driver_report_id: int | None = Field(default=None, sa_column=_fk("driver_report.id", nullable=True))
    severity: str = Field(max_length=10)
    state: str = Field(default=WorkOrderState.OPEN.value, max_length=12)
    assignee_id: int | None = Field(default=None, foreign_key="user_account.id")
    sla_due_at: datetime = Field(sa_column=utc_column())
    # Set once by the SLA job (or on completion after the due time): the breach is a fact.
    sla_breached_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    currency: str = Field(default="EUR", max_length=3)
    labour_cost: int = 0  # minor units
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    assigned_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    started_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    resolved_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    verified_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    cancelled_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class WorkOrderEntry(SQLModel, table=True):
    """The order's timeline: each state change (who, when, from, to), notes, station actions
    run from it, parts and attachments added."""

    __tablename__ = "work_order_entry"
    __table_args__ = (Index("ix_work_order_entry_order_at", "work_order_id", "at"),)

    id: int | None = Field(default=None, sa_column=bigint_pk())
    work_order_id: int = Field(sa_column=_fk("work_order.id", nullable=False))
    at: datetime = Field(sa_column=utc_column())
    # state | note | action | part | attachment | checklist | labour
    kind: str = Field(max_length=12)
    user_id: int | None = Field(default=None, foreign_key="user_account.id")
    from_state: str | None = Field(default=None, max_length=12)
    to_state: str | None = Field(default=None, max_length=12)
    text: str | None = Field(default=None, max_length=2000)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON(), nullable=False))


class WorkOrderChecklistItem(SQLModel, table=True):
    __tablename__ = "work_order_checklist_item"
    __table_args__ = (Index("ix_work_order_checklist_order", "work_order_id", "position"),)

    id: int | None = Field(default=None, sa_column=bigint_pk())
    work_order_id: int = Field(sa_column=_fk("work_order.id", nullable=False))
    position: int = 0
    text: str = Field(max_length=300)
    done: bool = False
    done_by: int | None = Field(default=None, foreign_key="user_account.id")
    done_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class WorkOrderPart(SQLModel, table=True):
    __tablename__ = "work_order_part"
    __table_args__ = (Index("ix_work_order_part_order", "work_order_id"),)

    id: int | None = Field(default=None, sa_column=bigint_pk())
    work_order_id: int = Field(sa_column=_fk("work_order.id", nullable=False))
    name: str = Field(max_length=200)
    part_number: str | None = Field(default=None, max_length=100)
    quantity: int = 1
    unit_cost: int = 0  # minor units of the order's currency
    added_by: int | None = Field(default=None, foreign_key="user_account.id")
    added_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class WorkOrderAttachment(SQLModel, table=True):
    """A file kept with the order: a photo, or a diagnostics file the station uploaded."""

    __tablename__ = "work_order_attachment"
    __table_args__ = (Index("ix_work_order_attachment_order", "work_order_id"),)

    id: int | None = Field(default=None, sa_column=bigint_pk())
    work_order_id: int = Field(sa_column=_fk("work_order.id", nullable=False))
    station_file_id: int = Field(sa_column=_fk("station_file.id", nullable=False))
    kind: str = Field(max_length=12)  # photo | diagnostics
    added_by: int | None = Field(default=None, foreign_key="user_account.id")
    added_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class DriverReport(SQLModel, table=True):
    """A driver's report of a problem at a station, as sent from the app."""

    __tablename__ = "driver_report"
    __table_args__ = (
        Index("ix_driver_report_user_created", "user_id", "created_at"),
        Index("ix_driver_report_org_created", "organization_id", "created_at"),
    )

    id: int | None = Field(default=None, sa_column=bigint_pk())
    user_id: int = Field(foreign_key="user_account.id")
    organization_id: int | None = Field(default=None, foreign_key="organization.id")
    station_id: int = Field(foreign_key="charging_station.id")
    connector_id: int | None = None
    category: str = Field(max_length=20)
    text: str = Field(max_length=2000)
    photo_file_id: int | None = Field(default=None, sa_column=_fk("station_file.id", nullable=True))
    incident_id: int | None = Field(default=None, sa_column=_fk("incident.id", nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class InspectionPlan(SQLModel, table=True):
    """Preventive maintenance: the stations it covers (a vendor/model, a location, or both),
    how often (days, sessions, Wh — whichever comes first) and the checklist to follow."""

    __tablename__ = "inspection_plan"
    __table_args__ = (Index("ix_inspection_plan_org", "organization_id"),)

    id: int | None = Field(default=None, sa_column=bigint_pk())
    organization_id: int = Field(foreign_key="organization.id")
    name: str = Field(max_length=200)
    vendor: str | None = Field(default=None, max_length=50)
    model: str | None = Field(default=None, max_length=50)
    location_id: int | None = Field(default=None, foreign_key="location.id")
    every_days: int | None = None
    every_sessions: int | None = None
    every_wh: int | None = Field(default=None, sa_column=Column(BigInteger(), nullable=True))
    checklist: list[str] = Field(default_factory=list, sa_column=Column(JSON(), nullable=False))
    severity: str = Field(default="low", max_length=10)
    active: bool = True
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class MaintenanceSettings(SQLModel, table=True):
    """An organisation's maintenance rules; no row means the defaults (see api/service)."""

    __tablename__ = "maintenance_settings"

    organization_id: int = Field(foreign_key="organization.id", primary_key=True)
    sla_critical_minutes: int = 4 * 60
    sla_high_minutes: int = 24 * 60
    sla_medium_minutes: int = 72 * 60
    sla_low_minutes: int = 7 * 24 * 60
    # Space-separated incident severities that get a work order automatically.
    auto_create_severities: str = Field(default="critical high", max_length=40)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
