"""Keyword-only builders for people, memberships, API keys and signed-in sessions.

Sessions are opened through the same service the sign-in mutations use, so a token made here
is indistinguishable from one a real sign-in returns.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from api.accounts.tokens import Device, TokenPair, open_session
from api.auth.keys import KeyRing
from api.auth.opaque import new_token
from api.auth.roles import Permission, Role, format_permissions
from schema.account_models import ApiKey, Membership, UserAccount
from schema.db import session_factory
from schema.models import IdToken
from schema.secrets import hash_secret
from schema.timeutil import utcnow

DEFAULT_PASSWORD = "correct-horse-battery-staple"


async def make_user(
    engine: AsyncEngine,
    *,
    email: str,
    password: str | None = DEFAULT_PASSWORD,
    verified: bool = True,
    platform_admin: bool = False,
    display_name: str | None = None,
) -> int:
    async with session_factory(engine)() as s:
        user = UserAccount(
            email=email.lower(),
            password_hash=hash_secret(password) if password else None,
            email_verified_at=utcnow() if verified else None,
            is_platform_admin=platform_admin,
            display_name=display_name,
        )
        s.add(user)
        await s.commit()
        return user.id or 0


async def add_member(engine: AsyncEngine, *, user_id: int, organization_id: int, role: Role) -> None:
    async with session_factory(engine)() as s:
        s.add(Membership(user_id=user_id, organization_id=organization_id, role=role.value))
        await s.commit()


async def sign_in(engine: AsyncEngine, keys: KeyRing, *, user_id: int, device: str = "test") -> TokenPair:
    async with session_factory(engine)() as s:
        pair = await open_session(
            s, keys, user_id=user_id, method="password", device=Device(name=device), ttl_days=30
        )
        await s.commit()
        return pair


async def make_api_key(
    engine: AsyncEngine, *, organization_id: int, permissions: frozenset[Permission], name: str = "key"
) -> str:
    """The full secret (`cnk_<public>_<secret>`), as shown once at creation."""
    public_id = new_token()[0][:12].replace("_", "x").replace("-", "y")
    secret, secret_hash = new_token()
    async with session_factory(engine)() as s:
        s.add(
            ApiKey(
                organization_id=organization_id,
                name=name,
                public_id=public_id,
                secret_hash=secret_hash,
                permissions=format_permissions(permissions),
            )
        )
        await s.commit()
    return f"cnk_{public_id}_{secret}"


async def give_token(
    engine: AsyncEngine,
    *,
    user_id: int,
    token: str,
    token_type: str = "RFID",
    organization_id: int | None = None,
) -> None:
    async with session_factory(engine)() as s:
        s.add(IdToken(token=token, token_type=token_type, user_id=user_id, organization_id=organization_id))
        await s.commit()
