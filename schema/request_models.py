"""What drivers and operators ask of stations and wait for: charging requests (a remote start
until it becomes a session), reservations, and files stations upload (diagnostics, logs).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

from schema.columns import bigint_pk, utc_column
from schema.timeutil import utcnow


class ChargingRequestState(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"  # the bank wants the driver to authenticate the hold
    PENDING = "pending"  # asked; the station has not started a transaction yet
    CHARGING = "charging"  # the station reported the transaction (linked)
    FAILED = "failed"  # refused, unreachable, or never started in time
    ENDED = "ended"  # the linked transaction ended


class ChargingRequest(SQLModel, table=True):
    """A start asked of a station: returned to the app at once, linked to its transaction as
    soon as the station reports one, closed as failed when the station refuses or never does."""

    __tablename__ = "charging_request"
    __table_args__ = (
        Index("ix_charging_request_station_state", "station_id", "state"),
        Index("ix_charging_request_user_created", "user_id", "created_at"),
    )

    id: int | None = Field(default=None, sa_column=bigint_pk())
    station_id: int = Field(foreign_key="charging_station.id")
    organization_id: int | None = Field(default=None, foreign_key="organization.id")
    connector_id: int | None = Field(default=None, description="None: the station picks")
    user_id: int | None = Field(default=None, foreign_key="user_account.id")
    id_tag: str = Field(max_length=36)
    state: str = Field(default=ChargingRequestState.PENDING.value, max_length=16)
    failure_reason: str | None = Field(default=None, max_length=200)
    transaction_id: int | None = Field(default=None, foreign_key="charging_transaction.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class ReservationStatus(StrEnum):
    ACTIVE = "active"
    USED = "used"  # a session started with it
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REFUSED = "refused"  # the station answered Occupied / Faulted / Unavailable / Rejected


class Reservation(SQLModel, table=True):
    """A connector held for one driver until `expires_at`. Its id is the OCPP reservationId."""

    __tablename__ = "reservation"
    __table_args__ = (
        Index("ix_reservation_station_status", "station_id", "status"),
        Index("ix_reservation_user_created", "user_id", "created_at"),
        Index("ix_reservation_status_expires", "status", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    station_id: int = Field(foreign_key="charging_station.id")
    organization_id: int | None = Field(default=None, foreign_key="organization.id")
    connector_id: int
    user_id: int | None = Field(default=None, foreign_key="user_account.id")
    id_tag: str = Field(max_length=36)
    status: str = Field(default=ReservationStatus.ACTIVE.value, max_length=16)
    station_status: str | None = Field(default=None, max_length=30)
    expires_at: datetime = Field(sa_column=utc_column())
    transaction_id: int | None = Field(default=None, foreign_key="charging_transaction.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class StationFile(SQLModel, table=True):
    """A file a station uploads on request (GetDiagnostics / GetLog) to a one-time URL.

    The row exists from the request on; the URL carries a random token whose hash is stored,
    so only the station that was asked can fill it, once.
    """

    __tablename__ = "station_file"
    __table_args__ = (Index("ix_station_file_station_requested", "station_id", "requested_at"),)

    id: int | None = Field(default=None, sa_column=bigint_pk())
    station_id: int = Field(foreign_key="charging_station.id")
    organization_id: int | None = Field(default=None, foreign_key="organization.id")
    kind: str = Field(default="diagnostics", max_length=20)
    token_hash: str = Field(max_length=64, unique=True)
    status: str = Field(default="requested", max_length=16)
    file_name: str | None = Field(default=None, max_length=255)
    content_type: str | None = Field(default=None, max_length=100)
    size_bytes: int = Field(default=0)
    content: bytes | None = Field(default=None, sa_column=Column(LargeBinary(), nullable=True))
    requested_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    uploaded_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
