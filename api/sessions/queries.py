"""Session queries: a filtered, paginated list and one session by id."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.enums import TransactionStateGQL
from api.network.types import parse_global_id
from api.pagination import Connection, build_connection, clamp_first, decode_cursor, wants_total
from api.sessions import repository
from api.sessions.types import TransactionNode


@strawberry.type
class SessionsQuery:
    @strawberry.field(permission_classes=[IsAuthenticated], description="Sessions, newest first.")
    async def transactions(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        station_id: relay.GlobalID | None = None,
        state: TransactionStateGQL | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
    ) -> Connection[TransactionNode]:
        f = repository.TransactionFilter(
            station_id=parse_global_id(station_id, "Station") if station_id else None,
            state=state.value if state else None,
            started_after=started_after,
            started_before=started_before,
        )
        async with info.context.db() as s:
            rows, has_next, total = await repository.page_transactions(
                s,
                info.context.principal,
                f,
                first=clamp_first(first),
                before_id=decode_cursor("tx", after),
                count=wants_total(info),
            )
        return build_connection(
            [TransactionNode.from_model(r) for r in rows],
            kind="tx",
            keys=[r.id or 0 for r in rows],
            has_next=has_next,
            total=total,
        )

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def transaction(self, info: Info, id: relay.GlobalID) -> TransactionNode | None:
        row = await info.context.loaders.transaction_by_id.load(parse_global_id(id, "Transaction"))
        return TransactionNode.from_model(row) if row else None
