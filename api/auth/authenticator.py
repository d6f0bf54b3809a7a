"""Turn an `Authorization` header into a Principal, fast enough to run on every request.

Three credentials are accepted: an access JWT (people), an API key `cnk_…` (integrations) and
the deployment's bootstrap admin token. A JWT's signature proves who signed in; whether the
session is still alive and which roles the person holds come from the database through a short
cache, so logout, revocation and role changes apply within `CACHE_TTL_S` on every replica
(immediately on the replica that made the change).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth.keys import CLOCK_SKEW_S, AccessClaims, InvalidToken, KeyRing
from api.auth.opaque import hash_token
from api.auth.principal import ANONYMOUS, PLATFORM, Principal, PrincipalKind
from api.auth.roles import ROLE_PERMISSIONS, Permission, Role, parse_permissions
from schema.account_models import ApiKey, AuthSession, Membership, UserAccount
from schema.errors import Unauthenticated
from schema.timeutil import utcnow

# Bounds how long a revoked session or removed membership keeps working on other replicas.
CACHE_TTL_S = 5.0
# Enough for every active device of a large deployment; beyond it the oldest entries go.
CACHE_MAX_ENTRIES = 50_000
API_KEY_PREFIX = "cnk_"
# last_used_at is a hint for admins, not a log: writing it once a minute per key is plenty.
API_KEY_TOUCH_INTERVAL = timedelta(seconds=60)

_USER = UserAccount.__table__  # type: ignore[attr-defined]
_SESSION = AuthSession.__table__  # type: ignore[attr-defined]
_MEMBERSHIP = Membership.__table__  # type: ignore[attr-defined]
_API_KEY = ApiKey.__table__  # type: ignore[attr-defined]


@dataclass(slots=True)
class _Entry:
    until: float
    principal: Principal | None  # None: known to be invalid (revoked, deleted, expired)


class _TTLCache:
    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._items: OrderedDict[object, _Entry] = OrderedDict()

    def get(self, key: object) -> _Entry | None:
        entry = self._items.get(key)
        if entry is None or entry.until < time.monotonic():
            return None
        return entry

    def put(self, key: object, principal: Principal | None) -> None:
        self._items[key] = _Entry(time.monotonic() + self._ttl, principal)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    def drop_where(self, pred: object) -> None:
        for key in [k for k, e in self._items.items() if e.principal is not None and pred(e.principal)]:  # type: ignore[operator]
            del self._items[key]

    def clear(self) -> None:
        self._items.clear()


class Authenticator:
    def __init__(
        self,
        engine: AsyncEngine,
        keys: KeyRing,
        *,
        admin_token: str | None = None,
        cache_ttl_s: float = CACHE_TTL_S,
    ) -> None:
        self._engine = engine
        self.keys = keys
        self._admin_digest = hashlib.sha256(admin_token.encode()).digest() if admin_token else None
        self._cache = _TTLCache(cache_ttl_s, CACHE_MAX_ENTRIES)
        self._verified: OrderedDict[str, AccessClaims] = OrderedDict()

    async def principal_for(self, authorization: str | None) -> Principal:
        """ANONYMOUS without credentials; raises Unauthenticated for credentials that fail."""
        return (await self.authenticate(authorization))[0]

    async def authenticate(self, authorization: str | None) -> tuple[Principal, int | None]:
        """The principal and, for access tokens, when the credential expires (epoch seconds):
        a subscription socket is closed at that moment."""
        if not authorization:
            return ANONYMOUS, None
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("expected `Authorization: Bearer <token>`")
        if token.startswith(API_KEY_PREFIX):
            return await self._api_key(token), None
        if "." not in token:
            if self._admin_digest is not None and hmac.compare_digest(
                hashlib.sha256(token.encode()).digest(), self._admin_digest
            ):
                return PLATFORM, None
            raise Unauthenticated("unknown token")
        claims = self._verified_claims(token)
        key = ("session", claims.session_id, claims.user_id)
        entry = self._cache.get(key)
        if entry is None:
            principal = await self._load_session(claims.user_id, claims.session_id)
            self._cache.put(key, principal)
        else:
            principal = entry.principal
        if principal is None:
            raise Unauthenticated("session ended; sign in again")
        return principal, claims.expires_at

    def _verified_claims(self, token: str) -> AccessClaims:
        """An app sends the same access token with every request for its whole lifetime, so
        the signature is checked once and the claims remembered by the exact token bytes
        (any other bytes are verified afresh). Expiry is still checked on every use."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self.keys.verify(token)
            self._verified[token] = claims
            while len(self._verified) > CACHE_MAX_ENTRIES:
                self._verified.popitem(last=False)
        elif claims.expires_at + CLOCK_SKEW_S <= time.time():
            del self._verified[token]
            raise InvalidToken("invalid access token: expired_token")
        return claims

    # --- invalidation, called by the services that change what a principal may do ---

    def forget_user(self, user_id: int) -> None:
        self._cache.drop_where(lambda p: p.user_id == user_id)

    def forget_organization(self, organization_id: int) -> None:
        self._cache.drop_where(lambda p: organization_id in p.grants)

    def forget_api_key(self, api_key_id: int) -> None:
        self._cache.drop_where(lambda p: p.api_key_id == api_key_id)

    def forget_all(self) -> None:
        self._cache.clear()

    # --- loading ---

    async def _load_session(self, user_id: int, session_id: int) -> Principal | None:
        now = utcnow()
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(_USER.c.is_platform_admin)
                    .select_from(_SESSION.join(_USER, _USER.c.id == _SESSION.c.user_id))
                    .where(
                        _SESSION.c.id == session_id,
                        _SESSION.c.user_id == user_id,
                        _SESSION.c.revoked_at.is_(None),
                        _SESSION.c.expires_at > now,
                        _USER.c.deleted_at.is_(None),
                    )
                )
            ).first()
            if row is None:
                return None
            memberships = (
                await conn.execute(
                    select(_MEMBERSHIP.c.organization_id, _MEMBERSHIP.c.role).where(
                        _MEMBERSHIP.c.user_id == user_id
                    )
                )
            ).all()
        grants: Mapping[int, frozenset[Permission]] = {
            int(m.organization_id): ROLE_PERMISSIONS[Role(str(m.role))]
            for m in memberships
            if m.role in Role._value2member_map_
        }
        return Principal(
            PrincipalKind.USER,
            user_id=user_id,
            session_id=session_id,
            grants=grants,
            everywhere=frozenset(Permission) if row.is_platform_admin else frozenset(),
        )

    async def _api_key(self, token: str) -> Principal:
        public_id, sep, secret = token[len(API_KEY_PREFIX) :].partition("_")
        if not sep or not public_id or not secret:
            raise Unauthenticated("malformed API key")
        digest = hash_token(token)
        key = ("api_key", digest)
        entry = self._cache.get(key)
        if entry is not None:
            if entry.principal is None:
                raise Unauthenticated("API key revoked or unknown")
            return entry.principal
        now = utcnow()
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        _API_KEY.c.id,
                        _API_KEY.c.organization_id,
                        _API_KEY.c.secret_hash,
                        _API_KEY.c.permissions,
                        _API_KEY.c.revoked_at,
                        _API_KEY.c.expires_at,
                        _API_KEY.c.last_used_at,
                    ).where(_API_KEY.c.public_id == public_id)
                )
            ).first()
            valid = (
                row is not None
                and hmac.compare_digest(hash_token(secret), row.secret_hash)
                and row.revoked_at is None
                and (row.expires_at is None or row.expires_at > now)
            )
            if (
                valid
                and row is not None
                and (row.last_used_at is None or now - row.last_used_at > API_KEY_TOUCH_INTERVAL)
            ):
                await conn.execute(update(_API_KEY).where(_API_KEY.c.id == row.id).values(last_used_at=now))
                await conn.commit()
        if not valid or row is None:
            self._cache.put(key, None)
            raise Unauthenticated("API key revoked or unknown")
        principal = Principal(
            PrincipalKind.API_KEY,
            api_key_id=row.id,
            grants={row.organization_id: parse_permissions(row.permissions)},
        )
        self._cache.put(key, principal)
        return principal
