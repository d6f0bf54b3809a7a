"""Operator mutations that command a station and return the session they cause."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeAlias

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.control import repository, service
from api.network.types import StationNode, int_ids, parse_global_id, station_node
from api.sessions.types import TransactionNode, transaction_node

strawberry.enum(service.CommandOutcome, name="CommandOutcome")
CommandOutcomeGQL: TypeAlias = service.CommandOutcome


@strawberry.enum(name="ChargingRequestState")
class ChargingRequestStateGQL(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"
    PENDING = "pending"
    CHARGING = "charging"
    FAILED = "failed"
    ENDED = "ended"


@strawberry.type(
    name="ChargingRequest",
    description="A start asked of a station: pending until the station reports the session "
    "(then charging, with the transaction linked), failed with a reason, or ended.",
)
class ChargingRequestNode(relay.Node):
    id: relay.NodeID[int]
    state: ChargingRequestStateGQL
    failure_reason: str | None
    connector_id: int | None = strawberry.field(description="Null until known, if the station picks.")
    created_at: datetime
    updated_at: datetime
    _station_id: strawberry.Private[int]
    _transaction_id: strawberry.Private[int | None]

    @classmethod
    def from_row(cls, r: Any) -> ChargingRequestNode:
        return cls(
            id=r.id,
            state=ChargingRequestStateGQL(r.state),
            failure_reason=r.failure_reason,
            connector_id=r.connector_id,
            created_at=r.created_at,
            updated_at=r.updated_at,
            _station_id=r.station_id,
            _transaction_id=r.transaction_id,
        )

    @strawberry.field
    async def station(self, info: Info) -> StationNode | None:
        return await station_node(info, self._station_id)

    @strawberry.field(description="The session, once the station has reported it.")
    async def transaction(self, info: Info) -> TransactionNode | None:
        return await transaction_node(info, self._transaction_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ChargingRequestNode | None]:
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            found = await repository.requests_by_ids(s, info.context.principal, ids)
        return [cls.from_row(found[i]) if i in found else None for i in ids]


async def load_request(info: Info, request_id: int | None) -> ChargingRequestNode | None:
    if request_id is None:
        return None
    async with info.context.db() as s:
        found = await repository.requests_by_ids(s, info.context.principal, [request_id])
    row = found.get(request_id)
    return ChargingRequestNode.from_row(row) if row is not None else None


@strawberry.input
class StartChargingInput:
    station_id: relay.GlobalID | None = strawberry.field(
        default=None, description="The station, or give qrCode instead."
    )
    qr_code: str | None = strawberry.field(
        default=None, description="The code printed on a connector (names station and connector)."
    )
    id_tag: str | None = strawberry.field(
        default=None,
        description="Token the session is authorised with. Operators give any tag; drivers one of "
        "their own cards, or omit it to use their app token.",
    )
    connector_id: int | None = strawberry.field(
        default=None, description="Omit to let the station pick a free connector."
    )
    wait_seconds: float | None = strawberry.field(
        default=None,
        description="How long to wait for the session to start (max 60); 0 returns at once with the "
        "request pending (follow it with chargingRequest or transactionUpdated).",
    )


@strawberry.input
class StopChargingInput:
    transaction_id: relay.GlobalID
    wait_seconds: float | None = None


@strawberry.type
class ChargingPayload:
    outcome: CommandOutcomeGQL
    message: str
    _transaction_id: strawberry.Private[int | None]
    _request_id: strawberry.Private[int | None] = None
    payment_client_secret: str | None = strawberry.field(
        default=None,
        description="PAYMENT_ACTION_REQUIRED: confirm the card payment with this (Stripe SDK in the "
        "app), then call resumeCharging.",
    )

    @strawberry.field(description="The charging request this start created (startCharging only).")
    async def request(self, info: Info) -> ChargingRequestNode | None:
        return await load_request(info, self._request_id)

    @strawberry.field(description="The session, once the station has reported it.")
    async def transaction(self, info: Info) -> TransactionNode | None:
        return await transaction_node(info, self._transaction_id)


def _payload(result: service.ControlResult) -> ChargingPayload:
    return ChargingPayload(
        outcome=result.outcome,
        message=result.message,
        _transaction_id=result.transaction_id,
        _request_id=result.request_id,
        payment_client_secret=result.payment_client_secret,
    )


@strawberry.type
class ChargingRequestQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="A charging request: your own, or your organisation's (sessions:read).",
    )
    async def charging_request(self, info: Info, id: relay.GlobalID) -> ChargingRequestNode | None:
        return await load_request(info, parse_global_id(id, "ChargingRequest"))


@strawberry.type
class ControlMutation:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="RemoteStartTransaction; waits for the session to start.",
    )
    async def start_charging(self, info: Info, input: StartChargingInput) -> ChargingPayload:
        ctx = info.context
        result = await service.start_charging(
            ctx.db,
            ctx.bus,
            ctx.actor,
            station_id=None if input.station_id is None else parse_global_id(input.station_id, "Station"),
            qr_code=input.qr_code,
            connector_id=input.connector_id,
            id_tag=input.id_tag,
            wait_s=input.wait_seconds if input.wait_seconds is not None else ctx.settings.start_wait_s,
            command_timeout_s=ctx.settings.command_timeout_s,
            payments=ctx.payments,
        )
        return _payload(result)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Continue your start once the app has confirmed the card payment the bank asked "
        "for (a request in AWAITING_PAYMENT).",
    )
    async def resume_charging(
        self, info: Info, request_id: relay.GlobalID, wait_seconds: float | None = None
    ) -> ChargingPayload:
        ctx = info.context
        result = await service.resume_charging(
            ctx.db,
            ctx.bus,
            ctx.payments,
            ctx.actor,
            request_id=parse_global_id(request_id, "ChargingRequest"),
            wait_s=wait_seconds if wait_seconds is not None else ctx.settings.start_wait_s,
            command_timeout_s=ctx.settings.command_timeout_s,
        )
        return _payload(result)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="RemoteStopTransaction; waits for the session to end.",
    )
    async def stop_charging(self, info: Info, input: StopChargingInput) -> ChargingPayload:
        ctx = info.context
        result = await service.stop_charging(
            ctx.db,
            ctx.bus,
            ctx.actor,
            transaction_id=parse_global_id(input.transaction_id, "Transaction"),
            wait_s=input.wait_seconds if input.wait_seconds is not None else ctx.settings.start_wait_s,
            command_timeout_s=ctx.settings.command_timeout_s,
        )
        return _payload(result)
