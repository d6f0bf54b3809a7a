"""GraphQL shapes of sponsors, sponsorships, their reports and monthly statements (billing:read).

Money is in minor units of the organisation's currency; energy in Wh.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.invoicing.types import InvoiceNode
from api.network.types import LocationNode, StationNode, int_ids, station_node
from api.sponsorships import reports, rules
from api.sponsorships import repository as repo


@strawberry.type(name="Sponsor", description="A business that funds charging on the network (billing:read).")
class SponsorNode(relay.Node):
    id: relay.NodeID[int]
    name: str
    contact_email: str | None
    billing_address: str | None
    vat_id: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, r: Any) -> SponsorNode:
        return cls(
            id=r.id,
            name=r.name,
            contact_email=r.contact_email,
            billing_address=r.billing_address,
            vat_id=r.vat_id,
            created_at=r.created_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[SponsorNode | None]:
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            found = await repo.sponsors_by_ids(s, info.context.principal, ids)
        return [cls.from_row(found[i]) if i in found else None for i in ids]


@strawberry.enum
class SponsorshipState(Enum):
    ACTIVE = "active"
    EXHAUSTED = "exhausted"
    ENDED = "ended"


@strawberry.type(description="A local-time window (the location's zone) in which sessions are sponsored.")
class SponsorshipWindow:
    start: str = strawberry.field(description="HH:MM")
    end: str = strawberry.field(description="HH:MM; at or before `start`: runs past midnight.")
    days: list[int] = strawberry.field(description="0 = Monday … 6 = Sunday; empty: every day.")


@strawberry.type(
    name="Sponsorship", description="What a sponsor funds: where, when, how much per session and in total."
)
class SponsorshipNode(relay.Node):
    id: relay.NodeID[int]
    message: str
    state: SponsorshipState
    currency: str
    cap_amount: int | None = strawberry.field(description="Per session, minor units (or capWh).")
    cap_wh: int | None = strawberry.field(description="Per session, the first Wh (or capAmount).")
    cap_description: str
    budget: int
    spent: int = strawberry.field(description="Settled: what ended sessions were covered with.")
    reserved: int = strawberry.field(description="Held for sessions still running.")
    remaining: int = strawberry.field(description="budget - spent - reserved: what new sessions may claim.")
    windows: list[SponsorshipWindow]
    starts_at: datetime
    ends_at: datetime | None
    created_at: datetime
    ended_at: datetime | None
    sessions: int = strawberry.field(description="Sessions the sponsor paid for (settled).")
    energy_wh: int = strawberry.field(description="Their energy.")
    sponsored_amount: int = strawberry.field(description="Equals `spent`.")
    impressions: int = strawberry.field(description="How often apps showed the message.")
    _sponsor_id: strawberry.Private[int]
    _location_ids: strawberry.Private[list[int]]
    _station_ids: strawberry.Private[list[int]]

    @classmethod
    def from_row(cls, r: Any, totals: repo.Totals) -> SponsorshipNode:
        return cls(
            id=r.id,
            message=r.message,
            state=SponsorshipState(r.state),
            currency=r.currency,
            cap_amount=r.cap_amount,
            cap_wh=r.cap_wh,
            cap_description=rules.cap_description(
                cap_amount=r.cap_amount, cap_wh=r.cap_wh, currency=r.currency
            ),
            budget=r.budget,
            spent=r.spent,
            reserved=r.reserved,
            remaining=max(0, r.budget - r.spent - r.reserved),
            windows=[
                SponsorshipWindow(start=w["start"], end=w["end"], days=list(w["days"])) for w in r.windows
            ],
            starts_at=r.starts_at,
            ends_at=r.ends_at,
            created_at=r.created_at,
            ended_at=r.ended_at,
            sessions=totals.sessions,
            energy_wh=totals.energy_wh,
            sponsored_amount=totals.amount,
            impressions=totals.impressions,
            _sponsor_id=r.sponsor_id,
            _location_ids=list(r.location_ids),
            _station_ids=list(r.station_ids),
        )

    @strawberry.field
    async def sponsor(self, info: Info) -> SponsorNode | None:
        async with info.context.db() as s:
            found = await repo.sponsors_by_ids(s, info.context.principal, [self._sponsor_id])
        return SponsorNode.from_row(found[self._sponsor_id]) if self._sponsor_id in found else None

    @strawberry.field
    async def locations(self, info: Info) -> list[LocationNode]:
        rows = [await info.context.loaders.location_by_id.load(i) for i in self._location_ids]
        return [LocationNode.from_model(r) for r in rows if r is not None]

    @strawberry.field
    async def stations(self, info: Info) -> list[StationNode]:
        found = [await station_node(info, i) for i in self._station_ids]
        return [n for n in found if n is not None]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[SponsorshipNode | None]:
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            found = await repo.sponsorships_by_ids(s, info.context.principal, ids)
            totals = await repo.totals(await s.connection(), found)
        return [cls.from_row(found[i], totals[i]) if i in found else None for i in ids]


@strawberry.type
class SponsorshipDay:
    day: date
    sessions: int
    energy_wh: int
    amount: int
    impressions: int


@strawberry.type(description="A sponsorship's month (UTC), day by day (days without activity are left out).")
class SponsorshipReport:
    sponsorship: SponsorshipNode
    month: str
    sessions: int
    energy_wh: int
    amount: int
    impressions: int
    days: list[SponsorshipDay]

    @classmethod
    def build(cls, node: SponsorshipNode, f: reports.MonthFigures) -> SponsorshipReport:
        return cls(
            sponsorship=node,
            month=f.month,
            sessions=f.sessions,
            energy_wh=f.energy_wh,
            amount=f.amount,
            impressions=f.impressions,
            days=[
                SponsorshipDay(
                    day=d.day,
                    sessions=d.sessions,
                    energy_wh=d.energy_wh,
                    amount=d.amount,
                    impressions=d.impressions,
                )
                for d in f.days
            ],
        )


@strawberry.type
class SponsorStatementLine:
    sponsorship_id: relay.GlobalID
    message: str
    sessions: int
    energy_wh: int
    amount: int
    impressions: int


@strawberry.type(description="What a sponsor owes for a month (UTC); the basis of its invoice.")
class SponsorStatement:
    month: str
    currency: str
    sessions: int
    energy_wh: int
    amount: int
    impressions: int
    created_at: datetime
    lines: list[SponsorStatementLine]
    _id: strawberry.Private[int]
    _sponsor_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, r: Any) -> SponsorStatement:
        return cls(
            month=r.month,
            currency=r.currency,
            sessions=r.sessions,
            energy_wh=r.energy_wh,
            amount=r.amount,
            impressions=r.impressions,
            created_at=r.created_at,
            lines=[
                SponsorStatementLine(
                    sponsorship_id=relay.GlobalID("Sponsorship", str(li["sponsorship_id"])),
                    message=li["message"],
                    sessions=li["sessions"],
                    energy_wh=li["energy_wh"],
                    amount=li["amount"],
                    impressions=li["impressions"],
                )
                for li in r.lines
            ],
            _id=r.id,
            _sponsor_id=r.sponsor_id,
        )

    @strawberry.field(description="Its numbered invoice; null until the month is over and it is issued.")
    async def invoice(self, info: Info) -> InvoiceNode | None:
        found = await info.context.loaders.invoice_by_source_key.load(repo.statement_key(self._id))
        return None if found is None else InvoiceNode.from_row(found)

    @strawberry.field
    async def sponsor(self, info: Info) -> SponsorNode | None:
        async with info.context.db() as s:
            found = await repo.sponsors_by_ids(s, info.context.principal, [self._sponsor_id])
        return SponsorNode.from_row(found[self._sponsor_id]) if self._sponsor_id in found else None
