"""GraphQL shapes of tariffs and prices.

Money is in minor units of the organisation's currency (`amount: 913` with `currency: "EUR"` is
€9.13); unit prices are decimals of minor units (39.5 = €0.395 per kWh). `summary` and the
`formatted` fields are the same in words, for apps that show them as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.billing import codec, pricing
from api.billing import repository as repo
from api.billing.service import InForce
from api.billing.tariffs import Component, Tariff, money, summary
from api.network.types import LocationNode, StationNode, int_ids, station_node
from api.sponsorships import service as sponsorships
from schema.models import Organization

ASSIGNMENT_NODE = "TariffAssignment"


@strawberry.type(description="A time-of-use window, in the location's local time.")
class TariffWindow:
    name: str
    start: str = strawberry.field(description="HH:MM, local time.")
    end: str = strawberry.field(description="HH:MM; at or before `start`: runs past midnight.")
    days: list[int] = strawberry.field(description="0 = Monday … 6 = Sunday; empty: every day.")
    energy_per_kwh: Decimal | None = strawberry.field(description="None: the base price.")
    time_per_minute: Decimal | None
    idle_per_minute: Decimal | None


@strawberry.type(description="The prices of one tariff version.")
class TariffPrices:
    currency: str
    summary: str = strawberry.field(description='In words: "€0.39/kWh, €0.10/min idle after 15 min".')
    energy_per_kwh: Decimal
    time_per_minute: Decimal = strawberry.field(description="Per minute while charging.")
    idle_per_minute: Decimal = strawberry.field(description="Per minute plugged in after charging ended.")
    idle_grace_minutes: int
    idle_cap: int | None = strawberry.field(description="The most the idle minutes of one session cost.")
    session_fee: int
    min_price: int | None
    max_price: int | None
    tax_basis_points: int = strawberry.field(description="1900 = 19 %.")
    prices_include_tax: bool
    windows: list[TariffWindow]

    @classmethod
    def from_tariff(cls, t: Tariff) -> TariffPrices:
        return cls(
            currency=t.currency,
            summary=summary(t),
            energy_per_kwh=t.base.energy_per_kwh,
            time_per_minute=t.base.time_per_minute,
            idle_per_minute=t.base.idle_per_minute,
            idle_grace_minutes=t.idle_grace_minutes,
            idle_cap=t.idle_cap,
            session_fee=t.session_fee,
            min_price=t.min_price,
            max_price=t.max_price,
            tax_basis_points=t.tax_basis_points,
            prices_include_tax=t.prices_include_tax,
            windows=[
                TariffWindow(
                    name=w.name,
                    start=w.start.strftime("%H:%M"),
                    end=w.end.strftime("%H:%M"),
                    days=sorted(w.days),
                    energy_per_kwh=w.energy_per_kwh,
                    time_per_minute=w.time_per_minute,
                    idle_per_minute=w.idle_per_minute,
                )
                for w in t.windows
            ],
        )


@strawberry.type
class TariffVersionView:
    version: int
    created_at: datetime
    prices: TariffPrices


@strawberry.enum
class TariffScope(Enum):
    ORGANIZATION = "organization"
    LOCATION = "location"
    STATION = "station"
    CONNECTOR = "connector"


@strawberry.type(name="TariffAssignment", description="Where a tariff applies; the most specific wins.")
class TariffAssignmentView:
    id: strawberry.ID
    scope: TariffScope
    connector_id: int | None
    created_at: datetime
    removed_at: datetime | None = strawberry.field(description="Set once it no longer applies.")
    _location_id: strawberry.Private[int | None]
    _station_id: strawberry.Private[int | None]

    @classmethod
    def from_row(cls, r: Any) -> TariffAssignmentView:
        if r.station_id is not None:
            scope = TariffScope.CONNECTOR if r.connector_id is not None else TariffScope.STATION
        else:
            scope = TariffScope.LOCATION if r.location_id is not None else TariffScope.ORGANIZATION
        return cls(
            id=strawberry.ID(str(relay.GlobalID(ASSIGNMENT_NODE, str(r.id)))),
            scope=scope,
            connector_id=r.connector_id,
            created_at=r.created_at,
            removed_at=r.removed_at,
            _location_id=r.location_id,
            _station_id=r.station_id,
        )

    @strawberry.field
    async def location(self, info: Info) -> LocationNode | None:
        if self._location_id is None:
            return None
        row = await info.context.loaders.location_by_id.load(self._location_id)
        return LocationNode.from_model(row) if row else None

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return None if self._station_id is None else await station_node(info, self._station_id)


@strawberry.type(name="Tariff", description="A named tariff of an organisation (billing:read).")
class TariffNode(relay.Node):
    id: relay.NodeID[int]
    name: str
    created_at: datetime
    archived_at: datetime | None
    _organization_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, r: Any) -> TariffNode:
        return cls(
            id=r.id,
            name=r.name,
            created_at=r.created_at,
            archived_at=r.archived_at,
            _organization_id=r.organization_id,
        )

    async def _versions(self, info: Info) -> list[Any]:
        async with info.context.db() as s:
            conn = await s.connection()
            return (await repo.versions(conn, [self.id])).get(self.id, [])

    async def _currency(self, info: Info) -> str:
        async with info.context.db() as s:
            org = await s.get(Organization, self._organization_id)
        return org.currency if org is not None else "EUR"

    @strawberry.field(description="The version new sessions get.")
    async def current_version(self, info: Info) -> TariffVersionView | None:
        found = await self._versions(info)
        return _version_view(found[-1], await self._currency(info)) if found else None

    @strawberry.field(description="Every version, oldest first (sessions keep the one they started with).")
    async def versions(self, info: Info) -> list[TariffVersionView]:
        currency = await self._currency(info)
        return [_version_view(v, currency) for v in await self._versions(info)]

    @strawberry.field
    async def assignments(self, info: Info, active_only: bool = True) -> list[TariffAssignmentView]:
        async with info.context.db() as s:
            rows = await repo.assignments_of(await s.connection(), [self.id], active_only=active_only)
        return [TariffAssignmentView.from_row(r) for r in rows]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[TariffNode | None]:
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            found = await repo.tariffs_by_ids(s, info.context.principal, ids)
        return [cls.from_row(found[i]) if i in found else None for i in ids]


def _version_view(v: Any, currency: str) -> TariffVersionView:
    tariff = codec.from_json(v.definition, currency=currency, time_zone="UTC")
    return TariffVersionView(
        version=v.version, created_at=v.created_at, prices=TariffPrices.from_tariff(tariff)
    )


@strawberry.type(description="A sponsor pays for (part of) sessions started here now.")
class SponsorshipNotice:
    message: str = strawberry.field(description="What the app shows: 'Charging here is sponsored by …'.")
    sponsor_name: str
    cap_description: str = strawberry.field(description="How much of a session the sponsor pays, in words.")


@strawberry.type(description="What a driver pays at a connector, before plugging in.")
class ConnectorPrice:
    tariff_name: str
    version: int
    prices: TariffPrices
    _station_id: strawberry.Private[int]
    membership_plan: str | None = strawberry.field(
        default=None, description="The caller's plan whose prices and benefits apply here, if any."
    )

    @classmethod
    def from_in_force(cls, found: InForce, station_id: int) -> ConnectorPrice:
        return cls(
            tariff_name=found.name,
            version=found.version,
            prices=TariffPrices.from_tariff(found.tariff),
            _station_id=station_id,
            membership_plan=None if found.membership is None else found.membership.plan_name,
        )

    @strawberry.field(
        description="The sponsorship a session started now would get (null: none). Asking for it "
        "counts an impression for the sponsor's report."
    )
    async def sponsorship(self, info: Info) -> SponsorshipNotice | None:
        async with info.context.db() as s:
            found = await sponsorships.notice(await s.connection(), self._station_id)
            await s.commit()
        if found is None:
            return None
        return SponsorshipNotice(
            message=found.message, sponsor_name=found.sponsor_name, cap_description=found.cap_description
        )


strawberry.enum(Component, name="PriceComponent")


@strawberry.type
class PriceLine:
    component: Component
    label: str
    quantity: Decimal = strawberry.field(description="kWh, minutes, or 1 for per-session amounts.")
    unit: str
    unit_price: Decimal | None = strawberry.field(description="Minor units per unit; none for adjustments.")
    amount: int


@strawberry.type(description="A session's price: its lines and totals, in minor units.")
class PriceBreakdown:
    currency: str
    lines: list[PriceLine]
    subtotal: int
    net: int
    tax: int
    total: int = strawberry.field(description="The session's price.")
    total_formatted: str
    sponsored_amount: int = strawberry.field(
        description="What a sponsor pays of the total (its line is labelled 'Sponsored by …')."
    )
    driver_amount: int = strawberry.field(description="What the driver pays: total - sponsoredAmount.")
    tax_basis_points: int
    prices_include_tax: bool
    energy_wh: int
    charging_minutes: Decimal
    idle_minutes: Decimal

    @classmethod
    def from_price(cls, p: pricing.Price) -> PriceBreakdown:
        sponsored = -sum(li.amount for li in p.lines if li.component is Component.SPONSORED)
        return cls(
            currency=p.currency,
            lines=[
                PriceLine(
                    component=li.component,
                    label=li.label,
                    quantity=li.quantity,
                    unit=li.unit,
                    unit_price=li.unit_price,
                    amount=li.amount,
                )
                for li in p.lines
            ],
            subtotal=p.subtotal,
            net=p.net,
            tax=p.tax,
            total=p.total,
            total_formatted=money(p.total, p.currency),
            sponsored_amount=sponsored,
            driver_amount=p.total - sponsored,
            tax_basis_points=p.tax_basis_points,
            prices_include_tax=p.prices_include_tax,
            energy_wh=p.energy_wh,
            charging_minutes=p.charging_minutes,
            idle_minutes=p.idle_minutes,
        )
