"""Every read of billing documents, charging history and revenue, scoped by who asks.

- A driver reads the documents issued to them and their own sessions, in any organisation.
- Billing staff (billing:read) read the documents of their organisations.
- Reports (reports:read) sum the session charges of their organisations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, false, func, literal, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from api.auth.principal import Principal
from api.auth.roles import Permission
from schema.charge_models import SessionCharge
from schema.document_models import BillingDocument, DocumentKind, InvoicePurpose
from schema.models import ChargingStation, Location, Organization, Transaction

DOCUMENT = BillingDocument.__table__  # type: ignore[attr-defined]
CHARGE = SessionCharge.__table__  # type: ignore[attr-defined]
STATION = ChargingStation.__table__  # type: ignore[attr-defined]
LOCATION = Location.__table__  # type: ignore[attr-defined]
TRANSACTION = Transaction.__table__  # type: ignore[attr-defined]
ORGANIZATION = Organization.__table__  # type: ignore[attr-defined]

# Payments are recorded by the payments context (not yet merged here): until session_charge
# carries how a session was paid, every session reports this method.
UNKNOWN_PAYMENT_METHOD = "unknown"


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row[Any]]
    has_next: bool


def _in_orgs(column: Any, orgs: frozenset[int] | None) -> ColumnElement[bool]:
    if orgs is None:
        return literal(True)
    return column.in_(sorted(orgs)) if orgs else false()


def readable_documents(principal: Principal, kind: DocumentKind | None = None) -> Select[Any]:
    """Documents issued to the caller, or of organisations where the caller has billing:read."""
    own = DOCUMENT.c.user_id == principal.user_id if principal.is_user else false()
    stmt = select(DOCUMENT).where(
        or_(own, _in_orgs(DOCUMENT.c.organization_id, principal.organizations_with(Permission.BILLING_READ)))
    )
    return stmt if kind is None else stmt.where(DOCUMENT.c.kind == kind.value)


async def documents_by_ids(
    conn: AsyncConnection, principal: Principal, kind: DocumentKind, ids: Sequence[int]
) -> dict[int, Row[Any]]:
    if not ids:
        return {}
    rows = await conn.execute(readable_documents(principal, kind).where(DOCUMENT.c.id.in_(list(ids))))
    return {r.id: r for r in rows}


async def page_documents(
    conn: AsyncConnection,
    principal: Principal,
    kind: DocumentKind,
    *,
    mine: bool,
    first: int,
    after: int | None,
    since: datetime | None = None,
    until: datetime | None = None,
    purpose: InvoicePurpose | None = None,
    period_in: tuple[datetime, datetime] | None = None,
) -> Page:
    """Newest first. `mine`: only those issued to the caller (a driver's own list), else those
    of the caller's billing organisations. `since`/`until` bound when they were issued;
    `period_in` when the period they bill started."""
    if mine:
        stmt = select(DOCUMENT).where(DOCUMENT.c.kind == kind.value, DOCUMENT.c.user_id == principal.user_id)
    else:
        orgs = principal.organizations_with(Permission.BILLING_READ)
        stmt = select(DOCUMENT).where(
            DOCUMENT.c.kind == kind.value, _in_orgs(DOCUMENT.c.organization_id, orgs)
        )
    if since is not None:
        stmt = stmt.where(DOCUMENT.c.issued_at >= since)
    if until is not None:
        stmt = stmt.where(DOCUMENT.c.issued_at < until)
    if purpose is not None:
        stmt = stmt.where(DOCUMENT.c.purpose == purpose.value)
    if period_in is not None:
        stmt = stmt.where(DOCUMENT.c.period_start >= period_in[0], DOCUMENT.c.period_start < period_in[1])
    if after is not None:
        stmt = stmt.where(DOCUMENT.c.id < after)
    found = list((await conn.execute(stmt.order_by(DOCUMENT.c.id.desc()).limit(first + 1))).all())
    return Page(found[:first], len(found) > first)


async def invoices_by_source_keys(
    conn: AsyncConnection, principal: Principal, keys: Sequence[str]
) -> dict[str, Row[Any]]:
    """The invoices issued for these facts that the caller may read, by `source_key`."""
    if not keys:
        return {}
    rows = await conn.execute(
        readable_documents(principal, DocumentKind.INVOICE).where(DOCUMENT.c.source_key.in_(list(keys)))
    )
    return {r.source_key: r for r in rows}


async def document(conn: AsyncConnection, document_id: int) -> Row[Any] | None:
    """Unscoped: for a signed link, whose signature is the authorisation."""
    return (await conn.execute(select(DOCUMENT).where(DOCUMENT.c.id == document_id))).first()


async def receipts_of_transactions(
    conn: AsyncConnection, transaction_ids: Sequence[int]
) -> dict[int, Row[Any]]:
    if not transaction_ids:
        return {}
    rows = await conn.execute(
        select(DOCUMENT).where(
            DOCUMENT.c.transaction_id.in_(list(transaction_ids)),
            DOCUMENT.c.kind == DocumentKind.RECEIPT.value,
        )
    )
    return {r.transaction_id: r for r in rows}


# -- charging history (a driver's own sessions) ------------------------------------------------


def month_of(column: Any, dialect: str) -> Any:
    """'YYYY-MM' of a UTC timestamp column, computed by the database."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM")
    return func.strftime("%Y-%m", column)


