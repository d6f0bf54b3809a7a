"""A member's monthly fee as a numbered ChargeNet invoice: Stripe charges the fee, and every
subscription invoice it reports paid (`invoice.paid`) with money taken becomes exactly one
ChargeNet invoice to the driver, numbered in the organisation's invoice series.

Keyed by the Stripe invoice id (`source_key`), so webhook redeliveries and the inbox's retries
never issue a second one. The amount is what Stripe charged — tax included by definition of
a charge — taxed at the plan's rate (`MembershipPlan.tax_basis_points`). A failed payment
issues nothing; the invoice appears when a later attempt pays.

The buyer is the driver as their account names them: name, email, billing address if given
(`updateProfile(input: {billingAddress:})`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from api.invoicing import invoices
from schema.account_models import UserAccount
from schema.document_models import InvoicePurpose
from schema.plan_models import MembershipPlan, PlanSubscription

STRIPE_INVOICE_KEY_PREFIX = "stripe_invoice:"
DRIVER_BUYER = "driver"


def stripe_invoice_key(stripe_invoice_id: str) -> str:
    return f"{STRIPE_INVOICE_KEY_PREFIX}{stripe_invoice_id}"


@dataclass(frozen=True, slots=True)
class Issued:
    invoice_id: int
    new: bool  # False: issued before, for an earlier delivery of this Stripe invoice


async def issue_for_paid(
    session: AsyncSession, membership: PlanSubscription, stripe_invoice: dict[str, Any]
) -> Issued | None:
    """The ChargeNet invoice of a paid Stripe invoice (the one issued before, on a repeat);
    None when Stripe took no money (a free period, a credit)."""
    amount = int(stripe_invoice.get("amount_paid") or 0)
    invoice_id = stripe_invoice.get("id")
    if amount <= 0 or not isinstance(invoice_id, str):
        return None
    conn = await session.connection()
    before = await invoices.invoice_for(conn, stripe_invoice_key(invoice_id))
    if before is not None:
        return Issued(before, new=False)
    plan = await session.get(MembershipPlan, membership.plan_id)
    user = await session.get(UserAccount, membership.user_id)
    if plan is None or user is None:
        return None
    start, end = _period(stripe_invoice, membership)
    line = invoices.InvoiceLine(
        description=f"{plan.name} membership, {start:%Y-%m-%d} to {end:%Y-%m-%d}",
        amount=amount,
        quantity=Decimal(1),
        unit="month",
        unit_price=Decimal(amount),
        tax_basis_points=plan.tax_basis_points,
    )
    buyer = invoices.Buyer(
        kind=DRIVER_BUYER,
        name=user.display_name or user.email or "Driver",
        email=user.email,
        address=user.billing_address,
        user_id=user.id,
    )
    issued = await invoices.issue_invoice(
        conn,
        organization_id=membership.organization_id,
        buyer=buyer,
        lines=[line],
        period_start=start,
        period_end=end,
        currency=str(stripe_invoice.get("currency") or plan.currency).upper(),
        prices_include_tax=True,
        purpose=InvoicePurpose.MEMBERSHIP,
        source_key=stripe_invoice_key(invoice_id),
    )
    return Issued(issued, new=True)


def _period(stripe_invoice: dict[str, Any], membership: PlanSubscription) -> tuple[datetime, datetime]:
    """The service period billed. Stripe's invoice-level period is that of past usage (empty
    on a subscription's first invoice); the subscription line's period is what was bought."""
    candidates: list[tuple[Any, Any]] = []
    for line in (stripe_invoice.get("lines") or {}).get("data") or []:
        period = line.get("period") or {}
        candidates.append((period.get("start"), period.get("end")))
    candidates.append((stripe_invoice.get("period_start"), stripe_invoice.get("period_end")))
    for start, end in candidates:
        if isinstance(start, int) and isinstance(end, int) and end > start:
            return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    if (
        membership.current_period_start is not None
        and membership.current_period_end is not None
        and membership.current_period_end > membership.current_period_start
    ):
        return membership.current_period_start, membership.current_period_end
    raise ValueError(f"Stripe invoice {stripe_invoice.get('id')} names no period")
