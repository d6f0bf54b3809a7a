"""Request-scoped DataLoaders for the fields of work orders that fan out (checklist, parts,
timeline, attachments, an incident's orders): a page reads each kind once, not once per row.

Kept next to the work order types rather than in `api.loaders`, on the request's own state,
so nothing else has to know about them. Only orders the caller could already read reach these loaders.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from api.auth.principal import Principal
from api.service import work_order_access as access
from api.service import work_order_details as details

Batch = Callable[[AsyncConnection, Sequence[int]], Awaitable[dict[int, list[Any]]]]


class _RowsByWorkOrderLoader(DataLoader[int, list[Any]]):
    def __init__(self, db: async_sessionmaker[AsyncSession], read: Batch, *, cache: bool) -> None:
        super().__init__(load_fn=self.batch_load, cache=cache)
        self.db = db
        self.read = read

    async def batch_load(self, keys: Sequence[int]) -> list[list[Any]]:
        async with self.db() as s:
            found = await self.read(await s.connection(), keys)
        return [found.get(k, []) for k in keys]


class WorkOrderLoaders:
    __slots__ = ("attachments", "by_incident", "checklist", "parts", "timeline")

    def __init__(self, db: async_sessionmaker[AsyncSession], principal: Principal, *, cache: bool) -> None:
        self.checklist = _RowsByWorkOrderLoader(db, details.checklists_of, cache=cache)
        self.parts = _RowsByWorkOrderLoader(db, details.parts_of, cache=cache)
        self.timeline = _RowsByWorkOrderLoader(db, details.timelines_of, cache=cache)
        self.attachments = _RowsByWorkOrderLoader(db, details.attachments_of, cache=cache)

        async def readable_by_incident(conn: AsyncConnection, ids: Sequence[int]) -> dict[int, list[Any]]:
            return await access.readable_by_incident(conn, principal, ids)

        # Keyed by incident id; scoped by the caller's reach like every other work order read.
        self.by_incident = _RowsByWorkOrderLoader(db, readable_by_incident, cache=cache)

    def forget(self) -> None:
        """A mutation changed an order: what this request read before may be stale."""
        for loader in (self.checklist, self.parts, self.timeline, self.attachments, self.by_incident):
            loader.clear_all()


def loaders(info: Info) -> WorkOrderLoaders:
    """This request's loaders, kept on its Starlette state. A subscription's socket lives as
    long as the subscription, so there — like `api.loaders` — they batch but never cache (an
    event must show the order as it is now)."""
    state = info.context.request.state
    found: WorkOrderLoaders | None = getattr(state, "work_order_loaders", None)
    if found is None:
        found = WorkOrderLoaders(info.context.db, info.context.principal, cache=info.context.loaders.cache)
        state.work_order_loaders = found
    return found
