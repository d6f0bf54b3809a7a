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
    # The driver's part: "due" until captured ("paid"), "unpaid" when it could not be taken (a
    # debt that blocks the driver's next start), "none" when nobody is charged by card.
    payment_status: str = Field(default="due", max_length=8, index=True)
    amount_paid: int = 0
    # How the driver's part was paid, for revenue by payment method: "card", or "none" (nothing
    # charged by card: free, sponsored, fleet); NULL until settled.
    payment_method: str | None = Field(default=None, max_length=16)


class OrganizationBilling(SQLModel, table=True):
    """How an organisation takes payment for charging (absent row: payments not required)."""

    __tablename__ = "organization_billing"

    organization_id: int = Field(foreign_key="organization.id", primary_key=True)
    # Drivers starting from the app must hold a card payment before the station is asked.
    payments_required: bool = False
    # What the bank holds at the start, in minor units (raised while the session runs).
    hold_amount: int = 5_000
    # When Stripe cannot be reached: "allow" (start, charge at the end) or "refuse".
    provider_down_policy: str = Field(default="allow", max_length=8)
    # When the running cost nears the hold: "increment" it, or "stop" the session.
    over_hold_policy: str = Field(default="increment", max_length=10)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
