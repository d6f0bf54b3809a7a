"""One database connection kept for a component's life (the writer, the station loader).

Both run one statement group at a time, so a pool checkout per batch would only add its
reset and pre-ping round trips; after any failure the connection is dropped and the next
batch starts from a fresh one.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)


class HeldConnection:
    def __init__(self, engine: AsyncEngine, owner: str) -> None:
        self._engine = engine
        self._owner = owner
        self._conn: AsyncConnection | None = None

    async def get(self) -> AsyncConnection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            await self.drop()
            self._conn = await self._engine.connect()
        return self._conn

    async def drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:
                log.debug("closing the %s's connection failed", self._owner, exc_info=True)
