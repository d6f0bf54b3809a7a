"""Organisations and their members: creation, settings, roles, leaving, and the lists an
organisation's people read.

Rules every membership change keeps:
- nobody grants a role above their own (`ROLE_RANK`), nor changes or removes a member who
  outranks them; only owners grant, change or remove the owner role (platform administrators
  act as owners);
- an organisation always keeps at least one owner (LAST_OWNER);
- any member may leave (removeMember on themselves) unless they are its last owner;
- API keys never manage members.
Each change applies at once: the authenticator forgets the affected person's cached grants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit.service import Actor
from api.auth.authenticator import Authenticator
from api.auth.principal import Principal
from api.auth.roles import Permission, Role
from api.orgs import repository
from api.orgs.access import acting_role, audited, require, within_reach
from api.orgs.permissions import is_platform_admin
from api.orgs.repository import Page
from schema.account_models import ApiKey, AuditEntry, Invitation, Membership
from schema.errors import Forbidden, InvalidInput, LastOwner, NotFound
from schema.models import Organization
from schema.timeutil import utcnow

# A URL-safe handle: lower-case letters, digits and inner hyphens (fits Organization.slug).
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$")
# ISO 4217 alphabetic code.
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
MAX_ORG_NAME = 200  # Organization.name


def clean_name(value: str, *, limit: int, what: str = "name") -> str:
    text = " ".join(value.split())
    if not text or len(text) > limit:
        raise InvalidInput(f"{what} must be 1–{limit} characters")
    return text


def _currency(value: str) -> str:
    code = value.strip().upper()
    if not CURRENCY_RE.match(code):
        raise InvalidInput("currency must be an ISO 4217 code such as EUR")
    return code


# --- organisations ---


async def create_organization(
    db: async_sessionmaker[AsyncSession],
    authenticator: Authenticator,
    actor: Actor,
    *,
    name: str,
    slug: str,
    currency: str,
    owner_user_id: int | None,
) -> Row[Any]:
    """A new organisation with one owner: `owner_user_id`, or the calling person."""
    principal = actor.principal
    async with audited(db, actor, "organization.create", target_type="organization", slug=slug) as note:
        if not is_platform_admin(principal):  # the field's permission class says so too
            raise Forbidden("requires a platform administrator")
        name = clean_name(name, limit=MAX_ORG_NAME)
        if not SLUG_RE.match(slug):
            raise InvalidInput("slug must be 1–80 lower-case letters, digits or inner hyphens")
        owner = owner_user_id if owner_user_id is not None else principal.user_id
        if owner is None:
            raise InvalidInput("ownerUserId is required when no person is signed in")
        note.detail["owner_user_id"] = owner
        async with db() as s:
            if await repository.active_user(s, owner) is None:
                raise NotFound("no such user")
            if await repository.slug_taken(s, slug):
                raise InvalidInput("that slug is taken")
            org = Organization(name=name, slug=slug, currency=_currency(currency))
            s.add(org)
            await s.flush()
            s.add(Membership(organization_id=org.id or 0, user_id=owner, role=Role.OWNER.value))
            try:
                await s.commit()
            except IntegrityError:  # the same slug, created concurrently
                raise InvalidInput("that slug is taken") from None
        note.organization_id = note.target_id = org.id
    authenticator.forget_user(owner)
    return await _organization_row(db, principal, org.id or 0)


async def update_organization(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    *,
    organization_id: int,
    name: str | None,
    currency: str | None,
) -> Row[Any]:
    principal = actor.principal
    async with audited(
        db, actor, "organization.update", target_type="organization", target_id=organization_id
    ) as note:
        async with db() as s:
            await require(s, principal, organization_id, Permission.ORG_MANAGE, note)
            org = await repository.lock_organization(s, organization_id)
            if org is None:
                raise NotFound("no such organization")
            if name is not None:
                note.detail["name"] = [org.name, clean_name(name, limit=MAX_ORG_NAME)]
                org.name = note.detail["name"][1]
            if currency is not None:
                note.detail["currency"] = [org.currency, _currency(currency)]
                org.currency = note.detail["currency"][1]
            s.add(org)
            await s.commit()
    return await _organization_row(db, principal, organization_id)


async def _organization_row(
    db: async_sessionmaker[AsyncSession], principal: Principal, org_id: int
) -> Row[Any]:
    async with db() as s:
        row = await repository.organization(s, principal, org_id)
    if row is None:  # deleted in the meantime
        raise NotFound("no such organization")
    return row


# --- members ---


async def change_member_role(
    db: async_sessionmaker[AsyncSession],
    authenticator: Authenticator,
    actor: Actor,
    *,
    organization_id: int,
    user_id: int,
    role: Role,
) -> Row[Any]:
    principal = actor.principal
    async with audited(db, actor, "member.change_role", target_type="user", target_id=user_id) as note:
        note.detail["role"] = role.value
        async with db() as s:
            await require(
                s, principal, organization_id, Permission.MEMBERS_MANAGE, note, people_only="manage members"
            )
            await repository.lock_organization(s, organization_id)
            mine = await acting_role(s, principal, organization_id)
            m = await repository.membership(s, organization_id, user_id)
            if m is None:
                raise NotFound("no such member")
            current = Role(m.role)
            note.detail["previous_role"] = current.value
            within_reach(mine, current)
            within_reach(mine, role)
            if current is Role.OWNER and role is not Role.OWNER:
                await _keep_an_owner(s, organization_id)
            m.role = role.value
            s.add(m)
            await s.flush()
            row = await repository.member(s, organization_id, user_id)
            await s.commit()
    authenticator.forget_user(user_id)
    assert row is not None
    return row


async def remove_member(
    db: async_sessionmaker[AsyncSession],
    authenticator: Authenticator,
    actor: Actor,
    *,
    organization_id: int,
    user_id: int,
) -> None:
    """Remove someone, or leave (a member removing themselves needs no `members:manage`)."""
    principal = actor.principal
    leaving = principal.is_user and principal.user_id == user_id
    action = "member.leave" if leaving else "member.remove"
    async with audited(db, actor, action, target_type="user", target_id=user_id) as note:
        async with db() as s:
            await require(
                s,
                principal,
                organization_id,
                None if leaving else Permission.MEMBERS_MANAGE,
                note,
                people_only="manage members",
            )
            await repository.lock_organization(s, organization_id)
            m = await repository.membership(s, organization_id, user_id)
            if m is None:
                raise NotFound("no such member")
            current = Role(m.role)
            note.detail["role"] = current.value
            if not leaving:
                within_reach(await acting_role(s, principal, organization_id), current)
            if current is Role.OWNER:
                await _keep_an_owner(s, organization_id)
            await s.delete(m)
            await s.commit()
    authenticator.forget_user(user_id)


async def _keep_an_owner(s: AsyncSession, organization_id: int) -> None:
    """Called before an owner stops being one (under the organisation's lock)."""
    if await repository.owner_count(s, organization_id) <= 1:
        raise LastOwner("the organization's last owner cannot leave or be demoted; make another owner first")


# --- lists ---


async def page_organizations(
    db: async_sessionmaker[AsyncSession], principal: Principal, *, first: int, after: int | None, count: bool
) -> Page:
    """Organisations the caller belongs to (all for platform administrators), by id."""
    async with db() as s:
        return await repository.page(
            s,
            repository.readable_organizations(principal),
            col(Organization.id),
            first=first,
            after=after,
            newest_first=False,
            count=count,
        )


async def page_members(
    db: async_sessionmaker[AsyncSession],
    principal: Principal,
    organization_id: int,
    *,
    first: int,
    after: int | None,
    count: bool,
) -> Page:
    """Members in the order they joined; empty unless the caller holds `network:read` there."""
    stmt = repository.readable_members(principal).where(col(Membership.organization_id) == organization_id)
    async with db() as s:
        return await repository.page(
            s, stmt, col(Membership.id), first=first, after=after, newest_first=False, count=count
        )


async def page_invitations(
    db: async_sessionmaker[AsyncSession],
    principal: Principal,
    organization_id: int,
    *,
    pending_only: bool,
    first: int,
    after: int | None,
    count: bool,
) -> Page:
    """Newest first; requires `members:manage` (invitations show email addresses)."""
    async with db() as s:
        await require(s, principal, organization_id, Permission.MEMBERS_MANAGE)
        stmt = repository.readable_invitations(principal).where(
            col(Invitation.organization_id) == organization_id
        )
        if pending_only:
            stmt = repository.pending_invitations(stmt, utcnow())
        return await repository.page(
            s, stmt, col(Invitation.id), first=first, after=after, newest_first=True, count=count
        )


async def page_api_keys(
    db: async_sessionmaker[AsyncSession],
    principal: Principal,
    organization_id: int,
    *,
    first: int,
    after: int | None,
    count: bool,
) -> Page:
    """Newest first, revoked and expired ones included; requires `apikeys:manage`."""
    async with db() as s:
        await require(s, principal, organization_id, Permission.API_KEYS_MANAGE)
        stmt = repository.readable_api_keys(principal).where(col(ApiKey.organization_id) == organization_id)
        return await repository.page(
            s, stmt, col(ApiKey.id), first=first, after=after, newest_first=True, count=count
        )


@dataclass(frozen=True, slots=True)
class AuditFilter:
    action: str | None = None
    actor_user_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


async def page_audit_log(
    db: async_sessionmaker[AsyncSession],
    principal: Principal,
    organization_id: int | None,
    f: AuditFilter,
    *,
    first: int,
    after: int | None,
    count: bool,
) -> Page:
    """Newest first; requires `audit:read` in the organisation. Without an organisation, the
    whole deployment's log (platform administrators only)."""
    async with db() as s:
        stmt = repository.readable_audit_entries(principal)
        if organization_id is None:
            if Permission.AUDIT_READ not in principal.everywhere:
                raise Forbidden("organizationId is required")
        else:
            await require(s, principal, organization_id, Permission.AUDIT_READ)
            stmt = stmt.where(col(AuditEntry.organization_id) == organization_id)
        if f.action is not None:
            stmt = stmt.where(col(AuditEntry.action) == f.action)
        if f.actor_user_id is not None:
            stmt = stmt.where(col(AuditEntry.actor_user_id) == f.actor_user_id)
        if f.since is not None:
            stmt = stmt.where(col(AuditEntry.created_at) >= f.since)
        if f.until is not None:
            stmt = stmt.where(col(AuditEntry.created_at) < f.until)
        return await repository.page(
            s, stmt, col(AuditEntry.id), first=first, after=after, newest_first=True, count=count
        )
