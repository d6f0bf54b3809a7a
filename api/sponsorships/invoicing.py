"""A sponsor's month as a numbered invoice: every statement of a month that is over becomes
exactly one invoice to the sponsor, however often the job runs.

Lines are what the sponsor funded per location and per tax rate of the sessions' frozen bills
(`session_charge.tax_basis_points`): sessions priced under tariffs with different rates become
separate lines, so the invoice's tax breakdown is exact. The amounts are the sponsor's shares
of the sessions' gross totals, so the invoice states prices including tax.

An invoice always agrees with its statement: if the lines do not add up to the statement's
amount (a claim settled without a bill, which the charge step never does), the statement is
left uninvoiced and logged for an operator rather than billed wrongly.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from api.invoicing import invoices
from api.invoicing.months import month_bounds, month_containing
from api.sponsorships import repository as repo
from schema.document_models import InvoicePurpose
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

# Statements invoiced per run: a month's sponsors of every organisation fit many times over.
MAX_STATEMENTS_PER_RUN = 5_000
SPONSOR_BUYER = "sponsor"


async def invoice_statements(
    conn: AsyncConnection, *, now: datetime | None = None, organization_id: int | None = None
) -> list[int]:
    """Invoice every statement of an ended month that has none yet, in the caller's
    transaction; the new invoices' ids."""
    now = now or utcnow()
    pending = await repo.statements_to_invoice(
        conn,
        before_month=month_containing(now),
        organization_id=organization_id,
        limit=MAX_STATEMENTS_PER_RUN,
    )
    issued: list[int] = []
    # Organisation by organisation: two runs lock the counters in the same order.
    for statement in sorted(pending, key=lambda r: (r.organization_id, r.id)):
        invoice_id = await invoice_statement(conn, statement, now=now)
        if invoice_id is not None:
            issued.append(invoice_id)
    if issued:
        log.info("issued %d sponsor invoices", len(issued))
    return issued


async def invoice_statement(conn: AsyncConnection, statement: Row[Any], *, now: datetime) -> int | None:
    """The statement's invoice (the one issued before, if any); None if it cannot be billed."""
    since, until = month_bounds(statement.month)
    groups = await repo.funded_by_location_and_rate(conn, statement.sponsor_id, since, until)
    lines = [_line(g) for g in groups if g.amount]
    if sum(li.amount for li in lines) != statement.amount:
        log.error(
            "sponsor statement %d (%s): its sessions add up to %d, the statement to %d; not invoiced",
            statement.id,
            statement.month,
            sum(li.amount for li in lines),
            statement.amount,
        )
        return None
    buyer = invoices.Buyer(
        kind=SPONSOR_BUYER,
        name=statement.sponsor_name,
        email=statement.contact_email,
        address=statement.billing_address,
        vat_id=statement.vat_id,
    )
    return await invoices.issue_invoice(
        conn,
        organization_id=statement.organization_id,
        buyer=buyer,
        lines=lines,
        period_start=since,
        period_end=until,
        currency=statement.currency,
        prices_include_tax=True,
        purpose=InvoicePurpose.SPONSORSHIP,
        source_key=repo.statement_key(statement.id),
        now=now,
    )


def _line(group: Row[Any]) -> invoices.InvoiceLine:
    sessions = int(group.sessions)
    where = group.location_name or "stations without a location"
    return invoices.InvoiceLine(
        description=f"Sponsored charging at {where}: {sessions} session{'s' if sessions != 1 else ''}",
        amount=int(group.amount),
        quantity=Decimal(int(group.energy_wh or 0)) / 1000,
        unit="kWh",
        tax_basis_points=int(group.tax_basis_points),
    )
