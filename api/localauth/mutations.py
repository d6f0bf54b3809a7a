"""syncLocalAuthList: parse, call the service, shape."""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.localauth import service
from api.localauth.types import LocalAuthListSync, LocalAuthListSyncPayload
from api.network.types import parse_global_id


@strawberry.type
class LocalAuthMutation:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Bring stations' local authorization lists up to date with their organisation's "
        "tokens (stations:control): a differential update with what changed, or a full one when "
        "the station's list is unknown or `full` is true. From the first sync on, the worker "
        f"keeps the station in step by itself. At most {service.MAX_STATIONS_PER_REQUEST} stations.",
    )
    async def sync_local_auth_list(
        self, info: Info, station_ids: list[relay.GlobalID], full: bool = False
    ) -> LocalAuthListSyncPayload:
        ctx = info.context
        results = await service.sync_stations(
            ctx.db,
            ctx.bus,
            ctx.actor,
            station_ids=[parse_global_id(s, "Station") for s in station_ids],
            full=full,
            timeout_s=ctx.settings.command_timeout_s,
        )
        return LocalAuthListSyncPayload(results=[LocalAuthListSync.from_result(r) for r in results])
