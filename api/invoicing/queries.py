"""Receipts and history for drivers; receipts, invoices and revenue for operators."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import Has, IsUser
from api.auth.roles import Permission
from api.invoicing import exports, links
from api.invoicing import repository as repo
from api.invoicing.months import month_bounds
from api.invoicing.types import (
    ChargingHistory,
    ChargingHistoryEdge,
    ChargingHistoryEntry,
    InvoiceKind,
    InvoiceNode,
    MonthlyTotal,
    ReceiptNode,
    RevenueGroupBy,
    RevenueReport,
    RevenueRow,
)
from api.network.types import parse_global_id
from api.pagination import Connection, build_connection, clamp_first, decode_cursor, encode_cursor
from schema.document_models import DocumentKind

RECEIPT_CURSOR = "receipt"
INVOICE_CURSOR = "invoice"
HISTORY_CURSOR = "history"


async def _documents(
    info: Info, kind: DocumentKind, *, mine: bool, first: int | None, after: str | None, **filters: Any
) -> Connection[ReceiptNode] | Connection[InvoiceNode]:
    """One page of the documents the caller may read (see repo.page_documents for `filters`)."""
    cursor = RECEIPT_CURSOR if kind is DocumentKind.RECEIPT else INVOICE_CURSOR
    async with info.context.db() as s:
        page = await repo.page_documents(
            await s.connection(),
            info.context.principal,
            kind,
            mine=mine,
            first=clamp_first(first),
            after=decode_cursor(cursor, after),
            **filters,
        )
    node = ReceiptNode if kind is DocumentKind.RECEIPT else InvoiceNode
    return build_connection(
        [node.from_row(r) for r in page.rows],
        kind=cursor,
        keys=[r.id for r in page.rows],
        has_next=page.has_next,
        total=None,
    )


@strawberry.type
class InvoicingQuery:
    @strawberry.field(permission_classes=[IsUser], description="Receipts issued to the caller, newest first.")
    async def my_receipts(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[ReceiptNode]:
        return await _documents(  # type: ignore[return-value]
            info, DocumentKind.RECEIPT, mine=True, first=first, after=after
        )

    @strawberry.field(
        permission_classes=[IsUser],
        description="Invoices issued to the caller (their membership fees), newest first.",
    )
    async def my_invoices(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[InvoiceNode]:
        return await _documents(  # type: ignore[return-value]
            info, DocumentKind.INVOICE, mine=True, first=first, after=after
        )

    @strawberry.field(
        permission_classes=[IsUser],
        description="The caller's ended sessions that started in [from, to), newest first, with "
        "what each cost them and the totals of each month.",
    )
    async def charging_history(
        self,
        info: Info,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        station_id: relay.GlobalID | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> ChargingHistory:
        since, until = exports.period(from_, to)
        station = None if station_id is None else parse_global_id(station_id, "Station")
        user_id = info.context.principal.user_id
        async with info.context.db() as s:
            conn = await s.connection()
            page = await repo.history_page(
                conn,
                user_id,
                since=since,
                until=until,
                station_id=station,
                first=clamp_first(first),
                after=decode_cursor(HISTORY_CURSOR, after),
            )
            receipts = await repo.receipts_of_transactions(conn, [r.id for r in page.rows])
            months = await repo.monthly_totals(conn, user_id, since=since, until=until, station_id=station)
        edges = [
            ChargingHistoryEdge(
                cursor=encode_cursor(HISTORY_CURSOR, r.id),
                node=ChargingHistoryEntry.from_row(r, receipts.get(r.id)),
            )
            for r in page.rows
        ]
        return ChargingHistory(
            edges=edges,
            page_info=relay.PageInfo(
                has_next_page=page.has_next,
                has_previous_page=False,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            monthly_totals=[
                MonthlyTotal(
                    month=m.month,
                    currency=m.currency,
                    sessions=int(m.sessions),
                    energy_wh=int(m.energy_wh),
                    amount=int(m.amount),
                )
                for m in months
            ],
        )

    @strawberry.field(
        permission_classes=[Has(Permission.BILLING_READ)],
        description="Receipts of the organisations where the caller has billing:read, newest first; "
        "optionally those issued in [from, to).",
    )
    async def receipts(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
    ) -> Connection[ReceiptNode]:
        return await _documents(  # type: ignore[return-value]
            info, DocumentKind.RECEIPT, mine=False, first=first, after=after, since=from_, until=to
        )

    @strawberry.field(
        permission_classes=[Has(Permission.BILLING_READ)],
        description="Invoices of the organisations where the caller has billing:read, newest first; "
        "optionally only those of one kind, or billing a period that starts in `month` (YYYY-MM, UTC).",
    )
    async def invoices(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        kind: InvoiceKind | None = None,  # type: ignore[valid-type]
        month: str | None = None,
    ) -> Connection[InvoiceNode]:
        period = None if month is None else month_bounds(month)
        return await _documents(  # type: ignore[return-value]
            info, DocumentKind.INVOICE, mine=False, first=first, after=after, purpose=kind, period_in=period
        )

    @strawberry.field(
        permission_classes=[Has(Permission.REPORTS_READ)],
        description="Revenue of the sessions that ended in [from, to), in the organisations where "
        "the caller has reports:read.",
    )
    async def revenue_report(
        self,
        info: Info,
        group_by: RevenueGroupBy,  # type: ignore[valid-type]
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
    ) -> RevenueReport:
        since, until = exports.period(from_, to)
        grouping: repo.RevenueGrouping = group_by
        async with info.context.db() as s:
            rows = await repo.revenue(
                await s.connection(),
                info.context.principal.organizations_with(Permission.REPORTS_READ),
                since=since,
                until=until,
                group_by=grouping,
            )
        return RevenueReport(
            group_by=grouping,
            rows=[RevenueRow.from_row(r, grouping) for r in rows],
            payment_methods_known=repo.payment_methods_known(),
        )

    @strawberry.field(
        permission_classes=[Has(Permission.REPORTS_READ)],
        description="A link to the CSV of the period (every session, or the report grouped by "
        "`groupBy`) that works without a bearer token until it expires.",
    )
    def revenue_export_url(
        self,
        info: Info,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        group_by: RevenueGroupBy | None = None,  # type: ignore[valid-type]
        expires_in_minutes: int | None = None,
    ) -> str:
        since, until = exports.period(from_, to)
        request = exports.ExportRequest(
            organizations=info.context.principal.organizations_with(Permission.REPORTS_READ),
            since=since,
            until=until,
            group_by=group_by,
        )
        token = links.sign(
            links.secret(info.context.settings),
            links.EXPORT_PURPOSE,
            request.link_payload(),
            links.expiry(expires_in_minutes),
        )
        base = str(info.context.request.base_url).rstrip("/")
        return f"{base}{links.EXPORT_PATH}?token={token}"
