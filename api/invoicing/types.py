"""GraphQL shapes of receipts, invoices, charging history and revenue reports.

Money is in minor units of `currency` like everywhere in the API; `…Formatted` fields are the
same in words.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.billing.tariffs import money
from api.invoicing import links
from api.invoicing import repository as repo
from api.network.types import StationNode, int_ids, station_node
from api.sessions.types import TransactionNode, transaction_node
from schema.document_models import DocumentKind, InvoicePurpose
from schema.models import Organization


@strawberry.type(description="What the organisation's receipts and invoices show as the seller.")
class BillingDetails:
    name: str
    legal_name: str | None
    address: str | None
    vat_id: str | None
    email: str | None

    @classmethod
    def from_model(cls, org: Organization) -> BillingDetails:
        return cls(
            name=org.name,
            legal_name=org.legal_name,
            address=org.billing_address,
            vat_id=org.vat_id,
            email=org.billing_email,
        )


@strawberry.type(description="Who sold or bought, as printed on the document when it was issued.")
class DocumentParty:
    name: str | None
    legal_name: str | None = None
    address: str | None = None
    vat_id: str | None = None
    email: str | None = None
    kind: str | None = strawberry.field(default=None, description="Buyer: driver, anonymous_card, …")
    card: str | None = strawberry.field(
        default=None, description="Buyer without account: the card's last digits."
    )

    @classmethod
    def of(cls, d: dict[str, Any]) -> DocumentParty:
        return cls(
            name=d.get("name"),
            legal_name=d.get("legal_name"),
            address=d.get("address"),
            vat_id=d.get("vat_id"),
            email=d.get("email"),
            kind=d.get("kind"),
            card=d.get("id_tag"),
        )


@strawberry.type
class DocumentLine:
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal | None = strawberry.field(description="Minor units per unit; none for adjustments.")
    amount: int
    tax_basis_points: int


@strawberry.type(description="The tax of one rate: net + tax = gross.")
class TaxLine:
    tax_basis_points: int
    net: int
    tax: int
    gross: int


@strawberry.type(description="The charging session a receipt is for, as it was when issued.")
class ReceiptSession:
    charge_point_id: str | None
    connector_id: int | None
    location_name: str | None
    address: str | None
    started_at: datetime | None
    stopped_at: datetime | None
    energy_wh: int | None
    meter_start_wh: int | None
    meter_stop_wh: int | None


def _at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@strawberry.interface(description="A numbered receipt or invoice.")
class BillingDocument:
    number: str = strawberry.field(description="Gap-free per organisation, series and year: R-2026-000042.")
    issued_at: datetime
    currency: str
    net: int = strawberry.field(description="Net of what the buyer pays (amountDue).")
    tax: int = strawberry.field(
        description="Tax in what the buyer pays: a sponsor's share is taxed on the sponsor's invoice."
    )
    total: int = strawberry.field(description="The price of what is billed, a sponsor's share included.")
    total_formatted: str
    sponsor_amount: int = strawberry.field(description="What a sponsor covers of the total.")
    amount_due: int = strawberry.field(description="What the buyer pays.")
    seller: DocumentParty
    buyer: DocumentParty
    lines: list[DocumentLine]
    tax_breakdown: list[TaxLine]
    _pk: strawberry.Private[int]
    _organization_id: strawberry.Private[int]

    @strawberry.field(description="A link to the PDF that works without signing in, until it expires.")
    def download_url(self, info: Info, expires_in_minutes: int | None = None) -> str:
        token = links.document_token(info.context.settings, self._pk, links.expiry(expires_in_minutes))
        base = str(info.context.request.base_url).rstrip("/")
        return f"{base}{links.DOCUMENT_PATH}/{token}"


def _common(r: Any) -> dict[str, Any]:
    return {
        "number": r.number,
        "issued_at": r.issued_at,
        "currency": r.currency,
        "net": r.net,
        "tax": r.tax,
        "total": r.total,
        "total_formatted": money(r.total, r.currency),
        "sponsor_amount": r.sponsor_amount,
        "amount_due": r.amount_due,
        "seller": DocumentParty.of(r.seller),
        "buyer": DocumentParty.of(r.buyer),
        "lines": [
            DocumentLine(
                description=li["description"],
                quantity=Decimal(li["quantity"]),
                unit=li["unit"],
                unit_price=None if li.get("unit_price") is None else Decimal(li["unit_price"]),
                amount=li["amount"],
                tax_basis_points=li.get("tax_basis_points", 0),
            )
            for li in r.lines
        ],
        "tax_breakdown": [TaxLine(**t) for t in r.tax_breakdown],
        "_pk": r.id,
        "_organization_id": r.organization_id,
    }


@strawberry.type(name="Receipt", description="The receipt of one charged session.")
class ReceiptNode(BillingDocument, relay.Node):
    id: relay.NodeID[int]
    session: ReceiptSession
    _transaction_id: strawberry.Private[int | None]
    _station_id: strawberry.Private[int | None]

    @classmethod
    def from_row(cls, r: Any) -> ReceiptNode:
        d = r.details or {}
        return cls(
            id=r.id,
            session=ReceiptSession(
                charge_point_id=d.get("charge_point_id"),
                connector_id=d.get("connector_id"),
                location_name=d.get("location_name"),
                address=d.get("address"),
                started_at=_at(d.get("started_at")),
                stopped_at=_at(d.get("stopped_at")),
                energy_wh=d.get("energy_wh"),
                meter_start_wh=d.get("meter_start_wh"),
                meter_stop_wh=d.get("meter_stop_wh"),
            ),
            _transaction_id=r.transaction_id,
            _station_id=r.station_id,
            **_common(r),
        )

    @strawberry.field(description="The session, if the caller may see it.")
    async def transaction(self, info: Info) -> TransactionNode | None:
        return await transaction_node(info, self._transaction_id)

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return None if self._station_id is None else await station_node(info, self._station_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ReceiptNode | None]:
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            found = await repo.documents_by_ids(
                await s.connection(), info.context.principal, DocumentKind.RECEIPT, ids
            )
        return [cls.from_row(found[i]) if i in found else None for i in ids]


InvoiceKind = strawberry.enum(
    InvoicePurpose,
    name="InvoiceKind",
    description="What an invoice bills: a membership or a sponsor's month.",
)


@strawberry.type(name="Invoice", description="An invoice over a period (memberships, sponsored charging).")
class InvoiceNode(BillingDocument, relay.Node):
    id: relay.NodeID[int]
    period_start: datetime | None
    period_end: datetime | None
    kind: InvoiceKind | None = strawberry.field(  # type: ignore[valid-type]
        description="Null for invoices issued before kinds were recorded."
    )

    @classmethod
    def from_row(cls, r: Any) -> InvoiceNode:
        return cls(
            id=r.id,
            period_start=r.period_start,
            period_end=r.period_end,
            kind=None if r.purpose is None else InvoicePurpose(r.purpose),
            **_common(r),
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[InvoiceNode | None]:
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            found = await repo.documents_by_ids(
                await s.connection(), info.context.principal, DocumentKind.INVOICE, ids
            )
        return [cls.from_row(found[i]) if i in found else None for i in ids]


# -- charging history ----------------------------------------------------------------------------


@strawberry.type(description="One of the driver's ended sessions and what they paid for it.")
class ChargingHistoryEntry:
    started_at: datetime
    stopped_at: datetime | None
    connector_id: int
    energy_wh: int
    amount: int = strawberry.field(description="What the driver paid (0: free, or not priced).")
    currency: str
    amount_formatted: str
    _transaction_id: strawberry.Private[int]
    _station_id: strawberry.Private[int]
    _receipt: strawberry.Private[Any]

    @classmethod
    def from_row(cls, r: Any, receipt: Any) -> ChargingHistoryEntry:
        return cls(
            started_at=r.started_at,
            stopped_at=r.stopped_at,
            connector_id=r.connector_id,
            energy_wh=r.energy_wh,
            amount=int(r.amount),
            currency=r.currency,
            amount_formatted=money(int(r.amount), r.currency),
            _transaction_id=r.id,
            _station_id=r.station_id,
            _receipt=receipt,
        )

    @strawberry.field
    async def transaction(self, info: Info) -> TransactionNode | None:
        return await transaction_node(info, self._transaction_id)

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return await station_node(info, self._station_id)

    @strawberry.field(description="Null while not issued yet (or nothing was paid).")
    def receipt(self) -> ReceiptNode | None:
        return None if self._receipt is None else ReceiptNode.from_row(self._receipt)


@strawberry.type
class MonthlyTotal:
    month: str = strawberry.field(description="YYYY-MM of the sessions' start, UTC.")
    currency: str
    sessions: int
    energy_wh: int
    amount: int


@strawberry.type
class ChargingHistoryEdge:
    cursor: str
    node: ChargingHistoryEntry


@strawberry.type(
    name="ChargingHistoryConnection",
    description="The driver's sessions of a period, newest first, and its monthly totals.",
)
class ChargingHistory:
    edges: list[ChargingHistoryEdge]
    page_info: relay.PageInfo
    monthly_totals: list[MonthlyTotal] = strawberry.field(
        description="Over the whole period, not just this page."
    )


# -- revenue -------------------------------------------------------------------------------------

RevenueGroupBy = strawberry.enum(repo.RevenueGrouping, name="RevenueGroupBy")


@strawberry.type
class RevenueRow:
    key: str = strawberry.field(description="Location/station id, YYYY-MM, or the payment method.")
    label: str
    currency: str
    sessions: int
    energy_wh: int
    net: int
    tax: int
    total: int
    sponsor_amount: int
    driver_amount: int

    @classmethod
    def from_row(cls, r: Any, group_by: repo.RevenueGrouping) -> RevenueRow:
        key = str(r.key)
        if group_by is repo.RevenueGrouping.LOCATION and r.key:
            key = str(relay.GlobalID("Location", key))
        elif group_by is repo.RevenueGrouping.STATION:
            key = str(relay.GlobalID("Station", key))
        return cls(
            key=key,
            label=str(r.label),
            currency=r.currency,
            sessions=int(r.sessions),
            energy_wh=int(r.energy_wh or 0),
            net=int(r.net or 0),
            tax=int(r.tax or 0),
            total=int(r.total or 0),
            sponsor_amount=int(r.sponsor_amount or 0),
            driver_amount=int(r.driver_amount or 0),
        )


@strawberry.type(description="Charged sessions that ended in [from, to), summed per group and currency.")
class RevenueReport:
    group_by: RevenueGroupBy  # type: ignore[valid-type]
    rows: list[RevenueRow]
    payment_methods_known: bool = strawberry.field(
        description="False while sessions do not record how they were paid: PAYMENT_METHOD then "
        "reports every session as 'unknown'."
    )
