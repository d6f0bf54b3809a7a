"""What operators read of station health: scoped to network:read in the station's
organisation, never to drivers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.auth.principal import Principal
from api.auth.roles import Permission
from api.orgs.access import require
from api.service import health_repository as repo
from schema.errors import InvalidInput

# One screen of the worst stations; a fleet-wide list is an export, not a query.
MAX_UNHEALTHY = 500


async def unhealthy_stations(
    db: async_sessionmaker[AsyncSession],
    principal: Principal,
    organization_id: int,
    *,
    below: int | None,
    first: int,
) -> list[Row[Any]]:
    """The organisation's stations scoring below `below` (None: those degraded now, inside the
    hysteresis band too), worst first."""
    if not 1 <= first <= MAX_UNHEALTHY:
        raise InvalidInput(f"first must be between 1 and {MAX_UNHEALTHY}")
    if below is not None and not 0 <= below <= 101:
        raise InvalidInput("below must be between 0 and 101")
    async with db() as s:
        await require(s, principal, organization_id, Permission.NETWORK_READ)
        conn = await s.connection()
        return await repo.unhealthy(conn, principal, organization_id, below=below, limit=first)
