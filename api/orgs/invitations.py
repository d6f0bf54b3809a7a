"""Inviting people into an organisation by email.

An invitation is a single-use link with a 256-bit token (only its SHA-256 is stored) that
expires after `INVITATION_TTL`. It is accepted by a signed-in person whose *verified* email is
the invited address, so a forwarded link cannot let someone else in. Inviting the same address
again revokes the earlier pending invitation (the latest mail is the one that works).

Accepting when already a member never lowers the role: the member keeps the higher-ranking of
their current and the invited role (roles are lowered only with changeMemberRole, under its
rules, including LAST_OWNER).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.accounts.addresses import normalize_email
from api.audit.service import Actor
from api.auth.authenticator import Authenticator
from api.auth.opaque import hash_token, new_token
from api.auth.roles import ROLE_RANK, Permission, Role
from api.notify.email import Email, Mailer
from api.orgs import repository
from api.orgs.access import acting_role, audited, require, within_reach
from api.orgs.errors import InvalidInvitationToken, InvitationEmailMismatch
from schema.account_models import Invitation, Membership
from schema.errors import Forbidden, InvalidInput, NotFound
from schema.timeutil import utcnow

INVITATION_TTL = timedelta(days=7)
# Open invitations per organisation: plenty for onboarding a team, and it caps the mail a
# compromised admin account can make ChargeNet send.
MAX_PENDING_INVITATIONS = 200
ACCEPT_PATH = "/accept-invitation"


INVALID_MESSAGE = "this invitation is invalid, used or expired"


def _pending(invitation: Invitation, now: datetime) -> bool:
    return invitation.accepted_at is None and invitation.revoked_at is None and invitation.expires_at > now


async def invite_member(
    db: async_sessionmaker[AsyncSession],
    mailer: Mailer,
    actor: Actor,
    *,
    app_url: str,
    organization_id: int,
    email: str,
    role: Role,
) -> Invitation:
    principal = actor.principal
    async with audited(db, actor, "invitation.create", target_type="invitation", role=role.value) as note:
        async with db() as s:
            org = await require(
                s, principal, organization_id, Permission.MEMBERS_MANAGE, note, people_only="invite members"
            )
            address = normalize_email(email)
            note.detail["email"] = address
            await repository.lock_organization(s, organization_id)
            within_reach(await acting_role(s, principal, organization_id), role)
            if await repository.member_by_email(s, organization_id, address) is not None:
                raise InvalidInput("already a member; change their role instead")
            now = utcnow()
            for earlier in await repository.pending_invitations_to(s, organization_id, address, now):
                earlier.revoked_at = now
                s.add(earlier)
            if await repository.pending_invitation_count(s, organization_id, now) >= MAX_PENDING_INVITATIONS:
                raise InvalidInput(f"at most {MAX_PENDING_INVITATIONS} open invitations; revoke some first")
            token, token_hash = new_token()
            invitation = Invitation(
                organization_id=organization_id,
                email=address,
                role=role.value,
                token_hash=token_hash,
                invited_by_user_id=principal.user_id,
                expires_at=now + INVITATION_TTL,
            )
            s.add(invitation)
            await s.flush()
            note.target_id = invitation.id
            await s.commit()
        await mailer.send(_invitation_email(org, invitation, token, app_url))
    return invitation


def _invitation_email(org: Row[Any], invitation: Invitation, token: str, app_url: str) -> Email:
    link = f"{app_url.rstrip('/')}{ACCEPT_PATH}?token={token}"
    body = (
        f"You have been invited to join {org.name} on ChargeNet as {invitation.role}.\n\n"
        f"Accept the invitation: {link}\n\n"
        f"Sign in (or sign up) with {invitation.email} to accept. The link works once and expires "
        f"on {invitation.expires_at:%Y-%m-%d %H:%M} UTC. If you did not expect it, ignore this email."
    )
    return Email(to=invitation.email, subject=f"Join {org.name} on ChargeNet", body=body, kind="invitation")


async def revoke_invitation(
    db: async_sessionmaker[AsyncSession], actor: Actor, *, invitation_id: int
) -> Invitation:
    """Revoking twice is harmless; an accepted invitation cannot be revoked (remove the member)."""
    principal = actor.principal
    async with audited(
        db, actor, "invitation.revoke", target_type="invitation", target_id=invitation_id
    ) as note:
        async with db() as s:
            invitation = await repository.invitation(s, invitation_id)
            if invitation is None:
                raise NotFound("no such invitation")
            await require(
                s,
                principal,
                invitation.organization_id,
                Permission.MEMBERS_MANAGE,
                note,
                people_only="manage members",
                not_found="no such invitation",
            )
            within_reach(await acting_role(s, principal, invitation.organization_id), Role(invitation.role))
            await repository.lock_organization(s, invitation.organization_id)
            await s.refresh(invitation)  # an accept may have finished while we waited
            if invitation.accepted_at is not None:
                raise InvalidInput("already accepted; remove the member instead")
            if invitation.revoked_at is None:
                invitation.revoked_at = utcnow()
                s.add(invitation)
                await s.commit()
    return invitation


async def accept_invitation(
    db: async_sessionmaker[AsyncSession], authenticator: Authenticator, actor: Actor, *, token: str
) -> Row[Any]:
    """Join the organisation; returns it as the new member sees it."""
    principal = actor.principal
    async with audited(db, actor, "invitation.accept", target_type="invitation") as note:
        if not principal.is_user or principal.user_id is None:
            raise Forbidden("a personal account is required")
        user_id = principal.user_id
        async with db() as s:
            invitation = await repository.invitation_by_token_hash(s, hash_token(token))
            if invitation is None:
                raise InvalidInvitationToken(INVALID_MESSAGE)
            org_id = invitation.organization_id
            # Lock first, then read its state again: a concurrent accept or revoke of the same
            # invitation has finished by now, and the same order (organisation, then
            # invitation) as inviting and revoking leaves no room for a deadlock.
            await repository.lock_organization(s, org_id)
            await s.refresh(invitation)
            now = utcnow()
            if not _pending(invitation, now):
                raise InvalidInvitationToken(INVALID_MESSAGE)
            note.target_id, note.organization_id = invitation.id, org_id
            user = await repository.active_user(s, user_id)
            if user is None or user.email_verified_at is None or user.email != invitation.email:
                raise InvitationEmailMismatch(
                    "this invitation was sent to another address; sign in with the verified "
                    "account of the invited email"
                )
            invited = Role(invitation.role)
            membership = await repository.membership(s, org_id, user_id)
            if membership is None:
                s.add(Membership(organization_id=org_id, user_id=user_id, role=invited.value))
            elif ROLE_RANK[invited] > ROLE_RANK[Role(membership.role)]:
                note.detail["previous_role"] = membership.role
                membership.role = invited.value
                s.add(membership)
            note.detail["role"] = invited.value
            invitation.accepted_at = now
            invitation.accepted_by_user_id = user_id
            s.add(invitation)
            await s.flush()
            row = await repository.organization_of_member(s, org_id, user_id)
            await s.commit()
    authenticator.forget_user(user_id)
    if row is None:
        raise NotFound("no such organization")
    return row
