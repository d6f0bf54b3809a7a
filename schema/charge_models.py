"""The bill of each session: what it cost, priced once when it ended.

Written by the worker from the durable TransactionEnded event with the tariff version frozen at
the session's start, and never recomputed: receipts, payment captures, sponsor statements and
revenue reports all read this row, so they always agree with each other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from schema.columns import bigint_pk, utc_column
from schema.timeutil import utcnow


class SessionCharge(SQLModel, table=True):
    __tablename__ = "session_charge"

    id: int | None = Field(default=None, sa_column=bigint_pk())
    transaction_id: int = Field(foreign_key="charging_transaction.id", unique=True)
    organization_id: int | None = Field(default=None, foreign_key="organization.id", index=True)
    station_id: int = Field(foreign_key="charging_station.id")
    user_id: int | None = Field(default=None, foreign_key="user_account.id", index=True)
    id_tag: str | None = Field(default=None, max_length=36)
    tariff_version_id: int | None = Field(default=None, foreign_key="tariff_version.id")
    currency: str = Field(max_length=3)
    # The price engine's lines (api.billing.charges.lines_json): label, quantities, unit price.
    lines: list[dict[str, Any]] = Field(sa_column=Column(JSON(), nullable=False))
    subtotal: int
    net: int
    tax: int
    total: int
    tax_basis_points: int = 0
    prices_include_tax: bool = True
    energy_wh: int = 0
    charging_seconds: int = 0
    idle_seconds: int = 0
    # Who pays: a sponsor may cover part of the total; the driver pays the rest.
    sponsor_amount: int = 0
    driver_amount: int
    started_at: datetime = Field(sa_column=utc_column())
    stopped_at: datetime = Field(sa_column=utc_column())
    priced_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(index=True))
