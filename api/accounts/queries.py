"""Device sessions of the signed-in person."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from api.accounts import service
from api.auth.permissions import IsUser
from api.context import Context
from schema.account_models import AuthSession


@strawberry.type(description="A device signed in to your account.")
class DeviceSession:
    id: strawberry.ID = strawberry.field(description="The sessionId of its AuthPayload.")
    device_name: str | None
    user_agent: str | None
    ip_address: str | None
    method: str = strawberry.field(description="How it signed in: password, email_link, google, apple.")
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    current: bool = strawberry.field(description="The session making this request.")

    @classmethod
    def from_model(cls, row: AuthSession, *, current_id: int | None) -> DeviceSession:
        return cls(
            id=strawberry.ID(str(row.id)),
            device_name=row.device_name,
            user_agent=row.user_agent,
            ip_address=row.ip_address,
            method=row.method,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            expires_at=row.expires_at,
            current=row.id == current_id,
        )


@strawberry.type
class AccountsQuery:
    @strawberry.field(
        permission_classes=[IsUser], description="Your signed-in devices, most recently used first."
    )
    async def auth_sessions(self, info: Info[Context, None]) -> list[DeviceSession]:
        principal = info.context.principal
        rows = await service.list_sessions(info.context.db, principal)
        return [DeviceSession.from_model(r, current_id=principal.session_id) for r in rows]
