"""Device sessions and their tokens: a short-lived access JWT plus an opaque refresh token.

A refresh token is exchanged exactly once (rotation). Presenting one that was already
exchanged means it leaked or was replayed, so the whole session (the token family) is revoked
and the device must sign in again (RFC 9700 §4.14.2). Only SHA-256 hashes of refresh tokens
are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.auth.authenticator import Authenticator
from api.auth.keys import KeyRing
from api.auth.opaque import hash_token, new_token
from schema.account_models import AuthSession, RefreshToken, UserAccount
from schema.errors import Unauthenticated
from schema.timeutil import utcnow

MAX_DEVICE_NAME = 120
MAX_USER_AGENT = 300


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    access_expires_at: int  # epoch seconds
    refresh_token: str
    session_id: int
    user_id: int


@dataclass(frozen=True, slots=True)
class Device:
    """Where a sign-in comes from; shown to the driver in their list of sessions."""

    name: str | None = None
    user_agent: str | None = None
    ip_address: str | None = None


async def open_session(
    s: AsyncSession,
    keys: KeyRing,
    *,
    user_id: int,
    method: str,
    device: Device,
    ttl_days: int,
) -> TokenPair:
    """Adds the session and its first refresh token to `s` (flushes, the caller commits)."""
    now = utcnow()
    session = AuthSession(
        user_id=user_id,
        device_name=device.name[:MAX_DEVICE_NAME] if device.name else None,
        user_agent=device.user_agent[:MAX_USER_AGENT] if device.user_agent else None,
        ip_address=device.ip_address,
        method=method,
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(days=ttl_days),
    )
    s.add(session)
    await s.flush()
    assert session.id is not None
    refresh, refresh_hash = new_token()
    s.add(RefreshToken(session_id=session.id, token_hash=refresh_hash, created_at=now))
    await s.flush()
    access, exp = keys.issue(user_id=user_id, session_id=session.id)
    return TokenPair(access, exp, refresh, session.id, user_id)


async def refresh_session(
    db: async_sessionmaker[AsyncSession],
    keys: KeyRing,
    refresh_token: str,
    *,
    ip_address: str | None,
    ttl_days: int,
    authenticator: Authenticator | None = None,
) -> TokenPair:
    """Exchange a refresh token for a new pair; owns its unit of work (the reuse revocation
    must be committed even though the call fails)."""
    now = utcnow()
    token_hash = hash_token(refresh_token)
    async with db() as s:
        found = (
            await s.exec(
                select(RefreshToken, AuthSession, UserAccount)
                .join(AuthSession, col(AuthSession.id) == col(RefreshToken.session_id))
                .join(UserAccount, col(UserAccount.id) == col(AuthSession.user_id))
                .where(col(RefreshToken.token_hash) == token_hash)
            )
        ).first()
        if found is None:
            raise Unauthenticated("unknown refresh token")
        token, session, user = found
        if session.revoked_at is not None or session.expires_at <= now or user.deleted_at is not None:
            raise Unauthenticated("session ended; sign in again")
        # Claim the token atomically: of two concurrent exchanges exactly one wins.
        claimed = await s.exec(  # type: ignore[call-overload]
            update(RefreshToken)
            .where(col(RefreshToken.id) == token.id, col(RefreshToken.rotated_at).is_(None))
            .values(rotated_at=now)
        )
        if claimed.rowcount != 1:
            await _revoke(s, [session.id or 0], "refresh_token_reuse", now)
            await s.commit()
            if authenticator is not None:
                authenticator.forget_user(session.user_id)
            raise Unauthenticated("refresh token reused; the session was revoked for safety")
        new_plain, new_hash = new_token()
        s.add(RefreshToken(session_id=session.id or 0, token_hash=new_hash, created_at=now))
        session.last_used_at = now
        session.ip_address = ip_address or session.ip_address
        session.expires_at = now + timedelta(days=ttl_days)
        s.add(session)
        await s.commit()
        access, exp = keys.issue(user_id=session.user_id, session_id=session.id or 0)
        return TokenPair(access, exp, new_plain, session.id or 0, session.user_id)


async def _revoke(s: AsyncSession, session_ids: list[int], reason: str, now: object) -> None:
    if not session_ids:
        return
    await s.exec(  # type: ignore[call-overload]
        update(AuthSession)
        .where(col(AuthSession.id).in_(session_ids), col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=now, revoke_reason=reason)
    )


async def revoke_sessions(
    s: AsyncSession, user_id: int, *, reason: str, only: int | None = None, keep: int | None = None
) -> int:
    """Revoke one session (`only`) or all of a user's sessions except `keep`; the caller
    commits and then calls `Authenticator.forget_user` so revocation applies at once."""
    stmt = select(AuthSession.id).where(
        col(AuthSession.user_id) == user_id, col(AuthSession.revoked_at).is_(None)
    )
    if only is not None:
        stmt = stmt.where(col(AuthSession.id) == only)
    if keep is not None:
        stmt = stmt.where(col(AuthSession.id) != keep)
    ids = [i for i in (await s.exec(stmt)).all() if i is not None]
    await _revoke(s, ids, reason, utcnow())
    return len(ids)
