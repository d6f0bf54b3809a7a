"""Operators create, version, archive and assign tariffs (billing:manage)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.billing import service
from api.billing.types import ASSIGNMENT_NODE, TariffAssignmentView, TariffNode
from api.network.types import parse_global_id
from api.orgs.types import parse_organization_id


@strawberry.input
class TariffWindowInput:
    name: str
    start: str = strawberry.field(description="HH:MM, the location's local time.")
    end: str = strawberry.field(description="HH:MM; at or before `start`: runs past midnight.")
    days: list[int] = strawberry.field(default_factory=list, description="0 = Monday … 6; empty: every day.")
    energy_per_kwh: Decimal | None = None
    time_per_minute: Decimal | None = None
    idle_per_minute: Decimal | None = None


@strawberry.input(description="Unit prices in minor units (39 = €0.39); amounts in minor units.")
class TariffPricesInput:
    energy_per_kwh: Decimal = Decimal(0)
    time_per_minute: Decimal = Decimal(0)
    idle_per_minute: Decimal = Decimal(0)
    idle_grace_minutes: int = 0
    idle_cap: int | None = None
    session_fee: int = 0
    min_price: int | None = None
    max_price: int | None = None
    tax_basis_points: int = strawberry.field(default=0, description="1900 = 19 %.")
    prices_include_tax: bool = True
    windows: list[TariffWindowInput] = strawberry.field(default_factory=list)


def _definition(p: TariffPricesInput) -> dict[str, Any]:
    return {
        "energy_per_kwh": str(p.energy_per_kwh),
        "time_per_minute": str(p.time_per_minute),
        "idle_per_minute": str(p.idle_per_minute),
        "idle_grace_minutes": p.idle_grace_minutes,
        "idle_cap": p.idle_cap,
        "session_fee": p.session_fee,
        "min_price": p.min_price,
        "max_price": p.max_price,
        "tax_basis_points": p.tax_basis_points,
        "prices_include_tax": p.prices_include_tax,
        "windows": [
            {
                "name": w.name,
                "start": w.start,
                "end": w.end,
                "days": w.days,
                "energy_per_kwh": None if w.energy_per_kwh is None else str(w.energy_per_kwh),
                "time_per_minute": None if w.time_per_minute is None else str(w.time_per_minute),
                "idle_per_minute": None if w.idle_per_minute is None else str(w.idle_per_minute),
            }
            for w in p.windows
        ],
    }


@strawberry.input
class CreateTariffInput:
    organization_id: relay.GlobalID
    name: str
    prices: TariffPricesInput


@strawberry.input
class UpdateTariffPricesInput:
    tariff_id: relay.GlobalID
    prices: TariffPricesInput


@strawberry.input
class AssignTariffInput:
    tariff_id: relay.GlobalID
    location_id: relay.GlobalID | None = None
    station_id: relay.GlobalID | None = None
    connector_id: int | None = strawberry.field(default=None, description="With stationId: one connector.")
    plan_id: relay.GlobalID | None = strawberry.field(
        default=None, description="Only for members of this plan (they get it before general tariffs)."
    )


def _tariff_id(value: relay.GlobalID) -> int:
    return parse_global_id(value, "Tariff")


@strawberry.type
class BillingMutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="A new tariff, version 1.")
    async def create_tariff(self, info: Info, input: CreateTariffInput) -> TariffNode:
        ctx = info.context
        row = await service.create_tariff(
            ctx.db,
            ctx.actor,
            organization_id=parse_organization_id(input.organization_id),
            name=input.name,
            definition=_definition(input.prices),
        )
        return TariffNode.from_row(row)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="New prices as the tariff's next version; sessions already started keep theirs.",
    )
    async def update_tariff_prices(self, info: Info, input: UpdateTariffPricesInput) -> TariffNode:
        ctx = info.context
        tariff_id = _tariff_id(input.tariff_id)
        await service.new_version(
            ctx.db, ctx.actor, tariff_id=tariff_id, definition=_definition(input.prices)
        )
        return await _node(info, tariff_id)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="No new session gets it; past sessions keep it."
    )
    async def archive_tariff(self, info: Info, id: relay.GlobalID) -> TariffNode:
        ctx = info.context
        return TariffNode.from_row(await service.archive_tariff(ctx.db, ctx.actor, tariff_id=_tariff_id(id)))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Apply a tariff to its organisation (no scope), a location, a station or one "
        "connector; replaces the tariff assigned at exactly that scope.",
    )
    async def assign_tariff(self, info: Info, input: AssignTariffInput) -> TariffAssignmentView:
        ctx = info.context
        row = await service.assign_tariff(
            ctx.db,
            ctx.actor,
            tariff_id=_tariff_id(input.tariff_id),
            location_id=None if input.location_id is None else parse_global_id(input.location_id, "Location"),
            station_id=None if input.station_id is None else parse_global_id(input.station_id, "Station"),
            connector_id=input.connector_id,
            plan_id=None if input.plan_id is None else parse_global_id(input.plan_id, "MembershipPlan"),
        )
        return TariffAssignmentView.from_row(row)

    @strawberry.mutation(permission_classes=[IsAuthenticated], description="End a tariff assignment.")
    async def unassign_tariff(self, info: Info, id: relay.GlobalID) -> TariffAssignmentView:
        ctx = info.context
        row = await service.unassign_tariff(
            ctx.db, ctx.actor, assignment_id=parse_global_id(id, ASSIGNMENT_NODE)
        )
        return TariffAssignmentView.from_row(row)


async def _node(info: Info, tariff_id: int) -> TariffNode:
    found = await TariffNode.resolve_nodes(info=info, node_ids=[str(tariff_id)])
    node = found[0]
    assert node is not None  # the service just found it for this caller
    return node
