"""A station's local authorization list as ChargeNet knows it (stations:diagnose)."""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.localauth import service
from api.localauth.types import LocalAuthListStatus
from api.network.types import parse_global_id


@strawberry.type
class LocalAuthQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="The station's local authorization list: installed version, entries, last "
        "sync and whether an update is pending (stations:diagnose at its organisation).",
    )
    async def local_auth_list_status(self, info: Info, station_id: relay.GlobalID) -> LocalAuthListStatus:
        status = await service.list_status(
            info.context.db, info.context.principal, parse_global_id(station_id, "Station")
        )
        return LocalAuthListStatus.from_status(status)
