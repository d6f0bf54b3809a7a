"""Live session: a snapshot first, then every meter reading, until the session ends."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.network.types import parse_global_id
from api.sessions import repository
from api.sessions.types import TransactionLive
from schema.enums import TransactionState
from schema.errors import NotFound
from schema.events import TransactionEnded, TransactionEvent, transaction_topic


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
            async with info.context.db() as s:
                found = await repository.transactions_by_ids(s, info.context.principal, [pk])
            row = found.get(pk)
            if row is None:
                raise NotFound("no such transaction")
            yield TransactionLive.from_model(row)
            if row.state == TransactionState.COMPLETED.value:
                return
            last = row.last_sample_at
            async for event in sub:
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
                yield TransactionLive.from_event(event)
                if isinstance(event, TransactionEnded):
                    return
        finally:
            sub.close()
