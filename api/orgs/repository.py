"""Every query about organisations, their members, invitations, API keys and audit trail,
scoped to the caller.

An organisation is visible to its members and its API keys (and to platform administrators);
what is visible inside it depends on the permission each list needs: `network:read` for the
member list, `members:manage` for invitations, `apikeys:manage` for keys, `audit:read` for the
audit log. A statement built here cannot return rows of an organisation the caller is not
allowed to read, whatever id it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import ColumnElement, Row, Select, false, func, literal, null
from sqlalchemy import select as select_columns
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.auth.principal import Principal
from api.auth.roles import Permission
from schema.account_models import ApiKey, AuditEntry, Invitation, Membership, UserAccount
from schema.models import Organization

# Any SELECT, whatever its columns.
Stmt: TypeAlias = Select[*tuple[Any, ...]]

# --- scoping ---


def visible_organization_ids(principal: Principal) -> frozenset[int] | None:
    """Organisations the caller belongs to (a person's memberships, an API key's own
    organisation); None means every organisation (platform administrators)."""
    if principal.everywhere:
        return None
    return frozenset(principal.grants)


def _within(stmt: Stmt, org_col: Any, orgs: frozenset[int] | None) -> Stmt:
    if orgs is None:
        return stmt
    if not orgs:
        return stmt.where(false())
    return stmt.where(org_col.in_(orgs))


def _organizations(user_id: int | None) -> Stmt:
    """Organisation rows plus `my_role`, the role of `user_id` there (NULL if not a member)."""
    my_role: ColumnElement[Any] = null()
    if user_id is not None:
        my_role = (
            select(Membership.role)
            .where(
                col(Membership.organization_id) == col(Organization.id),
                col(Membership.user_id) == user_id,
            )
            .scalar_subquery()
        )
    return select_columns(
        col(Organization.id),
        col(Organization.name),
        col(Organization.slug),
        col(Organization.currency),
        col(Organization.created_at),
        my_role.label("my_role"),
    )


def readable_organizations(principal: Principal) -> Stmt:
    return _within(
        _organizations(principal.user_id), col(Organization.id), visible_organization_ids(principal)
    )


def _members() -> Stmt:
    return select_columns(
        col(Membership.id),
        col(Membership.organization_id),
        col(Membership.user_id),
        col(Membership.role),
        col(Membership.created_at),
        col(UserAccount.display_name),
        col(UserAccount.email),
    ).join(UserAccount, col(UserAccount.id) == col(Membership.user_id))


def readable_members(principal: Principal) -> Stmt:
    return _within(
        _members(), col(Membership.organization_id), principal.organizations_with(Permission.NETWORK_READ)
    )


def readable_invitations(principal: Principal) -> Stmt:
    return _within(
        select(Invitation),
        col(Invitation.organization_id),
        principal.organizations_with(Permission.MEMBERS_MANAGE),
    )


def readable_api_keys(principal: Principal) -> Stmt:
    return _within(
        select(ApiKey), col(ApiKey.organization_id), principal.organizations_with(Permission.API_KEYS_MANAGE)
    )


def readable_audit_entries(principal: Principal) -> Stmt:
    """Entries of organisations where the caller holds `audit:read`; entries without an
    organisation (refused probes of unknown ids) only for platform administrators."""
    return _within(
        select(AuditEntry),
        col(AuditEntry.organization_id),
        principal.organizations_with(Permission.AUDIT_READ),
    )


# --- reading ---


async def rows(session: AsyncSession, stmt: Stmt) -> list[Row[Any]]:
    """Plain rows under the columns' names (resolvers only read them)."""
    conn = await session.connection()
    return list((await conn.execute(stmt)).all())


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row[Any]]
    has_next: bool
    total: int | None


async def page(
    session: AsyncSession,
    stmt: Stmt,
    key: Any,
    *,
    first: int,
    after: int | None,
    newest_first: bool,
    count: bool,
) -> Page:
    """Keyset pagination on the integer column `key`."""
    total = None
    if count:
        total = int((await session.exec(select(func.count()).select_from(stmt.subquery()))).one())
    if after is not None:
        stmt = stmt.where(key < after if newest_first else key > after)
    found = await rows(session, stmt.order_by(key.desc() if newest_first else key).limit(first + 1))
    return Page(found[:first], len(found) > first, total)


async def by_ids(session: AsyncSession, stmt: Stmt, key: Any, ids: Sequence[int]) -> dict[int, Row[Any]]:
    return {r.id: r for r in await rows(session, stmt.where(key.in_(list(ids))))}


