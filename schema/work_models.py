"""Tables for durable work: the transactional outbox, the processed-event ledger of the
workers, and what the worker jobs write (session summaries, stuck-session flags).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from schema.columns import bigint_pk, utc_column
from schema.timeutil import utcnow


def _fk(target: str, name: str, *, nullable: bool = False, index: bool = False) -> Column[int]:
    return Column(Integer(), ForeignKey(target, name=name), nullable=nullable, index=index)


class OutboxEvent(SQLModel, table=True):
    """An event that money or maintenance depends on, written in the same transaction as the
    facts it announces. The relay moves unpublished rows, in id order, to the durable channel
    and stamps `published_at`; published rows are deleted after a retention period."""

    __tablename__ = "outbox_event"
    __table_args__ = (
        # The relay's only query: the oldest unpublished rows. Partial, so it stays tiny
        # however many published rows wait for the retention purge.
        Index(
            "ix_outbox_event_pending",
            "id",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
        Index("ix_outbox_event_published_at", "published_at"),
    )

    id: int | None = Field(default=None, sa_column=bigint_pk())
    event_type: str = Field(max_length=40)
    # `Event.to_dict()` with datetimes as ISO 8601 text; `event_from_dict` rebuilds the event.
    payload: dict[str, Any] = Field(sa_column=Column(JSON(), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    published_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class ProcessedEvent(SQLModel, table=True):
    """Which outbox event a consumer (a worker group, not one replica) has processed.

    Recorded in the same transaction as the handler's own writes, so a redelivered event is
    recognised and changes nothing the second time.
    """

    __tablename__ = "processed_event"
    __table_args__ = (UniqueConstraint("consumer", "event_id", name="uq_processed_event_consumer_event"),)

    id: int | None = Field(default=None, sa_column=bigint_pk())
    consumer: str = Field(max_length=80)
    # The outbox row's id (not the stream entry id, which differs per relay attempt).
    event_id: int = Field(sa_column=Column(BigInteger(), nullable=False))
    event_type: str = Field(max_length=40)
    processed_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(index=True))


class SessionSummary(SQLModel, table=True):
    """One row per finished charging session: what billing, uptime and analytics read."""

    __tablename__ = "session_summary"
    __table_args__ = (UniqueConstraint("transaction_id", name="uq_session_summary_transaction"),)

    id: int | None = Field(default=None, primary_key=True)
    transaction_id: int = Field(sa_column=_fk("charging_transaction.id", "fk_session_summary_transaction"))
    station_id: int = Field(sa_column=_fk("charging_station.id", "fk_session_summary_station", index=True))
    connector_id: int
    user_id: int | None = Field(
        default=None, sa_column=_fk("user_account.id", "fk_session_summary_user", nullable=True, index=True)
    )
    started_at: datetime = Field(sa_column=utc_column())
    stopped_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True, index=True))
    duration_s: int = 0
    # From the meter register (stop − start), never summed from power.
    energy_wh: int = 0
    # Highest total (phase-less) import power sampled during the session.
    max_power_w: int | None = None
    # Sampled values stored for the session (every measurand and phase).
    sample_count: int = 0
    stop_reason: str | None = Field(default=None, max_length=30)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class StuckSession(SQLModel, table=True):
    """An Active session that looks abandoned: its station has been offline too long, or no
    meter value arrived for too long. Resolved when the session ends."""

    __tablename__ = "stuck_session"
    __table_args__ = (UniqueConstraint("transaction_id", name="uq_stuck_session_transaction"),)

    id: int | None = Field(default=None, primary_key=True)
    transaction_id: int = Field(sa_column=_fk("charging_transaction.id", "fk_stuck_session_transaction"))
    # "station_offline" or "no_meter_values".
    reason: str = Field(max_length=30)
    detected_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    resolved_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True, index=True))
