"""The seller's details on billing documents (billing:manage)."""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.invoicing import seller
from api.invoicing.types import BillingDetails
from api.orgs.types import parse_organization_id


@strawberry.input(description="Omitted fields stay as they are; an empty string clears one.")
class BillingDetailsInput:
    legal_name: str | None = None
    address: str | None = strawberry.field(default=None, description="Lines separated by newlines.")
    vat_id: str | None = None
    email: str | None = None


@strawberry.type
class InvoicingMutation:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Set what receipts and invoices show as the seller (billing:manage); documents "
        "already issued keep what they showed.",
    )
    async def update_billing_details(
        self, info: Info, organization_id: relay.GlobalID, input: BillingDetailsInput
    ) -> BillingDetails:
        org = await seller.update_billing_details(
            info.context.db,
            info.context.actor,
            organization_id=parse_organization_id(organization_id),
            change=seller.BillingDetailsChange(
                legal_name=input.legal_name, address=input.address, vat_id=input.vat_id, email=input.email
            ),
        )
        return BillingDetails.from_model(org)
