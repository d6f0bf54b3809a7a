"""Sponsored charging: who funds sessions, where and when, and what each session drew.

A sponsorship's budget is only ever consumed through `sponsorship_claim` rows: a session
reserves its share when it starts (`reserved` grows under a row lock, so concurrent starts can
never reserve more than the budget) and settles it when its bill is known (`spent` grows by
what the sponsor really covers, `reserved` shrinks by what was held). `spent + reserved <=
budget` holds at every commit.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, Date, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from schema.columns import bigint_pk, utc_column
from schema.timeutil import utcnow


class Sponsor(SQLModel, table=True):
    """A business that funds charging on an operator's network (e.g. the retailer at a site)."""

    __tablename__ = "sponsor"
    __table_args__ = (UniqueConstraint("organization_id", "name", name="uq_sponsor_org_name"),)

    id: int | None = Field(default=None, sa_column=bigint_pk())
    organization_id: int = Field(foreign_key="organization.id", index=True)
    name: str = Field(max_length=80)
    contact_email: str | None = Field(default=None, max_length=254)
    billing_address: str | None = Field(default=None, max_length=500)
    vat_id: str | None = Field(default=None, max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class Sponsorship(SQLModel, table=True):
    """Where (locations and/or stations), when (local-time windows, starts/ends) and how much
    (per-session cap in money or energy, total budget) a sponsor pays for sessions."""

    __tablename__ = "sponsorship"
    __table_args__ = (
        Index("ix_sponsorship_org_state", "organization_id", "state"),
        # The budget guarantee, enforced by the database too: whatever code runs, never overspent.
        CheckConstraint(
            "spent >= 0 AND reserved >= 0 AND spent + reserved <= budget", name="ck_sponsorship_within_budget"
        ),
    )

    id: int | None = Field(default=None, sa_column=bigint_pk())
    organization_id: int = Field(foreign_key="organization.id")
    sponsor_id: int = Field(foreign_key="sponsor.id", index=True)
    currency: str = Field(max_length=3)
    message: str = Field(max_length=200)
    # Where it applies: a session at any of these locations or stations (ids of the organisation).
    location_ids: list[int] = Field(sa_column=Column(JSON(), nullable=False))
    station_ids: list[int] = Field(sa_column=Column(JSON(), nullable=False))
    # When, in each location's local time: [{"start": "HH:MM", "end": "HH:MM", "days": [0..6]}];
    # empty: at any time between starts_at and ends_at.
    windows: list[dict[str, Any]] = Field(sa_column=Column(JSON(), nullable=False))
    # Per-session cap: exactly one of the two is set.
    cap_amount: int | None = None
    cap_wh: int | None = None
    budget: int
    spent: int = 0
    reserved: int = 0
    state: str = Field(default="active", max_length=16)  # active | exhausted | ended
    starts_at: datetime = Field(sa_column=utc_column())
    ends_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    ended_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class SponsorshipClaim(SQLModel, table=True):
    """One session's draw on a sponsorship: reserved at its start, settled (or released) once
    its bill is known."""

    __tablename__ = "sponsorship_claim"

    id: int | None = Field(default=None, sa_column=bigint_pk())
    sponsorship_id: int = Field(foreign_key="sponsorship.id", index=True)
    transaction_id: int = Field(foreign_key="charging_transaction.id", unique=True)
    reserved_amount: int
    final_amount: int | None = None
    energy_wh: int = 0
    state: str = Field(default="reserved", max_length=16)  # reserved | settled | released
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    settled_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True, index=True))


class SponsorshipImpression(SQLModel, table=True):
    """How often apps showed the sponsor's message, per UTC day (one upserted counter row)."""

    __tablename__ = "sponsorship_impression"

    sponsorship_id: int = Field(foreign_key="sponsorship.id", primary_key=True)
    day: date = Field(sa_column=Column(Date(), primary_key=True))
    count: int = 0


class SponsorStatement(SQLModel, table=True):
    """A sponsor's monthly statement: the sessions it paid for and what it owes. Issued once per
    sponsor and month; the invoice module turns it into a numbered invoice."""

    __tablename__ = "sponsor_statement"
    __table_args__ = (UniqueConstraint("sponsor_id", "month", name="uq_sponsor_statement_month"),)

    id: int | None = Field(default=None, sa_column=bigint_pk())
    organization_id: int = Field(foreign_key="organization.id", index=True)
    sponsor_id: int = Field(foreign_key="sponsor.id")
    month: str = Field(max_length=7)  # YYYY-MM (UTC)
    currency: str = Field(max_length=3)
    sessions: int
    energy_wh: int
    amount: int
    impressions: int
    # One line per sponsorship: {"sponsorship_id", "message", "sessions", "energy_wh", "amount",
    # "impressions"}.
    lines: list[dict[str, Any]] = Field(sa_column=Column(JSON(), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
