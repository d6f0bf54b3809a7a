"""Reserving a connector and cancelling a reservation: parse, call the service, shape."""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.network.types import parse_global_id
from api.reservations import service
from api.reservations.types import ReservationPayload


@strawberry.input
class ReserveConnectorInput:
    station_id: relay.GlobalID
    connector_id: int
    minutes: int = strawberry.field(
        description=f"How long to hold it: {service.MIN_RESERVATION_MINUTES}–"
        f"{service.MAX_RESERVATION_MINUTES}."
    )
    id_tag: str | None = strawberry.field(
        default=None,
        description="Whom it is for. Operators name any token; drivers one of their own cards, or "
        "omit it to use their app token.",
    )


@strawberry.type
class ReservationsMutation:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="ReserveNow: hold a connector for a driver. One active reservation per driver; "
        "the session that starts with the driver's token on it uses the reservation up.",
    )
    async def reserve_connector(self, info: Info, input: ReserveConnectorInput) -> ReservationPayload:
        ctx = info.context
        result = await service.reserve_connector(
            ctx.db,
            ctx.bus,
            ctx.actor,
            station_id=parse_global_id(input.station_id, "Station"),
            connector_id=input.connector_id,
            minutes=input.minutes,
            id_tag=input.id_tag,
            command_timeout_s=ctx.settings.command_timeout_s,
        )
        return ReservationPayload.from_result(result)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="CancelReservation: by its driver, or an operator with stations:control.",
    )
    async def cancel_reservation(self, info: Info, id: relay.GlobalID) -> ReservationPayload:
        ctx = info.context
        result = await service.cancel_reservation(
            ctx.db,
            ctx.bus,
            ctx.actor,
            reservation_id=parse_global_id(id, "Reservation"),
            command_timeout_s=ctx.settings.command_timeout_s,
        )
        return ReservationPayload.from_result(result)
