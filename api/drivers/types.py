"""GraphQL types of the signed-in person's own data.

Every node here resolves through the caller-scoped repository: `node(id:)` with another
person's vehicle, card or app token answers null, like an id that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Self

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.roles import Role
from api.drivers import repository as repo
from api.drivers.validation import parse_connector_types
from api.enums import ConnectorTypeGQL, RoleGQL
from api.network.types import int_ids
from schema.account_models import ExternalIdentity, Membership, UserAccount, Vehicle
from schema.models import IdToken, Organization
from schema.timeutil import utcnow


@strawberry.enum(name="IdTokenStatus", description="Whether a charger accepts the card or token.")
class TokenStatus(StrEnum):
    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"

    @classmethod
    def of(cls, token: IdToken) -> TokenStatus:
        if token.expires_at is not None and token.expires_at <= utcnow():
            return cls.EXPIRED
        try:
            return cls(token.status)
        except ValueError:
            return cls.INVALID


@strawberry.type(name="Vehicle", description="A car of the signed-in driver.")
class VehicleNode(relay.Node):
    id: relay.NodeID[int]
    make: str
    model: str
    battery_kwh: float | None = strawberry.field(description="Usable battery capacity.")
    connector_types: list[ConnectorTypeGQL] = strawberry.field(description="Plugs the vehicle accepts.")
    nickname: str | None
    created_at: datetime

    @classmethod
    def from_model(cls, m: Vehicle) -> VehicleNode:
        return cls(
            id=m.id or 0,
            make=m.make,
            model=m.model,
            battery_kwh=None if m.battery_wh is None else m.battery_wh / 1000,
            connector_types=parse_connector_types(m.connector_types),
            nickname=m.nickname,
            created_at=m.created_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[VehicleNode | None]:
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            found = await repo.vehicles_by_ids(s, info.context.principal, ids)
        return [cls.from_model(found[i]) if i in found else None for i in ids]


@strawberry.type
class _OwnedToken(relay.Node):
    """Fields shared by cards and app tokens (both are OCPP id tokens of the driver)."""

    id: relay.NodeID[int]
    token: str = strawberry.field(description="The idTag a charger sends for it.")
    label: str | None
    status: TokenStatus
    created_at: datetime
    _app: ClassVar[bool]

    @classmethod
    def from_model(cls, m: IdToken) -> Self:
        return cls(
            id=m.id or 0, token=m.token, label=m.label, status=TokenStatus.of(m), created_at=m.created_at
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        ids = int_ids(node_ids)
        async with info.context.db() as s:
            found = await repo.tokens_by_ids(s, info.context.principal, ids, app=cls._app)
        return [cls.from_model(found[i]) if i in found else None for i in ids]


@strawberry.type(name="Card", description="An RFID card linked to the signed-in driver.")
class CardNode(_OwnedToken):
    _app = False


@strawberry.type(
    name="AppToken",
    description="A token ChargeNet issued to the driver's app for starting sessions remotely.",
)
class AppTokenNode(_OwnedToken):
    _app = True


@strawberry.type(description="A Google or Apple account the person can sign in with.")
class LinkedIdentity:
    provider: str = strawberry.field(description='"google" or "apple".')
    email: str | None
    linked_at: datetime

    @classmethod
    def from_model(cls, m: ExternalIdentity) -> LinkedIdentity:
        return cls(provider=m.provider, email=m.email, linked_at=m.created_at)


@strawberry.type(description="The person's role in an organisation (managed by its admins).")
class AccountMembership:
    organization_id: strawberry.ID
    organization_name: str
    role: RoleGQL

    @classmethod
    def from_models(cls, m: Membership, org: Organization) -> AccountMembership:
        return cls(
            organization_id=strawberry.ID(str(relay.GlobalID("Organization", str(org.id)))),
            organization_name=org.name,
            role=Role(m.role),
        )


@strawberry.type(name="Account", description="The signed-in person's own account.")
class AccountNode(relay.Node):
    id: relay.NodeID[int]
    email: str | None
    email_verified: bool
    display_name: str | None
    phone: str | None = strawberry.field(description="E.164, e.g. +4915123456789.")
    locale: str = strawberry.field(description='BCP 47 language tag, e.g. "en" or "de-DE".')
    billing_address: str | None = strawberry.field(description="Printed on membership invoices.")
    created_at: datetime
    has_password: bool = strawberry.field(
        description="False for accounts that only sign in with Google or Apple."
    )

    @classmethod
    def from_model(cls, m: UserAccount) -> AccountNode:
        return cls(
            id=m.id or 0,
            email=m.email,
            email_verified=m.email_verified_at is not None,
            display_name=m.display_name,
            phone=m.phone,
            locale=m.locale,
            billing_address=m.billing_address,
            created_at=m.created_at,
            has_password=m.password_hash is not None,
        )

    @strawberry.field(description="Google or Apple accounts linked for signing in.")
    async def linked_identities(self, info: Info) -> list[LinkedIdentity]:
        async with info.context.db() as s:
            rows = await repo.identities(s, info.context.principal)
        return [LinkedIdentity.from_model(r) for r in rows]

    @strawberry.field(description="Organisations the person works for; read-only here.")
    async def memberships(self, info: Info) -> list[AccountMembership]:
        async with info.context.db() as s:
            rows = await repo.memberships(s, info.context.principal)
        return [AccountMembership.from_models(m, org) for m, org in rows]

    @strawberry.field
    async def vehicles(self, info: Info) -> list[VehicleNode]:
        async with info.context.db() as s:
            rows = await repo.vehicles(s, info.context.principal)
        return [VehicleNode.from_model(r) for r in rows]

    @strawberry.field
    async def cards(self, info: Info) -> list[CardNode]:
        async with info.context.db() as s:
            rows = await repo.tokens(s, info.context.principal, app=False)
        return [CardNode.from_model(r) for r in rows]

    @strawberry.field
    async def app_tokens(self, info: Info) -> list[AppTokenNode]:
        async with info.context.db() as s:
            rows = await repo.tokens(s, info.context.principal, app=True)
        return [AppTokenNode.from_model(r) for r in rows]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[AccountNode | None]:
        """Only the caller's own account resolves."""
        async with info.context.db() as s:
            user = await repo.account(s, info.context.principal)
        return [cls.from_model(user) if user is not None and str(user.id) == i else None for i in node_ids]