def _history(user_id: int, since: datetime, until: datetime, station_id: int | None) -> Any:
    """Ended sessions the driver started in [since, until), with their charge if priced (a
    session no tariff applied to is in the history at no cost)."""
    stmt = (
        select(
            TRANSACTION.c.id,
            TRANSACTION.c.station_id,
            TRANSACTION.c.connector_id,
            TRANSACTION.c.started_at,
            TRANSACTION.c.stopped_at,
            TRANSACTION.c.energy_wh,
            func.coalesce(CHARGE.c.driver_amount, 0).label("amount"),
            func.coalesce(CHARGE.c.total, 0).label("total"),
            func.coalesce(CHARGE.c.currency, ORGANIZATION.c.currency, "EUR").label("currency"),
            CHARGE.c.id.label("charge_id"),
        )
        .select_from(
            TRANSACTION.join(STATION, STATION.c.id == TRANSACTION.c.station_id)
            .outerjoin(ORGANIZATION, ORGANIZATION.c.id == STATION.c.organization_id)
            .outerjoin(CHARGE, CHARGE.c.transaction_id == TRANSACTION.c.id)
        )
        .where(
            TRANSACTION.c.user_id == user_id,
            TRANSACTION.c.stopped_at.is_not(None),
            TRANSACTION.c.started_at >= since,
            TRANSACTION.c.started_at < until,
        )
    )
    if station_id is not None:
        stmt = stmt.where(TRANSACTION.c.station_id == station_id)
    return stmt


async def history_page(
    conn: AsyncConnection,
    user_id: int,
    *,
    since: datetime,
    until: datetime,
    station_id: int | None,
    first: int,
    after: int | None,
) -> Page:
    stmt = _history(user_id, since, until, station_id)
    if after is not None:
        stmt = stmt.where(TRANSACTION.c.id < after)
    found = list((await conn.execute(stmt.order_by(TRANSACTION.c.id.desc()).limit(first + 1))).all())
    return Page(found[:first], len(found) > first)


async def monthly_totals(
    conn: AsyncConnection, user_id: int, *, since: datetime, until: datetime, station_id: int | None
) -> list[Row[Any]]:
    """Per month of the session's start (UTC) and currency, oldest first."""
    sub = _history(user_id, since, until, station_id).subquery()
    month = month_of(sub.c.started_at, conn.dialect.name).label("month")
    stmt = (
        select(
            month,
            sub.c.currency,
            func.count().label("sessions"),
            func.coalesce(func.sum(sub.c.energy_wh), 0).label("energy_wh"),
            func.coalesce(func.sum(sub.c.amount), 0).label("amount"),
        )
        .group_by(month, sub.c.currency)
        .order_by(month, sub.c.currency)
    )
    return list((await conn.execute(stmt)).all())


# -- revenue -----------------------------------------------------------------------------------


class RevenueGrouping(Enum):
    LOCATION = "location"
    STATION = "station"
    MONTH = "month"
    PAYMENT_METHOD = "payment_method"


