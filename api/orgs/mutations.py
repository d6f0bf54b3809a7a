"""Organisations, members, invitations and API keys. Every attempt, refused ones included,
leaves an entry in the organisation's audit log."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated, IsUser
from api.enums import PermissionGQL, RoleGQL
from api.network.types import parse_global_id
from api.orgs import api_keys, invitations, service
from api.orgs.permissions import IsPlatformAdmin
from api.orgs.types import (
    ApiKeyCreated,
    ApiKeyNode,
    InvitationNode,
    MemberNode,
    OrganizationNode,
    parse_account_id,
    parse_organization_id,
)


@strawberry.type
class OrgsMutation:
    @strawberry.mutation(
        permission_classes=[IsPlatformAdmin],
        description="A new organisation owned by ownerUserId, or by you (platform administrators).",
    )
    async def create_organization(
        self,
        info: Info,
        name: str,
        slug: str,
        currency: str = "EUR",
        owner_user_id: relay.GlobalID | None = None,
    ) -> OrganizationNode:
        ctx = info.context
        row = await service.create_organization(
            ctx.db,
            ctx.auth.authenticator,
            ctx.actor,
            name=name,
            slug=slug,
            currency=currency,
            owner_user_id=None if owner_user_id is None else parse_account_id(owner_user_id),
        )
        return OrganizationNode.from_row(row)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Rename or change currency (org:manage)."
    )
    async def update_organization(
        self, info: Info, id: relay.GlobalID, name: str | None = None, currency: str | None = None
    ) -> OrganizationNode:
        ctx = info.context
        row = await service.update_organization(
            ctx.db, ctx.actor, organization_id=parse_organization_id(id), name=name, currency=currency
        )
        return OrganizationNode.from_row(row)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Change a member's role (members:manage; never above your own role; owners "
        "only by owners; the last owner stays one).",
    )
    async def change_member_role(
        self, info: Info, organization_id: relay.GlobalID, user_id: relay.GlobalID, role: RoleGQL
    ) -> MemberNode:
        ctx = info.context
        row = await service.change_member_role(
            ctx.db,
            ctx.auth.authenticator,
            ctx.actor,
            organization_id=parse_organization_id(organization_id),
            user_id=parse_account_id(user_id),
            role=role,
        )
        return MemberNode.from_row(row)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Remove a member (members:manage), or leave with your own user id.",
    )
    async def remove_member(
        self, info: Info, organization_id: relay.GlobalID, user_id: relay.GlobalID
    ) -> bool:
        ctx = info.context
        await service.remove_member(
            ctx.db,
            ctx.auth.authenticator,
            ctx.actor,
            organization_id=parse_organization_id(organization_id),
            user_id=parse_account_id(user_id),
        )
        return True

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Email a single-use invitation, valid 7 days (members:manage).",
    )
    async def invite_member(
        self, info: Info, organization_id: relay.GlobalID, email: str, role: RoleGQL
    ) -> InvitationNode:
        ctx = info.context
        invitation = await invitations.invite_member(
            ctx.db,
            ctx.auth.mailer,
            ctx.actor,
            app_url=ctx.settings.app_url,
            organization_id=parse_organization_id(organization_id),
            email=email,
            role=role,
        )
        return InvitationNode.from_row(invitation)

    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Revoke a pending invitation.")
    async def revoke_invitation(self, info: Info, id: relay.GlobalID) -> InvitationNode:
        ctx = info.context
        invitation = await invitations.revoke_invitation(
            ctx.db, ctx.actor, invitation_id=parse_global_id(id, "Invitation")
        )
        return InvitationNode.from_row(invitation)

    @strawberry.mutation(
        permission_classes=[IsUser],
        description="Join with the token from an invitation email; your verified email must be the "
        "invited one.",
    )
    async def accept_invitation(self, info: Info, token: str) -> OrganizationNode:
        ctx = info.context
        row = await invitations.accept_invitation(ctx.db, ctx.auth.authenticator, ctx.actor, token=token)
        return OrganizationNode.from_row(row)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="A key for an integration with some of your permissions here (apikeys:manage); "
        "the secret is returned only now.",
    )
    async def create_api_key(
        self,
        info: Info,
        organization_id: relay.GlobalID,
        name: str,
        permissions: list[PermissionGQL],
        expires_at: datetime | None = None,
    ) -> ApiKeyCreated:
        ctx = info.context
        created = await api_keys.create_api_key(
            ctx.db,
            ctx.actor,
            organization_id=parse_organization_id(organization_id),
            name=name,
            permissions=permissions,
            expires_at=expires_at,
        )
        return ApiKeyCreated(api_key=ApiKeyNode.from_row(created.key), secret=created.secret)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="The key stops working at once (apikeys:manage)."
    )
    async def revoke_api_key(self, info: Info, id: relay.GlobalID) -> ApiKeyNode:
        ctx = info.context
        key = await api_keys.revoke_api_key(
            ctx.db, ctx.auth.authenticator, ctx.actor, api_key_id=parse_global_id(id, "ApiKey")
        )
        return ApiKeyNode.from_row(key)
