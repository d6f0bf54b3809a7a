"""Memberships: plans an organisation sells to drivers, and each driver's subscription.

A plan is a monthly fee for better prices: a discount on every session, energy included each
month, and/or tariffs of its own (tariff assignments can name a plan). Subscriptions follow
Stripe's (their state comes from its webhooks); usage counts the included energy per period.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from schema.columns import bigint_pk, utc_column
from schema.timeutil import UTCDateTime, utcnow


class MembershipPlan(SQLModel, table=True):
    __tablename__ = "membership_plan"
    __table_args__ = (UniqueConstraint("organization_id", "name", name="uq_membership_plan_org_name"),)

    id: int | None = Field(default=None, sa_column=bigint_pk())
    organization_id: int = Field(foreign_key="organization.id", index=True)
    name: str = Field(max_length=80)
    description: str = Field(default="", max_length=500)
    monthly_fee: int = Field(description="Minor units of the organisation's currency.")
    currency: str = Field(max_length=3)
    included_wh: int = Field(default=0, description="Energy included each period, free at any tariff.")
    discount_basis_points: int = Field(default=0, description="Off every session's price; 1000 = 10 %.")
    # The fee's tax, for the member's invoices: the rate, and whether `monthly_fee` includes it
    # (if not, the member is charged the fee plus the tax).
    tax_basis_points: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    fee_includes_tax: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    stripe_product_id: str | None = Field(default=None, max_length=64)
    stripe_price_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    archived_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class PlanSubscription(SQLModel, table=True):
    """A driver's membership of one plan; `status` is Stripe's subscription status."""

    __tablename__ = "plan_subscription"
    __table_args__ = (
        Index("ix_plan_subscription_user_org", "user_id", "organization_id"),
        # One live membership per driver and organisation, on every database: the column
        # holds the organisation while the membership is live and NULL once it ended (NULLs
        # never collide), so two concurrent subscribes cannot both insert.
        UniqueConstraint("user_id", "open_organization_id", name="uq_plan_subscription_open"),
    )

    id: int | None = Field(default=None, sa_column=bigint_pk())
    user_id: int = Field(foreign_key="user_account.id")
    plan_id: int = Field(foreign_key="membership_plan.id")
    organization_id: int = Field(foreign_key="organization.id")
    status: str = Field(default="incomplete", max_length=24)
    stripe_subscription_id: str | None = Field(default=None, max_length=64, unique=True)
    current_period_start: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    current_period_end: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    cancel_at_period_end: bool = False
    open_organization_id: int | None = Field(
        default=None, description="organization_id while live (not canceled or expired); NULL after."
    )
    # Stripe's `created` of the newest subscription event applied: older ones arriving later
    # are skipped, so a late "active" never undoes a newer "past_due".
    last_event_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    latest_invoice_id: str | None = Field(default=None, max_length=64)
    latest_invoice_status: str | None = Field(
        default=None, max_length=24, description="paid or payment_failed, from invoice.* webhooks."
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class PlanUsage(SQLModel, table=True):
    """Included energy used in one period of one subscription."""

    __tablename__ = "plan_usage"

    subscription_id: int = Field(foreign_key="plan_subscription.id", primary_key=True)
    period_start: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    used_wh: int = 0
