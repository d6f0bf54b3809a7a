"""API keys: credentials for an organisation's integrations (billing exports, CPO platforms).

A key reads `cnk_<public id>_<secret>`. The public id is random hex (never "_", so the
authenticator can split at the first underscore) and finds the row; the secret is 256 bits
from the OS's CSPRNG of which only the SHA-256 is stored, so the key is shown once, at
creation. A key holds a non-empty subset of its creator's permissions in that organisation,
never `members:manage` or `apikeys:manage`: an integration never lets people in or mints more
credentials, and an API key principal is refused those actions outright as well.
Revocation applies at once on this replica and within the authenticator's cache TTL elsewhere.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit.service import Actor
from api.auth.authenticator import API_KEY_PREFIX, Authenticator
from api.auth.opaque import new_token
from api.auth.roles import Permission, format_permissions
from api.orgs import repository
from api.orgs.access import audited, require
from api.orgs.service import clean_name
from schema.account_models import ApiKey
from schema.errors import Forbidden, InvalidInput, NotFound
from schema.timeutil import utcnow

# 64 random bits in hex: an index key, not a secret; hex keeps it free of "_".
PUBLIC_ID_BYTES = 8
NEVER_FOR_API_KEYS = frozenset({Permission.MEMBERS_MANAGE, Permission.API_KEYS_MANAGE})
# Live keys per organisation: one per integration is the norm; more suggests keys are being
# minted per request, which defeats revoking them.
MAX_ACTIVE_API_KEYS = 100
MAX_KEY_NAME = 120  # ApiKey.name


@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    key: ApiKey
    secret: str  # the full `cnk_…` credential; not stored anywhere


def _permissions(requested: Iterable[Permission], held: frozenset[Permission]) -> frozenset[Permission]:
    perms = frozenset(requested)
    if not perms:
        raise InvalidInput("give the key at least one permission")
    if perms & NEVER_FOR_API_KEYS:
        raise InvalidInput("API keys cannot be given members:manage or apikeys:manage")
    if not perms <= held:
        missing = ", ".join(sorted(p.value for p in perms - held))
        raise Forbidden(f"you can only give permissions you hold in this organization (not {missing})")
    return perms


async def create_api_key(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    *,
    organization_id: int,
    name: str,
    permissions: Iterable[Permission],
    expires_at: datetime | None,
) -> CreatedApiKey:
    principal = actor.principal
    async with audited(db, actor, "api_key.create", target_type="api_key", name=name[:MAX_KEY_NAME]) as note:
        async with db() as s:
            await require(
                s,
                principal,
                organization_id,
                Permission.API_KEYS_MANAGE,
                note,
                people_only="create API keys",
            )
            held = principal.everywhere | principal.grants.get(organization_id, frozenset())
            perms = _permissions(permissions, held)
            note.detail["permissions"] = format_permissions(perms)
            now = utcnow()
            if expires_at is not None:
                expires_at = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
                if expires_at <= now:
                    raise InvalidInput("expiresAt must be in the future")
                note.detail["expires_at"] = expires_at.isoformat()
            await repository.lock_organization(s, organization_id)
            if await repository.active_api_key_count(s, organization_id, now) >= MAX_ACTIVE_API_KEYS:
                raise InvalidInput(f"at most {MAX_ACTIVE_API_KEYS} active API keys; revoke unused ones")
            public_id = secrets.token_hex(PUBLIC_ID_BYTES)
            secret, secret_hash = new_token()
            key = ApiKey(
                organization_id=organization_id,
                name=clean_name(name, limit=MAX_KEY_NAME),
                public_id=public_id,
                secret_hash=secret_hash,
                permissions=format_permissions(perms),
                created_by_user_id=principal.user_id,
                expires_at=expires_at,
            )
            s.add(key)
            await s.flush()
            note.target_id = key.id
            note.detail["public_id"] = public_id
            await s.commit()
    return CreatedApiKey(key, f"{API_KEY_PREFIX}{public_id}_{secret}")


async def revoke_api_key(
    db: async_sessionmaker[AsyncSession], authenticator: Authenticator, actor: Actor, *, api_key_id: int
) -> ApiKey:
    """The key stops working at once; revoking twice is harmless."""
    principal = actor.principal
    async with audited(db, actor, "api_key.revoke", target_type="api_key", target_id=api_key_id) as note:
        async with db() as s:
            key = await repository.api_key(s, api_key_id)
            if key is None:
                raise NotFound("no such API key")
            await require(
                s,
                principal,
                key.organization_id,
                Permission.API_KEYS_MANAGE,
                note,
                people_only="manage API keys",
                not_found="no such API key",
            )
            note.detail["public_id"] = key.public_id
            if key.revoked_at is None:
                key.revoked_at = utcnow()
                s.add(key)
                await s.commit()
    authenticator.forget_api_key(api_key_id)
    return key
