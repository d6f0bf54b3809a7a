"""The signed-in driver's own data."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.auth.permissions import IsUser
from api.drivers import repository as repo
from api.drivers.types import AccountNode
from schema.errors import Unauthenticated


@strawberry.type
class DriverQuery:
    @strawberry.field(
        permission_classes=[IsUser],
        description="The signed-in person: profile, vehicles, cards, app tokens and memberships.",
    )
    async def me(self, info: Info) -> AccountNode:
        async with info.context.db() as s:
            user = await repo.account(s, info.context.principal)
        if user is None:  # deleted between authentication and this read
            raise Unauthenticated("account not found; sign in again")
        return AccountNode.from_model(user)
