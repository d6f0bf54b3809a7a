"""Live session: a snapshot first, then every meter reading, until the session ends."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.billing import charges
from api.billing.live import LiveCost
from api.billing.types import PriceBreakdown
from api.network.types import parse_global_id
from api.sessions import repository
from api.sessions.types import TransactionLive
from schema.bus import BusResumed
from schema.enums import TransactionState
from schema.errors import NotFound
from schema.events import TransactionEnded, TransactionEvent, transaction_topic
from schema.models import Transaction


async def _stored(info: Info, pk: int) -> Transaction:
    async with info.context.db() as s:
        found = await repository.transactions_by_ids(s, info.context.principal, [pk])
    row = found.get(pk)
    if row is None:
        raise NotFound("no such transaction")
    return row


async def _cost(info: Info, pk: int) -> LiveCost | None:
    async with info.context.db() as s:
        return await LiveCost.load(await s.connection(), pk)


async def _snapshot(info: Info, row: Transaction, cost: LiveCost | None) -> TransactionLive:
    live = TransactionLive.from_model(row)
    if row.state == TransactionState.COMPLETED.value:
        async with info.context.db() as s:
            final = await charges.bill(await s.connection(), row.id or 0)
        live.cost = None if final is None else PriceBreakdown.from_price(final)
    elif cost is not None:
        live.cost = PriceBreakdown.from_price(cost.now())
    return live


@strawberry.type
class SessionsSubscription:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="Energy, power and SoC of one session as they change; completes after the session ends.",
    )
    async def transaction_updated(
        self, info: Info, transaction_id: relay.GlobalID
    ) -> AsyncGenerator[TransactionLive, None]:
        pk = parse_global_id(transaction_id, "Transaction")
        sub = info.context.bus.subscribe(transaction_topic(pk))
        try:
            row = await _stored(info, pk)
            cost = await _cost(info, pk)
            yield await _snapshot(info, row, cost)
            if row.state == TransactionState.COMPLETED.value:
                return
            last = row.last_sample_at
            async for event in sub:
                if isinstance(event, BusResumed):
                    # The bus was down and readings may have been missed: the stored state again.
                    row = await _stored(info, pk)
                    cost = await _cost(info, pk)
                    yield await _snapshot(info, row, cost)
                    if row.state == TransactionState.COMPLETED.value:
                        return
                    last = row.last_sample_at
                    continue
                if not isinstance(event, TransactionEvent):
                    continue
                # An event older than the snapshot (queued before we read it) adds nothing.
                if (
                    not isinstance(event, TransactionEnded)
                    and last is not None
                    and event.last_sample_at is not None
                    and event.last_sample_at < last
                ):
                    continue
                live = TransactionLive.from_event(event)
                if isinstance(event, TransactionEnded):
                    # the final price is the stored session's, as its receipt computes it
                    async with info.context.db() as s:
                        final = await charges.bill(await s.connection(), pk)
                    live.cost = None if final is None else PriceBreakdown.from_price(final)
                    yield live
                    return
                if cost is not None:
                    live.cost = PriceBreakdown.from_price(cost.on_event(event))
                yield live
        finally:
            sub.close()