def _revenue_scope(
    orgs: frozenset[int] | None, since: datetime, until: datetime
) -> list[ColumnElement[bool]]:
    """Sessions of the organisations, by when they ended (when the revenue was earned)."""
    return [
        _in_orgs(CHARGE.c.organization_id, orgs),
        CHARGE.c.stopped_at >= since,
        CHARGE.c.stopped_at < until,
    ]


def _charges_joined() -> Any:
    return CHARGE.join(STATION, STATION.c.id == CHARGE.c.station_id).outerjoin(
        LOCATION, LOCATION.c.id == STATION.c.location_id
    )


def payment_method_column() -> Any:
    column = CHARGE.c.get("payment_method")
    if column is None:
        return literal_column(f"'{UNKNOWN_PAYMENT_METHOD}'")
    return func.coalesce(column, UNKNOWN_PAYMENT_METHOD)


def payment_methods_known() -> bool:
    return CHARGE.c.get("payment_method") is not None


async def revenue(
    conn: AsyncConnection,
    orgs: frozenset[int] | None,
    *,
    since: datetime,
    until: datetime,
    group_by: RevenueGrouping,
) -> list[Row[Any]]:
    """Sums per group and currency: key, label, currency, sessions, energy_wh, net, tax, total,
    sponsor_amount, driver_amount; ordered by key."""
    key: Any
    label: Any
    if group_by is RevenueGrouping.LOCATION:
        key = func.coalesce(LOCATION.c.id, 0)
        label = func.coalesce(LOCATION.c.name, "(no location)")
    elif group_by is RevenueGrouping.STATION:
        key, label = STATION.c.id, STATION.c.charge_point_id
    elif group_by is RevenueGrouping.MONTH:
        key = label = month_of(CHARGE.c.stopped_at, conn.dialect.name)
    else:
        key = label = payment_method_column()
    # PostgreSQL refuses a constant in GROUP BY: the one-method case groups by currency only.
    grouped = (
        [] if group_by is RevenueGrouping.PAYMENT_METHOD and not payment_methods_known() else [key, label]
    )
    key, label = key.label("key"), label.label("label")
    stmt = (
        select(
            key,
            label,
            CHARGE.c.currency,
            func.count().label("sessions"),
            func.sum(CHARGE.c.energy_wh).label("energy_wh"),
            func.sum(CHARGE.c.net).label("net"),
            func.sum(CHARGE.c.tax).label("tax"),
            func.sum(CHARGE.c.total).label("total"),
            func.sum(CHARGE.c.sponsor_amount).label("sponsor_amount"),
            func.sum(CHARGE.c.driver_amount).label("driver_amount"),
        )
        .select_from(_charges_joined())
        .where(*_revenue_scope(orgs, since, until))
        .group_by(*grouped, CHARGE.c.currency)
        .order_by(*grouped, CHARGE.c.currency)
    )
    return list((await conn.execute(stmt)).all())


async def revenue_sessions(
    conn: AsyncConnection, orgs: frozenset[int] | None, *, since: datetime, until: datetime
) -> AsyncIterator[Row[Any]]:
    """Every charged session of the period, one row each in the order they ended, streamed
    from the database (a server-side cursor on PostgreSQL: a year of sessions never sits in
    memory at once)."""
    stmt = (
        select(
            CHARGE.c.transaction_id,
            CHARGE.c.started_at,
            CHARGE.c.stopped_at,
            STATION.c.charge_point_id,
            LOCATION.c.name.label("location_name"),
            CHARGE.c.energy_wh,
            CHARGE.c.currency,
            CHARGE.c.net,
            CHARGE.c.tax,
            CHARGE.c.total,
            CHARGE.c.sponsor_amount,
            CHARGE.c.driver_amount,
            payment_method_column().label("payment_method"),
            DOCUMENT.c.number.label("receipt_number"),
        )
        .select_from(_charges_joined().outerjoin(DOCUMENT, DOCUMENT.c.session_charge_id == CHARGE.c.id))
        .where(*_revenue_scope(orgs, since, until))
        .order_by(CHARGE.c.stopped_at, CHARGE.c.id)
    )
    result = await conn.stream(stmt.execution_options(yield_per=1000))
    async for row in result:
        yield row
