"""The signed-in driver's profile, vehicles, cards and app tokens."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsUser
from api.drivers import service
from api.drivers.types import AccountNode, AppTokenNode, CardNode, VehicleNode
from api.drivers.validation import UNSET
from api.enums import ConnectorTypeGQL
from api.network.types import parse_global_id


def _given(value: Any) -> Any:
    """Strawberry's "not sent" marker as the service's: an omitted field keeps its value."""
    return UNSET if value is strawberry.UNSET else value


@strawberry.input(
    description="Omitted fields keep their value; null clears displayName, phone and billingAddress."
)
class UpdateProfileInput:
    display_name: str | None = strawberry.UNSET
    phone: str | None = strawberry.field(
        default=strawberry.UNSET, description="International format, e.g. +49 151 23456789."
    )
    locale: str | None = strawberry.field(
        default=strawberry.UNSET, description='BCP 47 language tag, e.g. "en" or "de-DE".'
    )
    billing_address: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="Printed on the driver's membership invoices; lines separated by newlines.",
    )


@strawberry.input
class AddVehicleInput:
    make: str
    model: str
    battery_kwh: float | None = None
    connector_types: list[ConnectorTypeGQL] = strawberry.field(default_factory=list)
    nickname: str | None = None


@strawberry.input(description="Omitted fields keep their value; null clears the optional ones.")
class UpdateVehicleInput:
    make: str | None = strawberry.UNSET
    model: str | None = strawberry.UNSET
    battery_kwh: float | None = strawberry.UNSET
    connector_types: list[ConnectorTypeGQL] | None = strawberry.UNSET
    nickname: str | None = strawberry.UNSET


@strawberry.input
class LinkCardInput:
    token: str = strawberry.field(
        description="The card number as printed or read (separators are ignored); at most 20 characters."
    )
    label: str | None = None


@strawberry.input
class DeleteAccountInput:
    password: str | None = strawberry.field(
        default=None, description="Required when the account has a password."
    )


@strawberry.type
class DriverMutation:
    @strawberry.mutation(permission_classes=[IsUser], description="Errors: INVALID_INPUT.")
    async def update_profile(self, info: Info, input: UpdateProfileInput) -> AccountNode:
        user = await service.update_profile(
            info.context.db,
            info.context.actor,
            display_name=_given(input.display_name),
            phone=_given(input.phone),
            locale=_given(input.locale),
            billing_address=_given(input.billing_address),
        )
        return AccountNode.from_model(user)

    @strawberry.mutation(permission_classes=[IsUser], description="Errors: INVALID_INPUT, LIMIT_REACHED.")
    async def add_vehicle(self, info: Info, input: AddVehicleInput) -> VehicleNode:
        vehicle = await service.add_vehicle(
            info.context.db,
            info.context.actor,
            make=input.make,
            model=input.model,
            battery_kwh=input.battery_kwh,
            connector_types=input.connector_types,
            nickname=input.nickname,
        )
        return VehicleNode.from_model(vehicle)

    @strawberry.mutation(permission_classes=[IsUser], description="Errors: NOT_FOUND, INVALID_INPUT.")
    async def update_vehicle(self, info: Info, id: relay.GlobalID, input: UpdateVehicleInput) -> VehicleNode:
        vehicle = await service.update_vehicle(
            info.context.db,
            info.context.actor,
            parse_global_id(id, "Vehicle"),
            make=_given(input.make),
            model=_given(input.model),
            battery_kwh=_given(input.battery_kwh),
            connector_types=_given(input.connector_types),
            nickname=_given(input.nickname),
        )
        return VehicleNode.from_model(vehicle)

    @strawberry.mutation(
        permission_classes=[IsUser], description="Returns the removed vehicle's id. Errors: NOT_FOUND."
    )
    async def remove_vehicle(self, info: Info, id: relay.GlobalID) -> relay.GlobalID:
        await service.remove_vehicle(info.context.db, info.context.actor, parse_global_id(id, "Vehicle"))
        return id

    @strawberry.mutation(
        permission_classes=[IsUser],
        description="Link an RFID card. Errors: CARD_UNAVAILABLE (held by another account or "
        "an organisation, or blocked), INVALID_INPUT, LIMIT_REACHED, RATE_LIMITED.",
    )
    async def link_card(self, info: Info, input: LinkCardInput) -> CardNode:
        card = await service.link_card(
            info.context.db,
            info.context.auth.limiter,
            info.context.actor,
            token=input.token,
            label=input.label,
        )
        return CardNode.from_model(card)

    @strawberry.mutation(
        permission_classes=[IsUser],
        description="Unlink a card and block it, so a lost card cannot charge. Returns its id. "
        "Errors: NOT_FOUND.",
    )
    async def unlink_card(self, info: Info, id: relay.GlobalID) -> relay.GlobalID:
        await service.unlink_card(info.context.db, info.context.actor, parse_global_id(id, "Card"))
        return id

    @strawberry.mutation(
        permission_classes=[IsUser],
        description="A new token for starting sessions from the app (startCharging without idTag). "
        "Errors: LIMIT_REACHED.",
    )
    async def create_app_token(self, info: Info, label: str | None = None) -> AppTokenNode:
        token = await service.create_app_token(info.context.db, info.context.actor, label=label)
        return AppTokenNode.from_model(token)

    @strawberry.mutation(
        permission_classes=[IsUser],
        description="Block an app token for good. Returns its id. Errors: NOT_FOUND.",
    )
    async def revoke_app_token(self, info: Info, id: relay.GlobalID) -> relay.GlobalID:
        await service.revoke_app_token(info.context.db, info.context.actor, parse_global_id(id, "AppToken"))
        return id

    @strawberry.mutation(
        permission_classes=[IsUser],
        description="Erase the account's personal data and sign out everywhere. Charging "
        "sessions are kept, anonymised, for the operators' accounts. Irreversible. Errors: "
        "INVALID_INPUT (password missing), INVALID_CREDENTIALS, LAST_OWNER, RATE_LIMITED.",
    )
    async def delete_account(self, info: Info, input: DeleteAccountInput) -> bool:
        ctx = info.context
        await service.delete_account(
            ctx.db, ctx.auth.authenticator, ctx.auth.limiter, ctx.actor, password=input.password
        )
        return True
