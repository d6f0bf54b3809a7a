"""Tables of payments: drivers' Stripe customers and saved cards, one payment per session
hold, and the inbox of inbound facts (Stripe webhooks) stored once and processed once.

Amounts are integer minor units of `currency` (ISO 4217, lower case as Stripe writes it).
Stripe is the source of truth for a payment's state; these rows are ChargeNet's record of
what it asked for and what Stripe last told it, so receipts, refunds and reports need no
Stripe call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from schema.columns import bigint_pk, utc_column
from schema.timeutil import utcnow


class StripeCustomer(SQLModel, table=True):
    """A driver's Stripe customer: one each way (a user has one customer, a customer one user)."""

    __tablename__ = "stripe_customer"

    user_id: int = Field(foreign_key="user_account.id", primary_key=True)
    customer_id: str = Field(max_length=64, unique=True)
    # The card sessions are held on when the app names none (Stripe's
    # invoice_settings.default_payment_method, mirrored here).
    default_payment_method_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class SavedPaymentMethod(SQLModel, table=True):
    """A card a driver saved for off-session use (a SetupIntent succeeded). A cache of Stripe's
    PaymentMethod, so lists and receipts show brand and last four without a Stripe call."""

    __tablename__ = "payment_method"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    payment_method_id: str = Field(max_length=64, unique=True)
    brand: str | None = Field(default=None, max_length=20)
    last4: str | None = Field(default=None, max_length=4)
    exp_month: int | None = None
    exp_year: int | None = None
    saved_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    detached_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class Payment(SQLModel, table=True):
    """One session's hold and charge: a manual-capture PaymentIntent.

    `status` is the PaymentIntent's status as Stripe names it; it only moves forward (see
    api.billing.payment_state), so a webhook arriving late never undoes a capture.
    """

    __tablename__ = "payment"
    __table_args__ = (Index("ix_payment_org_created", "organization_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id")
    user_id: int = Field(foreign_key="user_account.id", index=True)
    # The session it pays for; NULL while the hold precedes the session (or it never started).
    transaction_id: int | None = Field(default=None, foreign_key="charging_transaction.id", index=True)
    payment_intent_id: str = Field(max_length=64, unique=True)
    # ChargeNet's id for this payment flow (the charging request that asked for the hold):
    # every idempotency key of its Stripe calls derives from it, so later calls (increment,
    # capture, release) read it here rather than being told it again. NULL only for a row
    # rebuilt from a webhook whose intent lacked it.
    session_id: int | None = None
    customer_id: str | None = Field(default=None, max_length=64)
    payment_method_id: str | None = Field(default=None, max_length=64)
    currency: str = Field(max_length=3)
    amount_held: int = 0
    amount_captured: int = 0
    amount_refunded: int = 0
    status: str = Field(max_length=32, index=True)
    failure_code: str | None = Field(default=None, max_length=64)
    failure_message: str | None = Field(default=None, max_length=300)
    # Set when a dispute (chargeback) was opened; its Stripe status (needs_response, won, lost…).
    dispute_status: str | None = Field(default=None, max_length=32)
    # `created` of the newest Stripe event applied: an older one with the same status is stale.
    last_event_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class InboxEvent(SQLModel, table=True):
    """An inbound fact from another system (today: a Stripe webhook event), stored once by its
    `(source, external_id)` and processed once, in the order of `event_created`.

    Rows whose processing failed keep `processed_at` NULL, count `attempts` and keep the error;
    the worker retries them until `attempts` reaches the limit (api.billing.inbox)."""

    __tablename__ = "inbox_event"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_inbox_event_source_external_id"),
        # The processor's only query: the oldest unprocessed rows of a source. Partial, so it
        # stays small however many processed rows are kept.
        Index(
            "ix_inbox_event_pending",
            "source",
            "event_created",
            postgresql_where=text("processed_at IS NULL"),
            sqlite_where=text("processed_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, sa_column=bigint_pk())
    source: str = Field(max_length=20)
    external_id: str = Field(max_length=255)
    event_type: str = Field(max_length=80)
    payload: dict[str, Any] = Field(sa_column=Column(JSON(), nullable=False))
    # When the source says the event happened (Stripe's `created`): the processing order.
    event_created: datetime = Field(sa_column=utc_column())
    received_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    processed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # "handled", "recorded" (kept for a part of billing not built yet) or "ignored".
    outcome: str | None = Field(default=None, max_length=20)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))
