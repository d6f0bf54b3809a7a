"""Detection state that is neither an incident nor an outage: how many sessions in a row have
failed on each connector (what "connector not charging" counts)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from schema.columns import utc_column
from schema.timeutil import utcnow


class ConnectorFailureStreak(SQLModel, table=True):
    """Consecutive failed sessions on one connector; a successful session sets it to zero.

    A counter rather than a query over history, because failures come from two sources (ended
    transactions and remote starts that never became one) whose orders would have to be merged
    on every event; the counter is one upsert, atomic under concurrent workers."""

    __tablename__ = "connector_failure_streak"

    station_id: int = Field(foreign_key="charging_station.id", primary_key=True)
    connector_id: int = Field(primary_key=True)
    failures: int = 0
    last_reason: str | None = Field(default=None, max_length=200)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
