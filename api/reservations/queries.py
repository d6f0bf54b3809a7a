"""Reservations a caller may see: a driver their own, an operator their organisations'."""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.network.types import parse_global_id
from api.orgs.types import connection
from api.pagination import Connection, clamp_first, decode_cursor, wants_total
from api.reservations import repository
from api.reservations.types import ReservationNode
from schema.timeutil import utcnow


@strawberry.type
class ReservationsQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Reservations, newest first: a driver's own, and those at the stations of "
        "organisations where the caller has network:read.",
    )
    async def reservations(
        self,
        info: Info,
        station_id: relay.GlobalID | None = None,
        active_only: bool = False,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[ReservationNode]:
        async with info.context.db() as s:
            p = await repository.page_reservations(
                s,
                info.context.principal,
                station_id=None if station_id is None else parse_global_id(station_id, "Station"),
                active_only=active_only,
                now=utcnow(),
                first=clamp_first(first),
                after=decode_cursor("reservation", after),
                count=wants_total(info),
            )
        return connection(ReservationNode.from_row, p, "reservation")