async def organization(session: AsyncSession, principal: Principal, organization_id: int) -> Row[Any] | None:
    found = await rows(
        session, readable_organizations(principal).where(col(Organization.id) == organization_id)
    )
    return found[0] if found else None


async def organization_of_member(
    session: AsyncSession, organization_id: int, user_id: int
) -> Row[Any] | None:
    """The organisation as `user_id` sees it, for the moment they joined (their cached grants
    do not list it yet)."""
    found = await rows(session, _organizations(user_id).where(col(Organization.id) == organization_id))
    return found[0] if found else None


async def member(session: AsyncSession, organization_id: int, user_id: int) -> Row[Any] | None:
    """One member with their name and email, whoever asks (callers authorise first)."""
    stmt = _members().where(
        col(Membership.organization_id) == organization_id, col(Membership.user_id) == user_id
    )
    found = await rows(session, stmt)
    return found[0] if found else None


# --- rows the services change (callers have authorised the principal) ---


async def lock_organization(session: AsyncSession, organization_id: int) -> Organization | None:
    """The organisation, locked for this transaction on PostgreSQL: membership changes of one
    organisation are serialised, so two owners demoting each other at once cannot leave it
    without an owner. (SQLite allows one writer at a time anyway.)"""
    stmt = select(Organization).where(col(Organization.id) == organization_id).with_for_update()
    return (await session.exec(stmt)).first()


async def membership(session: AsyncSession, organization_id: int, user_id: int) -> Membership | None:
    stmt = select(Membership).where(
        col(Membership.organization_id) == organization_id, col(Membership.user_id) == user_id
    )
    return (await session.exec(stmt)).first()


async def owner_count(session: AsyncSession, organization_id: int) -> int:
    stmt = select(func.count()).where(
        col(Membership.organization_id) == organization_id, col(Membership.role) == "owner"
    )
    return int((await session.exec(stmt)).one())


async def slug_taken(session: AsyncSession, slug: str) -> bool:
    stmt = select(literal(1)).where(col(Organization.slug) == slug)
    return (await session.exec(stmt)).first() is not None


async def active_user(session: AsyncSession, user_id: int) -> UserAccount | None:
    stmt = select(UserAccount).where(col(UserAccount.id) == user_id, col(UserAccount.deleted_at).is_(None))
    return (await session.exec(stmt)).first()


async def member_by_email(session: AsyncSession, organization_id: int, email: str) -> Membership | None:
    stmt = (
        select(Membership)
        .join(UserAccount, col(UserAccount.id) == col(Membership.user_id))
        .where(col(Membership.organization_id) == organization_id, col(UserAccount.email) == email)
    )
    return (await session.exec(stmt)).first()


def _pending(now: datetime) -> list[ColumnElement[bool]]:
    return [
        col(Invitation.accepted_at).is_(None),
        col(Invitation.revoked_at).is_(None),
        col(Invitation.expires_at) > now,
    ]


def pending_invitations(stmt: Stmt, now: datetime) -> Stmt:
    return stmt.where(*_pending(now))


async def pending_invitations_to(
    session: AsyncSession, organization_id: int, email: str, now: datetime
) -> Sequence[Invitation]:
    stmt = select(Invitation).where(
        col(Invitation.organization_id) == organization_id, col(Invitation.email) == email, *_pending(now)
    )
    return (await session.exec(stmt)).all()


async def pending_invitation_count(session: AsyncSession, organization_id: int, now: datetime) -> int:
    stmt = select(func.count()).where(col(Invitation.organization_id) == organization_id, *_pending(now))
    return int((await session.exec(stmt)).one())


async def invitation(session: AsyncSession, invitation_id: int) -> Invitation | None:
    return await session.get(Invitation, invitation_id)


async def invitation_by_token_hash(session: AsyncSession, token_hash: str) -> Invitation | None:
    stmt = select(Invitation).where(col(Invitation.token_hash) == token_hash)
    return (await session.exec(stmt)).first()


async def api_key(session: AsyncSession, api_key_id: int) -> ApiKey | None:
    return await session.get(ApiKey, api_key_id)


async def active_api_key_count(session: AsyncSession, organization_id: int, now: datetime) -> int:
    stmt = select(func.count()).where(
        col(ApiKey.organization_id) == organization_id,
        col(ApiKey.revoked_at).is_(None),
        (col(ApiKey.expires_at).is_(None)) | (col(ApiKey.expires_at) > now),
    )
    return int((await session.exec(stmt)).one())
