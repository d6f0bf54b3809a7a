"""Station health: the early-warning score the worker computes per station, kept with the
inputs it came from so an operator can see why a station scores what it does.

One row per station, replaced by each run of the health job (not a history: incidents and
their evidence entries keep the moments that mattered). `degraded` is the hysteresis state,
so a score hovering around the threshold opens one incident, not one per run.

The low-power input is kept per session (`session_power_check`), written once when the
session ends: the hourly job then reads a row per session instead of a week of meter samples.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from schema.columns import utc_column


class StationHealth(SQLModel, table=True):
    __tablename__ = "station_health"
    __table_args__ = (Index("ix_station_health_score", "score"),)

    station_id: int = Field(primary_key=True, foreign_key="charging_station.id")
    score: int = Field(description="0 (failing) to 100 (healthy)")
    # Below the threshold since `degraded_since`; cleared only above threshold + hysteresis.
    degraded: bool = False
    degraded_since: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    threshold: int
    window_start: datetime = Field(sa_column=utc_column())
    computed_at: datetime = Field(sa_column=utc_column())
    # Per input: kind, count, out_of, value, zero_at, sub_score, weight (api/service/health.py).
    factors: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON(), nullable=False))


class SessionPowerCheck(SQLModel, table=True):
    """An ended session's average import power while the car's SoC was low, beside the
    connector's rated power. Only sessions with such samples have a row."""

    __tablename__ = "session_power_check"
    __table_args__ = (Index("ix_session_power_check_stopped", "stopped_at"),)

    transaction_id: int = Field(primary_key=True, foreign_key="charging_transaction.id")
    station_id: int = Field(foreign_key="charging_station.id")
    stopped_at: datetime = Field(sa_column=utc_column())
    low_soc_avg_power_w: int
    rated_power_w: int
    samples: int
