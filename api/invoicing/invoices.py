"""Invoices over a period (monthly membership fees, sponsor statements): many lines, one buyer,
numbered in their own series (`I-2026-000001`) by the same gap-free counter as receipts and
rendered by the same PDF code.

The contexts that bill memberships and sponsors build the lines; `issue_invoice` numbers and
stores the document in the caller's transaction (which must commit for the number to count).
An invoice issued for a fact (a sponsor's statement, a Stripe invoice) names it in its
`source_key`: asking again for the same fact returns the invoice already issued, so job
re-runs and webhook redeliveries never use a second number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from api.invoicing import numbering
from schema.document_models import BillingDocument, DocumentKind, InvoicePurpose
from schema.errors import InvalidInput, NotFound
from schema.models import Organization
from schema.timeutil import utcnow

DOCUMENT = BillingDocument.__table__  # type: ignore[attr-defined]
ORGANIZATION = Organization.__table__  # type: ignore[attr-defined]
INVOICE_SERIES = numbering.SERIES[DocumentKind.INVOICE]
MAX_LINES = 1_000  # a month of one member's sessions fits; more belongs in an attachment


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    description: str
    amount: int  # minor units, gross or net as the invoice's `prices_include_tax` says
    quantity: Decimal = Decimal(1)
    unit: str = "item"
    unit_price: Decimal | None = None
    tax_basis_points: int = 0


@dataclass(frozen=True, slots=True)
class Buyer:
    """A member or a sponsor, as the invoice will name them."""

    kind: str
    name: str
    email: str | None = None
    address: str | None = None
    vat_id: str | None = None
    user_id: int | None = None


def _div_half_up(numerator: int, denominator: int) -> int:
    sign = -1 if numerator < 0 else 1
    return sign * ((abs(numerator) * 2 + denominator) // (2 * denominator))


def tax_breakdown(lines: Sequence[InvoiceLine], *, prices_include_tax: bool) -> list[dict[str, int]]:
    """Net, tax and gross per tax rate, rounded once per rate (not per line), rates ascending."""
    by_rate: dict[int, int] = {}
    for li in lines:
        by_rate[li.tax_basis_points] = by_rate.get(li.tax_basis_points, 0) + li.amount
    out = []
    for bp, amount in sorted(by_rate.items()):
        if prices_include_tax:
            tax = _div_half_up(amount * bp, 10_000 + bp)
            net = amount - tax
        else:
            net = amount
            tax = _div_half_up(amount * bp, 10_000)
        out.append({"tax_basis_points": bp, "net": net, "tax": tax, "gross": net + tax})
    return out


async def issue_invoice(
    conn: AsyncConnection,
    *,
    organization_id: int,
    buyer: Buyer,
    lines: Sequence[InvoiceLine],
    period_start: datetime,
    period_end: datetime,
    currency: str,
    prices_include_tax: bool = True,
    sponsor_amount: int = 0,
    purpose: InvoicePurpose | None = None,
    source_key: str | None = None,
    now: datetime | None = None,
) -> int:
    """Number and store one invoice; its id. With a `source_key` already invoiced: that
    invoice's id, and nothing is numbered."""
    if not lines or len(lines) > MAX_LINES:
        raise InvalidInput(f"an invoice has 1 to {MAX_LINES} lines")
    if period_end <= period_start:
        raise InvalidInput("the period must end after it starts")
    seller = (await conn.execute(select(ORGANIZATION).where(ORGANIZATION.c.id == organization_id))).first()
    if seller is None:
        raise NotFound("no such organization")
    now = now or utcnow()
    taxes = tax_breakdown(lines, prices_include_tax=prices_include_tax)
    net, tax = sum(t["net"] for t in taxes), sum(t["tax"] for t in taxes)
    last = await numbering.lock_counter(conn, organization_id, INVOICE_SERIES, now.year)
    if source_key is not None:
        # Under the counter's lock: an issuer that got there first has committed by now.
        issued = await invoice_for(conn, source_key)
        if issued is not None:
            return issued
    sequence = last + 1
    values: dict[str, Any] = {
        "organization_id": organization_id,
        "kind": DocumentKind.INVOICE.value,
        "purpose": None if purpose is None else purpose.value,
        "source_key": source_key,
        "series": INVOICE_SERIES,
        "year": now.year,
        "sequence": sequence,
        "number": numbering.document_number(INVOICE_SERIES, now.year, sequence),
        "issued_at": now,
        "user_id": buyer.user_id,
        "period_start": period_start,
        "period_end": period_end,
        "currency": currency,
        "seller": {
            "name": seller.name,
            "legal_name": seller.legal_name,
            "address": seller.billing_address,
            "vat_id": seller.vat_id,
            "email": seller.billing_email,
        },
        "buyer": {
            "kind": buyer.kind,
            "name": buyer.name,
            "email": buyer.email,
            "address": buyer.address,
            "vat_id": buyer.vat_id,
            "id_tag": None,
        },
        "lines": [
            {
                "component": None,
                "description": li.description,
                "quantity": str(li.quantity),
                "unit": li.unit,
                "unit_price": None if li.unit_price is None else str(li.unit_price),
                "amount": li.amount,
                "tax_basis_points": li.tax_basis_points,
            }
            for li in lines
        ],
        "tax_breakdown": taxes,
        "details": {"prices_include_tax": prices_include_tax},
        "net": net,
        "tax": tax,
        "total": net + tax,
        "sponsor_amount": sponsor_amount,
        "amount_due": net + tax - sponsor_amount,
    }
    document_id = (
        await conn.execute(insert(DOCUMENT).values(**values).returning(DOCUMENT.c.id))
    ).scalar_one()
    await numbering.advance(conn, organization_id, INVOICE_SERIES, now.year, sequence)
    return int(document_id)


async def invoice_for(conn: AsyncConnection, source_key: str) -> int | None:
    """The invoice issued for this fact, if any."""
    found = await conn.execute(select(DOCUMENT.c.id).where(DOCUMENT.c.source_key == source_key))
    value = found.scalar_one_or_none()
    return None if value is None else int(value)
