"""GraphQL types of organisations, members, invitations, API keys and the audit log.

Every node type resolves global ids through a statement scoped to the caller, so `node(id:)`
never returns another organisation's objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import strawberry
from sqlalchemy import Row
from sqlmodel import col
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import HasOnObject
from api.auth.roles import Permission, Role, parse_permissions
from api.enums import PermissionGQL, RoleGQL
from api.network.types import int_ids, parse_global_id
from api.orgs import repository, service
from api.pagination import Connection, build_connection, clamp_first, decode_cursor, wants_total
from schema.account_models import ApiKey, AuditEntry, Invitation, Membership
from schema.models import Organization
from schema.timeutil import utcnow

N = TypeVar("N")
# People are `Account` nodes (the signed-in person's own account type): member and actor ids
# use that type, so a client can match them against `me { id }`.
ACCOUNT_NODE = "Account"


def parse_account_id(value: relay.GlobalID) -> int:
    return parse_global_id(value, ACCOUNT_NODE)


def parse_organization_id(value: relay.GlobalID) -> int:
    return parse_global_id(value, "Organization")


def user_global_id(pk: int | None) -> relay.GlobalID | None:
    return None if pk is None else relay.GlobalID(ACCOUNT_NODE, str(pk))


async def _resolve(
    info: Info,
    node_ids: Iterable[str],
    readable: Callable[[Any], repository.Stmt],
    key: Any,
    build: Callable[[Any], N],
) -> list[N | None]:
    ids = int_ids(node_ids)
    async with info.context.db() as s:
        found = await repository.by_ids(s, readable(info.context.principal), key, ids)
    return [build(found[i]) if i in found else None for i in ids]


@strawberry.type(name="Member", description="A person's membership of an organization.")
class MemberNode(relay.Node):
    id: relay.NodeID[int]
    role: RoleGQL
    display_name: str | None
    joined_at: datetime
    organization_id: strawberry.Private[int]
    _user_pk: strawberry.Private[int]
    _email: strawberry.Private[str | None]

    @classmethod
    def from_row(cls, r: Row[Any]) -> MemberNode:
        return cls(
            id=r.id,
            role=Role(r.role),
            display_name=r.display_name,
            joined_at=r.created_at,
            organization_id=r.organization_id,
            _user_pk=r.user_id,
            _email=r.email,
        )

    @strawberry.field
    def user_id(self) -> relay.GlobalID:
        return relay.GlobalID(ACCOUNT_NODE, str(self._user_pk))

    @strawberry.field(
        permission_classes=[HasOnObject(Permission.MEMBERS_MANAGE)],
        description="Only for those holding members:manage in the organization.",
    )
    def email(self) -> str | None:
        return self._email

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[MemberNode | None]:
        return await _resolve(info, node_ids, repository.readable_members, col(Membership.id), cls.from_row)


@strawberry.type(name="Organization", description="A charging network operator (a tenant of ChargeNet).")
class OrganizationNode(relay.Node):
    id: relay.NodeID[int]
    name: str
    slug: str
    currency: str = strawberry.field(description="ISO 4217 code prices and invoices use.")
    created_at: datetime
    my_role: RoleGQL | None = strawberry.field(
        description="Your role here; null for platform administrators and API keys."
    )

    @property
    def organization_id(self) -> int:
        return self.id

    @classmethod
    def from_row(cls, r: Row[Any]) -> OrganizationNode:
        return cls(
            id=r.id,
            name=r.name,
            slug=r.slug,
            currency=r.currency,
            created_at=r.created_at,
            my_role=Role(r.my_role) if r.my_role in Role._value2member_map_ else None,
        )

    @strawberry.field(
        permission_classes=[HasOnObject(Permission.NETWORK_READ)],
        description="Colleagues in the order they joined: names and roles for anyone holding "
        "network:read here (every role does); email addresses need members:manage.",
    )
    async def members(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[MemberNode] | None:
        p = await service.page_members(
            info.context.db,
            info.context.principal,
            self.id,
            first=clamp_first(first),
            after=decode_cursor("member", after),
            count=wants_total(info),
        )
        return connection(MemberNode.from_row, p, "member")

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[OrganizationNode | None]:
        return await _resolve(
            info, node_ids, repository.readable_organizations, col(Organization.id), cls.from_row
        )


@strawberry.enum(name="InvitationStatus")
class InvitationStatus(StrEnum):
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"


@strawberry.type(name="Invitation", description="An emailed, single-use invitation to join an organization.")
class InvitationNode(relay.Node):
    id: relay.NodeID[int]
    email: str
    role: RoleGQL
    status: InvitationStatus
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None
    invited_by_user_id: relay.GlobalID | None
    accepted_by_user_id: relay.GlobalID | None

    @classmethod
    def from_row(cls, r: Invitation | Row[Any]) -> InvitationNode:
        if r.accepted_at is not None:
            status = InvitationStatus.ACCEPTED
        elif r.revoked_at is not None:
            status = InvitationStatus.REVOKED
        elif r.expires_at <= utcnow():
            status = InvitationStatus.EXPIRED
        else:
            status = InvitationStatus.PENDING
        return cls(
            id=r.id or 0,
            email=r.email,
            role=Role(r.role),
            status=status,
            created_at=r.created_at,
            expires_at=r.expires_at,
            accepted_at=r.accepted_at,
            revoked_at=r.revoked_at,
            invited_by_user_id=user_global_id(r.invited_by_user_id),
            accepted_by_user_id=user_global_id(r.accepted_by_user_id),
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[InvitationNode | None]:
        return await _resolve(
            info, node_ids, repository.readable_invitations, col(Invitation.id), cls.from_row
        )


@strawberry.type(name="ApiKey", description="An integration's credential. The secret is shown only once.")
class ApiKeyNode(relay.Node):
    id: relay.NodeID[int]
    name: str
    prefix: str = strawberry.field(description="`cnk_<public id>`: how the key starts, to recognise it.")
    permissions: list[PermissionGQL]
    created_at: datetime
    created_by_user_id: relay.GlobalID | None
    last_used_at: datetime | None = strawberry.field(
        description="When the key last authenticated a request (updated at most once a minute)."
    )
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, r: ApiKey | Row[Any]) -> ApiKeyNode:
        return cls(
            id=r.id or 0,
            name=r.name,
            prefix=f"cnk_{r.public_id}",
            permissions=sorted(parse_permissions(r.permissions)),
            created_at=r.created_at,
            created_by_user_id=user_global_id(r.created_by_user_id),
            last_used_at=r.last_used_at,
            expires_at=r.expires_at,
            revoked_at=r.revoked_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ApiKeyNode | None]:
        return await _resolve(info, node_ids, repository.readable_api_keys, col(ApiKey.id), cls.from_row)


@strawberry.type(description="The API key and its secret, which is never shown again.")
class ApiKeyCreated:
    api_key: ApiKeyNode
    secret: str = strawberry.field(description="`cnk_<public id>_<secret>`: store it now.")


@strawberry.type(description="Who acted: a person, an API key or the platform.")
class AuditActor:
    kind: str = strawberry.field(description="user, api_key, platform or system.")
    label: str = strawberry.field(description="Stable even after the account or key is gone.")
    user_id: relay.GlobalID | None
    api_key_id: relay.GlobalID | None

    @classmethod
    def from_row(cls, r: Any) -> AuditActor:
        """From any row with the actor_kind/_label/_user_id/_api_key_id columns."""
        return cls(
            kind=r.actor_kind,
            label=r.actor_label,
            user_id=user_global_id(r.actor_user_id),
            api_key_id=None
            if r.actor_api_key_id is None
            else relay.GlobalID("ApiKey", str(r.actor_api_key_id)),
        )


@strawberry.type(name="AuditEntry", description="Who did what, when, from where, with what result.")
class AuditEntryNode(relay.Node):
    id: relay.NodeID[int]
    actor: AuditActor
    action: str = strawberry.field(description="e.g. member.change_role, station.remote_start.")
    target_type: str | None
    target_id: str | None
    ip_address: str | None
    result: str = strawberry.field(description="OK, a command outcome, or the error code of a refusal.")
    detail: str | None = strawberry.field(description="A JSON object with the specifics.")
    created_at: datetime

    @classmethod
    def from_row(cls, r: AuditEntry | Row[Any]) -> AuditEntryNode:
        return cls(
            id=r.id or 0,
            actor=AuditActor.from_row(r),
            action=r.action,
            target_type=r.target_type,
            target_id=r.target_id,
            ip_address=r.ip_address,
            result=r.result,
            detail=r.detail,
            created_at=r.created_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[AuditEntryNode | None]:
        return await _resolve(
            info, node_ids, repository.readable_audit_entries, col(AuditEntry.id), cls.from_row
        )


def connection(nodes_from: Callable[[Any], N], p: repository.Page, kind: str) -> Connection[Any]:
    """A page of rows as a relay connection; cursors are the rows' ids."""
    return build_connection(
        [nodes_from(r) for r in p.rows],
        kind=kind,
        keys=[r.id for r in p.rows],
        has_next=p.has_next,
        total=p.total,
    )
