"""Operator mutations that command a station and return the session they cause."""

from __future__ import annotations

from typing import TypeAlias

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.control import service
from api.network.types import parse_global_id
from api.sessions.types import TransactionNode

strawberry.enum(service.CommandOutcome, name="CommandOutcome")
CommandOutcomeGQL: TypeAlias = service.CommandOutcome


@strawberry.input
class StartChargingInput:
    station_id: relay.GlobalID
    id_tag: str | None = strawberry.field(
        default=None,
        description="Token the session is authorised with. Operators give any tag; drivers one of "
        "their own cards, or omit it to use their app token.",
    )
    connector_id: int | None = strawberry.field(
        default=None, description="Omit to let the station pick a free connector."
    )
    wait_seconds: float | None = strawberry.field(
        default=None, description="How long to wait for the session to start (max 60)."
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

    @strawberry.field(description="The session, once the station has reported it.")
    async def transaction(self, info: Info) -> TransactionNode | None:
        if self._transaction_id is None:
            return None
        row = await info.context.loaders.transaction_by_id.load(self._transaction_id)
        return TransactionNode.from_model(row) if row else None


def _payload(result: service.ControlResult) -> ChargingPayload:
    return ChargingPayload(
        outcome=result.outcome, message=result.message, _transaction_id=result.transaction_id
    )


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
            station_id=parse_global_id(input.station_id, "Station"),
            connector_id=input.connector_id,
            id_tag=input.id_tag,
            wait_s=input.wait_seconds if input.wait_seconds is not None else ctx.settings.start_wait_s,
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
