"""Tariffs for operators (billing:read), and prices for everyone who can see the station."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated, IsPublic
from api.billing import repository as repo
from api.billing import service
from api.billing.types import ConnectorPrice, PriceBreakdown, TariffNode
from api.network.types import parse_global_id
from api.orgs.types import connection
from api.pagination import Connection, clamp_first, decode_cursor, wants_total
from schema.errors import NotFound


async def _in_force(info: Info, station: relay.GlobalID, connector_id: int) -> service.InForce | None:
    """The connector's tariff, if the caller may see the station (the loader is scoped)."""
    station_id = parse_global_id(station, "Station")
    if await info.context.loaders.station_by_id.load(station_id) is None:
        raise NotFound("no such station")
    principal = info.context.principal
    async with info.context.db() as s:
        found = await service.in_force(
            await s.connection(),
            [(station_id, connector_id)],
            user_id=principal.user_id if principal.is_user else None,
        )
    return found[(station_id, connector_id)]


@strawberry.input
class EstimateCostInput:
    station_id: relay.GlobalID
    connector_id: int
    energy_kwh: Decimal
    charging_minutes: float
    idle_minutes: float = strawberry.field(default=0, description="Plugged in after charging ended.")
    start_at: datetime | None = strawberry.field(default=None, description="Now by default.")


@strawberry.type
class BillingQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Tariffs of the organisations where the caller has billing:read, newest first.",
    )
    async def tariffs(
        self, info: Info, include_archived: bool = False, first: int | None = None, after: str | None = None
    ) -> Connection[TariffNode]:
        async with info.context.db() as s:
            p = await repo.page_tariffs(
                s,
                info.context.principal,
                include_archived=include_archived,
                first=clamp_first(first),
                after=decode_cursor("tariff", after),
                count=wants_total(info),
            )
        return connection(TariffNode.from_row, p, "tariff")

    @strawberry.field(
        permission_classes=[IsPublic],
        description="The price at a connector now, as the app shows it before the cable goes in; "
        "null when no tariff applies.",
    )
    async def connector_tariff(
        self, info: Info, station_id: relay.GlobalID, connector_id: int
    ) -> ConnectorPrice | None:
        found = await _in_force(info, station_id, connector_id)
        if found is None:
            return None
        return ConnectorPrice.from_in_force(found, parse_global_id(station_id, "Station"))

    @strawberry.field(
        permission_classes=[IsPublic],
        description="What a session of this size would cost at the connector with today's tariff.",
    )
    async def estimate_cost(self, info: Info, input: EstimateCostInput) -> PriceBreakdown:
        found = await _in_force(info, input.station_id, input.connector_id)
        if found is None:
            raise NotFound("no tariff applies at this connector")
        benefits = None
        if found.membership is not None:
            async with info.context.db() as s:
                benefits = await service.member_benefits(await s.connection(), found.membership)
        price = service.estimate(
            found.tariff,
            benefits=benefits,
            energy_wh=int(input.energy_kwh * 1000),
            charging_minutes=input.charging_minutes,
            idle_minutes=input.idle_minutes,
            start_at=input.start_at,
        )
        return PriceBreakdown.from_price(price)
