"""Payments in GraphQL: a driver's cards, payments and unpaid balance; an organisation's
payment settings and refunds (billing roles). Stripe work is in api.billing.payments."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from sqlmodel import col, select
from strawberry import relay
from strawberry.types import Info

from api.audit import service as audit
from api.auth.permissions import IsAuthenticated
from api.auth.roles import Permission
from api.billing import pay_as_you_go, payments
from api.billing.payment_types import Card, RefundReason
from api.network.types import parse_global_id
from api.orgs.types import parse_organization_id
from api.sessions.types import TransactionNode, transaction_node
from schema.charge_models import OrganizationBilling, SessionCharge
from schema.errors import Forbidden, InvalidInput, NotFound
from schema.payment_models import Payment
from schema.timeutil import utcnow

MAX_HOLD = 100_000  # €1,000: a hold larger than any session is a typo


@strawberry.type(description="A saved card (the number never reaches ChargeNet).")
class PaymentCard:
    id: str = strawberry.field(description="Stripe's payment method id.")
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None

    @classmethod
    def from_card(cls, c: Card) -> PaymentCard:
        return cls(
            id=c.payment_method_id, brand=c.brand, last4=c.last4, exp_month=c.exp_month, exp_year=c.exp_year
        )


@strawberry.type(description="Confirm it in the app with the Stripe SDK; the card is then saved.")
class CardSetup:
    setup_intent_id: str
    client_secret: str


@strawberry.type(name="Payment", description="A session's card payment: held, captured, refunded.")
class PaymentView:
    status: str = strawberry.field(description="Stripe's PaymentIntent status.")
    currency: str
    amount_held: int
    amount_captured: int
    amount_refunded: int
    failure_code: str | None
    created_at: datetime
    _transaction_id: strawberry.Private[int | None]

    @classmethod
    def from_row(cls, p: Payment) -> PaymentView:
        return cls(
            status=p.status,
            currency=p.currency.upper(),
            amount_held=p.amount_held,
            amount_captured=p.amount_captured,
            amount_refunded=p.amount_refunded,
            failure_code=p.failure_code,
            created_at=p.created_at,
            _transaction_id=p.transaction_id,
        )

    @strawberry.field
    async def transaction(self, info: Info) -> TransactionNode | None:
        return await transaction_node(info, self._transaction_id)


@strawberry.enum
class ProviderDownPolicy(Enum):
    ALLOW = "allow"
    REFUSE = "refuse"


@strawberry.enum
class OverHoldPolicy(Enum):
    INCREMENT = "increment"
    STOP = "stop"


@strawberry.type
class BillingSettings:
    payments_required: bool
    hold_amount: int
    provider_down_policy: ProviderDownPolicy
    over_hold_policy: OverHoldPolicy

    @classmethod
    def from_row(cls, b: OrganizationBilling | None) -> BillingSettings:
        b = b or OrganizationBilling(organization_id=0)
        return cls(
            payments_required=b.payments_required,
            hold_amount=b.hold_amount,
            provider_down_policy=ProviderDownPolicy(b.provider_down_policy),
            over_hold_policy=OverHoldPolicy(b.over_hold_policy),
        )


@strawberry.input
class BillingSettingsInput:
    organization_id: relay.GlobalID
    payments_required: bool
    hold_amount: int = 5_000
    provider_down_policy: ProviderDownPolicy = ProviderDownPolicy.ALLOW
    over_hold_policy: OverHoldPolicy = OverHoldPolicy.INCREMENT


@strawberry.enum
class RefundReasonGQL(Enum):
    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"


@strawberry.input
class RefundSessionInput:
    transaction_id: relay.GlobalID
    amount: int | None = strawberry.field(
        default=None, description="Minor units; all that is left by default."
    )
    reason: RefundReasonGQL = RefundReasonGQL.REQUESTED_BY_CUSTOMER


def _driver(info: Info) -> int:
    principal = info.context.principal
    if not principal.is_user:
        raise Forbidden("only a driver's own account has cards")
    return int(principal.user_id or 0)


async def _cards(info: Info, user_id: int) -> list[PaymentCard]:
    async with info.context.db() as s:
        cards = await payments.list_cards(s, info.context.payments, user_id)
        await s.commit()
    return [PaymentCard.from_card(c) for c in cards]


@strawberry.type
class PaymentsQuery:
    @strawberry.field(permission_classes=[IsAuthenticated], description="The caller's saved cards.")
    async def payment_methods(self, info: Info) -> list[PaymentCard]:
        return await _cards(info, _driver(info))

    @strawberry.field(
        permission_classes=[IsAuthenticated], description="The caller's card payments, newest first."
    )
    async def my_payments(self, info: Info) -> list[PaymentView]:
        async with info.context.db() as s:
            rows = await payments.payments_of_user(s, _driver(info))
        return [PaymentView.from_row(p) for p in rows]

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="What the caller owes for sessions whose payment failed (minor units); a start "
        "is refused while it is above zero.",
    )
    async def my_unpaid_balance(self, info: Info) -> int:
        async with info.context.db() as s:
            return await pay_as_you_go.unpaid_balance(s, _driver(info))

    @strawberry.field(permission_classes=[IsAuthenticated], description="Payment settings (billing:read).")
    async def billing_settings(self, info: Info, organization_id: relay.GlobalID) -> BillingSettings:
        org = parse_organization_id(organization_id)
        if not info.context.principal.can(Permission.BILLING_READ, org):
            raise NotFound("no such organisation")
        async with info.context.db() as s:
            return BillingSettings.from_row(await s.get(OrganizationBilling, org))


@strawberry.type
class PaymentsMutation:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Start saving a card: `attemptId` is the app's id for this attempt (a retry "
        "returns the same setup).",
    )
    async def add_payment_method(self, info: Info, attempt_id: str) -> CardSetup:
        if not 1 <= len(attempt_id) <= 64:
            raise InvalidInput("attemptId: 1–64 characters")
        user_id = _driver(info)
        async with info.context.db() as s:
            setup = await payments.start_card_setup(s, info.context.payments, user_id, attempt=attempt_id)
            await s.commit()
        return CardSetup(setup_intent_id=setup.setup_intent_id, client_secret=setup.client_secret)

    @strawberry.mutation(permission_classes=[IsAuthenticated], description="The card sessions are paid with.")
    async def set_default_payment_method(self, info: Info, payment_method_id: str) -> list[PaymentCard]:
        user_id = _driver(info)
        async with info.context.db() as s:
            await payments.set_default_card(s, info.context.payments, user_id, payment_method_id)
            await s.commit()
        return await _cards(info, user_id)

    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Forget a saved card.")
    async def remove_payment_method(self, info: Info, payment_method_id: str) -> list[PaymentCard]:
        user_id = _driver(info)
        async with info.context.db() as s:
            await payments.remove_card(s, info.context.payments, user_id, payment_method_id)
            await s.commit()
        return await _cards(info, user_id)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Try again to pay the caller's unpaid sessions with their default card; "
        "returns what is still owed.",
    )
    async def pay_unpaid_balance(self, info: Info) -> int:
        user_id = _driver(info)
        await pay_as_you_go.retry_unpaid(info.context.db, info.context.payments, user_id=user_id)
        async with info.context.db() as s:
            return await pay_as_you_go.unpaid_balance(s, user_id)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Payment settings (billing:manage)."
    )
    async def update_billing_settings(self, info: Info, input: BillingSettingsInput) -> BillingSettings:
        org = parse_organization_id(input.organization_id)
        principal = info.context.principal
        if not principal.can(Permission.BILLING_READ, org):
            raise NotFound("no such organisation")
        if not principal.can(Permission.BILLING_MANAGE, org):
            raise Forbidden("requires billing:manage at this organisation")
        if not 0 < input.hold_amount <= MAX_HOLD:
            raise InvalidInput(f"holdAmount is 1–{MAX_HOLD} minor units")
        async with info.context.db() as s:
            row = await s.get(OrganizationBilling, org) or OrganizationBilling(organization_id=org)
            row.payments_required = input.payments_required
            row.hold_amount = input.hold_amount
            row.provider_down_policy = input.provider_down_policy.value
            row.over_hold_policy = input.over_hold_policy.value
            row.updated_at = utcnow()
            s.add(row)
            s.add(
                _audit(
                    info,
                    "billing.settings",
                    org,
                    {"payments_required": row.payments_required, "hold": row.hold_amount},
                )
            )
            await s.commit()
            return BillingSettings.from_row(row)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Refund part or all of a session's card payment (billing:manage).",
    )
    async def refund_session(self, info: Info, input: RefundSessionInput) -> PaymentView:
        tx = parse_global_id(input.transaction_id, "Transaction")
        principal = info.context.principal
        async with info.context.db() as s:
            charge = (
                await s.exec(select(SessionCharge).where(col(SessionCharge.transaction_id) == tx))
            ).first()
            org = None if charge is None else charge.organization_id
            if charge is None or not principal.can(Permission.BILLING_READ, org):
                raise NotFound("no such paid session")
            if not principal.can(Permission.BILLING_MANAGE, org):
                raise Forbidden("requires billing:manage at this organisation")
            paid = [
                p
                for p in await payments.payments_of_transaction(s, tx)
                if p.amount_captured > p.amount_refunded
            ]
            if not paid:
                raise InvalidInput("nothing was paid by card for this session")
            payment = paid[0]
            await payments.refund_payment(
                s,
                info.context.payments,
                payment.id or 0,
                actor=info.context.actor,
                # the same request retried refunds once; a later one (after this one counted) anew
                refund_reference=f"refund:{payment.id}:{payment.amount_refunded}:{input.amount or 'rest'}",
                amount=input.amount,
                reason=RefundReason(input.reason.value),
            )
            await s.commit()
            return PaymentView.from_row(payment)


def _audit(info: Info, action: str, org: int, detail: dict[str, Any]) -> Any:
    return audit.entry(info.context.actor, action=action, result="OK", organization_id=org, detail=detail)
