"""GraphQL shapes of reservations: the node, its status, and the mutations' payload."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeAlias

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.control.mutations import CommandOutcomeGQL
from api.network.types import StationNode, int_ids, station_node
from api.reservations import repository
from api.reservations.service import ReservationResult, effective_status
from api.sessions.types import TransactionNode, transaction_node
from schema.request_models import ReservationStatus

strawberry.enum(
    ReservationStatus,
    name="ReservationStatus",
    description="ACTIVE holds the connector; USED: a session started with it; REFUSED: the station "
    "said no (or could not be asked).",
)
ReservationStatusGQL: TypeAlias = ReservationStatus


@strawberry.type(name="Reservation", description="A connector held for one driver until it expires.")
class ReservationNode(relay.Node):
    id: relay.NodeID[int]
    connector_id: int
    status: ReservationStatusGQL = strawberry.field(
        description="An active reservation past its expiry reads EXPIRED, as the station treats it."
    )
    station_status: str | None = strawberry.field(
        description="The station's own answer to the reservation (Accepted, Occupied, Faulted…)."
    )
    expires_at: datetime
    created_at: datetime
    _station_id: strawberry.Private[int]
    _transaction_id: strawberry.Private[int | None]

    @classmethod
    def from_row(cls, r: Any) -> ReservationNode:
        return cls(
            id=r.id or 0,
            connector_id=r.connector_id,
            status=effective_status(r),
            station_status=r.station_status,
            expires_at=r.expires_at,
            created_at=r.created_at,
            _station_id=r.station_id,
            _transaction_id=r.transaction_id,
        )

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return await station_node(info, self._station_id)

    @strawberry.field(description="The session that used the reservation, if the caller may see it.")
    async def transaction(self, info: Info) -> TransactionNode | None:
        return await transaction_node(info, self._transaction_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ReservationNode | None]:
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            found = await repository.reservations_by_ids(s, info.context.principal, ids)
        return [cls.from_row(found[i]) if i in found else None for i in ids]


@strawberry.type(description="What the station answered, and the reservation as it now stands.")
class ReservationPayload:
    outcome: CommandOutcomeGQL = strawberry.field(
        description="NOT_SUPPORTED: the station does not offer reservations; NOT_ACTIVE: there was "
        "nothing left to cancel."
    )
    message: str
    reservation: ReservationNode | None = strawberry.field(
        description="Absent when nothing was reserved (the station was offline)."
    )

    @classmethod
    def from_result(cls, result: ReservationResult) -> ReservationPayload:
        r = result.reservation
        return cls(
            outcome=result.outcome,
            message=result.message,
            reservation=None if r is None else ReservationNode.from_row(r),
        )
