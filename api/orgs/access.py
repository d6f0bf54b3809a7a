"""Who may act on an organisation, and the audit entry every attempt leaves.

The order of checks is part of the contract: an organisation the caller does not belong to is
NOT_FOUND (the same answer as an id that does not exist, so existence never leaks), and only
inside their own organisation does a missing permission read as FORBIDDEN.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit import service as audit
from api.audit.service import Actor
from api.auth.principal import Principal, PrincipalKind
from api.auth.roles import ROLE_RANK, Permission, Role
from api.orgs import repository
from schema.errors import ChargeNetError, Forbidden, NotFound

RESULT_OK = "OK"


@dataclass
class AuditNote:
    """What the audit entry of the current attempt will say; filled in as the service learns
    it (the organisation only once the caller has been shown to belong to it)."""

    action: str
    organization_id: int | None = None
    target_type: str | None = None
    target_id: int | str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@asynccontextmanager
async def audited(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    action: str,
    *,
    target_type: str | None = None,
    target_id: int | str | None = None,
    **detail: Any,
) -> AsyncIterator[AuditNote]:
    """Record the attempt after it ends: result OK, or the error code it was refused with."""
    note = AuditNote(action, target_type=target_type, target_id=target_id, detail=dict(detail))
    try:
        yield note
    except ChargeNetError as exc:
        await _record(db, actor, note, exc.code)
        raise
    except Exception:
        await _record(db, actor, note, "INTERNAL")
        raise
    await _record(db, actor, note, RESULT_OK)


async def _record(db: async_sessionmaker[AsyncSession], actor: Actor, note: AuditNote, result: str) -> None:
    await audit.record(
        db,
        audit.entry(
            actor,
            action=note.action,
            result=result,
            organization_id=note.organization_id,
            target_type=note.target_type,
            target_id=note.target_id,
            detail=note.detail or None,
        ),
    )


async def require(
    s: AsyncSession,
    principal: Principal,
    organization_id: int,
    permission: Permission | None = None,
    note: AuditNote | None = None,
    *,
    people_only: str | None = None,
    not_found: str = "no such organization",
) -> Row[Any]:
    """The organisation, if the caller belongs to it (else NOT_FOUND) and holds `permission`
    there (else FORBIDDEN). `people_only` names an action API keys may never take;
    `not_found` is the message for an object of that organisation looked up by its own id (it
    must read exactly like the one for an id that does not exist)."""
    org = await repository.organization(s, principal, organization_id)
    if org is None:
        if note is not None:
            note.detail.setdefault("organization_id", organization_id)
        raise NotFound(not_found)
    if note is not None:
        note.organization_id = organization_id
    if people_only is not None:
        refuse_api_keys(principal, people_only)
    if permission is not None and not principal.can(permission, organization_id):
        raise Forbidden(f"requires {permission.value}")
    return org


def refuse_api_keys(principal: Principal, what: str) -> None:
    """Integrations never manage people or credentials, whatever permissions they were given:
    a leaked key must not be able to mint more keys or let someone in."""
    if principal.kind is PrincipalKind.API_KEY:
        raise Forbidden(f"API keys cannot {what}")


async def acting_role(s: AsyncSession, principal: Principal, organization_id: int) -> Role:
    """The role the caller acts with here; platform administrators act as owners."""
    if Permission.MEMBERS_MANAGE in principal.everywhere:
        return Role.OWNER
    if principal.user_id is not None:
        m = await repository.membership(s, organization_id, principal.user_id)
        if m is not None and m.role in Role._value2member_map_:
            return Role(m.role)
    raise Forbidden("not a member of this organization")


def within_reach(actor_role: Role, role: Role) -> None:
    """Nobody grants (or touches a member holding) a role above their own; only owners grant,
    revoke or change the owner role."""
    if role is Role.OWNER and actor_role is not Role.OWNER:
        raise Forbidden("only owners grant or change the owner role")
    if ROLE_RANK[role] > ROLE_RANK[actor_role]:
        raise Forbidden(f"role {actor_role.value} cannot grant or change role {role.value}")
