"""Receipts and invoices: numbered, immutable billing documents, and their gap-free counters.

One table holds both kinds. A receipt is issued for one charged session (its `session_charge`);
an invoice covers a period and many lines (memberships, sponsor statements). Both are numbered
from the same kind of counter — one row per (organisation, series, year) — so every document an
organisation issues has a number with no gaps, as tax authorities require.

A document is a snapshot: seller, buyer, lines and session facts are copied in when it is
issued, so renaming the organisation or deleting the driver's account later never changes a
document already handed out.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, PrimaryKeyConstraint, UniqueConstraint
from sqlmodel import Field, SQLModel

from schema.columns import bigint_pk, utc_column
from schema.timeutil import utcnow

# What a document says of a buyer whose account was deleted (their name and email are erased).
ERASED_BUYER: dict[str, Any] = {
    "kind": "deleted_account",
    "name": "Deleted account",
    "email": None,
    "id_tag": None,
}


class DocumentKind(StrEnum):
    RECEIPT = "receipt"
    INVOICE = "invoice"


class InvoicePurpose(StrEnum):
    """What an invoice bills: a driver's membership fee, or a sponsor's month."""

    MEMBERSHIP = "membership"
    SPONSORSHIP = "sponsorship"


class DocumentCounter(SQLModel, table=True):
    """The last number issued in one series of one organisation in one year.

    Incremented under a row lock in the transaction that inserts the documents it numbers, so
    a rolled-back issue gives its numbers back: never a database sequence, which leaves gaps.
    """

    __tablename__ = "document_counter"
    __table_args__ = (PrimaryKeyConstraint("organization_id", "series", "year"),)

    organization_id: int = Field(foreign_key="organization.id")
    series: str = Field(max_length=8)
    year: int
    last_number: int = 0


class BillingDocument(SQLModel, table=True):
    __tablename__ = "invoice"
    __table_args__ = (
        UniqueConstraint("organization_id", "series", "year", "sequence", name="uq_invoice_sequence"),
        # The driver's own list and the operator's list, newest first.
        Index("ix_invoice_org_issued", "organization_id", "issued_at"),
        Index("ix_invoice_user_issued", "user_id", "issued_at"),
        # The operator's list filtered by what the invoices bill.
        Index("ix_invoice_org_purpose", "organization_id", "purpose"),
        UniqueConstraint("source_key", name="uq_invoice_source_key"),
    )

    id: int | None = Field(default=None, sa_column=bigint_pk())
    organization_id: int = Field(foreign_key="organization.id")
    kind: str = Field(max_length=16, description="receipt | invoice (DocumentKind)")
    series: str = Field(max_length=8)
    year: int
    sequence: int = Field(description="1, 2, 3 … within (organisation, series, year), no gaps")
    number: str = Field(max_length=40, description="What the document shows, e.g. R-2026-000042")
    issued_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    # Receipt: the session it is for (one receipt per charged session).
    session_charge_id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger(), ForeignKey("session_charge.id"), unique=True, nullable=True),
    )
    transaction_id: int | None = Field(default=None, foreign_key="charging_transaction.id", index=True)
    station_id: int | None = Field(default=None, foreign_key="charging_station.id")
    # The buyer when they have an account (a driver, a member); NULL for anonymous cards and
    # for invoices to sponsors (their details are in `buyer`).
    user_id: int | None = Field(default=None, foreign_key="user_account.id")
    # Invoice: what it bills (InvoicePurpose), and the fact it was issued for — one invoice per
    # fact, whoever asks how often: "sponsor_statement:<id>", "stripe_invoice:<Stripe id>".
    purpose: str | None = Field(default=None, max_length=16)
    source_key: str | None = Field(default=None, max_length=96)
    # Invoice: the period it covers.
    period_start: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    period_end: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    currency: str = Field(max_length=3)
    # Snapshots (see the module docstring): {"name", "legal_name", "address", "vat_id"};
    # {"kind": "driver" | "anonymous" | …, "name", "email", "id_tag"}; lines as
    # {"description", "quantity", "unit", "unit_price", "amount", "tax_basis_points"};
    # per tax rate {"tax_basis_points", "net", "tax", "gross"}; session facts for receipts.
    seller: dict[str, Any] = Field(sa_column=Column(JSON(), nullable=False))
    buyer: dict[str, Any] = Field(sa_column=Column(JSON(), nullable=False))
    lines: list[dict[str, Any]] = Field(sa_column=Column(JSON(), nullable=False))
    tax_breakdown: list[dict[str, Any]] = Field(sa_column=Column(JSON(), nullable=False))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON(), nullable=False))
    net: int
    tax: int
    total: int
    # What a sponsor covers of `total`; the buyer pays `amount_due`.
    sponsor_amount: int = 0
    amount_due: int
