"""Organisations, invitations, API keys and the audit log.

Lists of one organisation take its id: an organisation the caller does not belong to answers
NOT_FOUND, like one that does not exist; inside their own organisation a caller lacking the
permission a list needs gets FORBIDDEN.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.orgs import service
from api.orgs.types import (
    ApiKeyNode,
    AuditEntryNode,
    InvitationNode,
    OrganizationNode,
    connection,
    parse_account_id,
    parse_organization_id,
)
from api.pagination import Connection, clamp_first, decode_cursor, wants_total


@strawberry.type
class OrgsQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Organisations you belong to, with your role (all of them for platform administrators).",
    )
    async def organizations(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[OrganizationNode]:
        p = await service.page_organizations(
            info.context.db,
            info.context.principal,
            first=clamp_first(first),
            after=decode_cursor("org", after),
            count=wants_total(info),
        )
        return connection(OrganizationNode.from_row, p, "org")

    @strawberry.field(
        permission_classes=[IsAuthenticated], description="An organisation you belong to; null otherwise."
    )
    async def organization(self, info: Info, id: relay.GlobalID) -> OrganizationNode | None:
        nodes = await OrganizationNode.resolve_nodes(info=info, node_ids=[str(parse_organization_id(id))])
        return nodes[0]

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Invitations of an organisation, newest first (members:manage).",
    )
    async def invitations(
        self,
        info: Info,
        organization_id: relay.GlobalID,
        pending_only: bool = False,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[InvitationNode]:
        p = await service.page_invitations(
            info.context.db,
            info.context.principal,
            parse_organization_id(organization_id),
            pending_only=pending_only,
            first=clamp_first(first),
            after=decode_cursor("invitation", after),
            count=wants_total(info),
        )
        return connection(InvitationNode.from_row, p, "invitation")

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="API keys of an organisation, newest first, revoked ones included (apikeys:manage).",
    )
    async def api_keys(
        self, info: Info, organization_id: relay.GlobalID, first: int | None = None, after: str | None = None
    ) -> Connection[ApiKeyNode]:
        p = await service.page_api_keys(
            info.context.db,
            info.context.principal,
            parse_organization_id(organization_id),
            first=clamp_first(first),
            after=decode_cursor("apikey", after),
            count=wants_total(info),
        )
        return connection(ApiKeyNode.from_row, p, "apikey")

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="The audit log of an organisation, newest first (audit:read). Platform "
        "administrators may omit organizationId to read the whole deployment's log.",
    )
    async def audit_log(
        self,
        info: Info,
        organization_id: relay.GlobalID | None = None,
        first: int | None = None,
        after: str | None = None,
        action: str | None = None,
        actor_user_id: relay.GlobalID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Connection[AuditEntryNode]:
        p = await service.page_audit_log(
            info.context.db,
            info.context.principal,
            None if organization_id is None else parse_organization_id(organization_id),
            service.AuditFilter(
                action=action,
                actor_user_id=None if actor_user_id is None else parse_account_id(actor_user_id),
                since=since,
                until=until,
            ),
            first=clamp_first(first),
            after=decode_cursor("audit", after),
            count=wants_total(info),
        )
        return connection(AuditEntryNode.from_row, p, "audit")
