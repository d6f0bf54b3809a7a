"""GraphQL types shared by every way of signing in."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry

from api.accounts.tokens import Device, TokenPair


@strawberry.input(description="The device signing in; shown to the driver in their list of sessions.")
class DeviceInput:
    name: str | None = strawberry.field(default=None, description='e.g. "Anna\'s iPhone"')


@strawberry.type(description="Tokens for one device session.")
class AuthPayload:
    access_token: str = strawberry.field(description="Bearer token for the API; short-lived (≤ 15 min).")
    access_token_expires_at: datetime
    refresh_token: str = strawberry.field(
        description="Exchange with refreshToken for a new pair; single use. Store it securely."
    )
    session_id: strawberry.ID

    @classmethod
    def from_pair(cls, pair: TokenPair) -> AuthPayload:
        return cls(
            access_token=pair.access_token,
            access_token_expires_at=datetime.fromtimestamp(pair.access_expires_at, tz=UTC),
            refresh_token=pair.refresh_token,
            session_id=strawberry.ID(str(pair.session_id)),
        )


def device_from(input: DeviceInput | None, *, user_agent: str | None, ip_address: str | None) -> Device:
    return Device(name=input.name if input else None, user_agent=user_agent, ip_address=ip_address)
