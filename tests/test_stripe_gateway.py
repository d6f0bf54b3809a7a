"""The Stripe boundary: the real `stripe` SDK, through StripeGateway, against a local server
that speaks Stripe's wire format (tests/stripe_server.py).

Scenarios: a driver's customer and saved cards; a session's hold, increment, capture of less
than held and partial refund; a declined card; 3-D Secure off and on session; Stripe failing
(500, lost answers, timeouts, unreachable) without ever charging twice; plans for memberships;
and the payments service recording all of it on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.audit.service import SYSTEM_ACTOR
from api.billing import payments
from api.billing.payment_types import AuthenticationRequired, Held, HoldRequest, IntentStatus, RefundReason
from api.billing.stripe_gateway import STRIPE_API_VERSION, DisabledGateway, StripeGateway, build_gateway
from schema.db import session_factory
from schema.errors import (
    BillingDisabled,
    InvalidInput,
    NotFound,
    PaymentDeclined,
    PaymentProviderError,
    PaymentProviderUnavailable,
)
from schema.settings import Settings
from tests.account_builders import make_user
from tests.builders import make_org
from tests.dbutil import fetch
from tests.stripe_payments import app_confirms_card, stripe_settings
from tests.stripe_server import API_KEY, StripeServer, running_stripe_server


@pytest.fixture
def stripe_server() -> Iterator[StripeServer]:
    with running_stripe_server() as server:
        yield server


@pytest.fixture
async def payments_gateway(stripe_server: StripeServer) -> AsyncIterator[StripeGateway]:
    gw = StripeGateway.from_settings(stripe_settings(stripe_server))
    yield gw
    await gw.aclose()


def hold(customer_id: str, *, session_id: int = 1, amount: int = 5_000, **kw: Any) -> HoldRequest:
    return HoldRequest(
        session_id=session_id,
        user_id=kw.pop("user_id", 7),
        organization_id=kw.pop("organization_id", 3),
        customer_id=customer_id,
        amount=amount,
        currency="EUR",
        **kw,
    )


def keys_of(server: StripeServer, endpoint: str) -> list[str | None]:
    return [r["key"] for r in server.requests if r["endpoint"] == endpoint]


class TestCustomersAndCards:
    async def test_a_driver_gets_one_customer_however_often_asked(
        self, payments_gateway: StripeGateway, stripe_server: StripeServer
    ) -> None:
        # when
        first = await payments_gateway.create_customer(user_id=7, email="d@example.com", name="Dee")
        again = await payments_gateway.create_customer(user_id=7, email="d@example.com", name="Dee")
        # then
        assert first == again
        customers = [o for o in stripe_server.objects.values() if o["object"] == "customer"]
        assert len(customers) == 1
        assert customers[0]["metadata"] == {"chargenet_user_id": "7"}
        assert keys_of(stripe_server, "customers.create") == ["test:user:7:customer"] * 2

    async def test_cards_are_saved_listed_made_default_and_removed(
        self, payments_gateway: StripeGateway, stripe_server: StripeServer
    ) -> None:
        # given
        customer = await payments_gateway.create_customer(user_id=7, email=None, name=None)
        setup = await payments_gateway.create_setup_intent(customer_id=customer, user_id=7, attempt="a1")
        assert setup.status == "requires_payment_method"
        assert setup.client_secret.startswith(f"{setup.setup_intent_id}_secret_")
        assert stripe_server.objects[setup.setup_intent_id]["usage"] == "off_session"
        visa = await app_confirms_card(stripe_server, setup.setup_intent_id, "pm_card_visa")
        second = await payments_gateway.create_setup_intent(customer_id=customer, user_id=7, attempt="a2")
        mastercard = await app_confirms_card(stripe_server, second.setup_intent_id, "pm_card_mastercard")
        # when
        cards = await payments_gateway.list_cards(customer)
        # then
        assert {(c.payment_method_id, c.brand, c.last4) for c in cards} == {
            (visa, "visa", "4242"),
            (mastercard, "mastercard", "4444"),
        }
        # when: the mastercard becomes the default, then the visa is removed
        assert await payments_gateway.default_card(customer) is None
        await payments_gateway.set_default_card(customer, mastercard)
        await payments_gateway.detach_card(visa)
        # then
        assert await payments_gateway.default_card(customer) == mastercard
        assert [c.payment_method_id for c in await payments_gateway.list_cards(customer)] == [mastercard]

    async def test_another_customers_card_cannot_become_the_default(
        self, payments_gateway: StripeGateway, stripe_server: StripeServer
    ) -> None:
        mine = await payments_gateway.create_customer(user_id=1, email=None, name=None)
        theirs = await payments_gateway.create_customer(user_id=2, email=None, name=None)
        setup = await payments_gateway.create_setup_intent(customer_id=theirs, user_id=2, attempt="x")
        their_card = await app_confirms_card(stripe_server, setup.setup_intent_id, "pm_card_visa")
        with pytest.raises(PaymentProviderError) as refused:
            await payments_gateway.set_default_card(mine, their_card)
        assert refused.value.provider_code == "resource_missing"


class TestSessionHold:
    async def test_hold_increment_capture_less_and_refund_part(
        self, payments_gateway: StripeGateway, stripe_server: StripeServer
    ) -> None:
        # given
        customer = await payments_gateway.create_customer(user_id=7, email=None, name=None)
        # when: the session starts
        outcome = await payments_gateway.place_hold(
            hold(customer, session_id=41, amount=5_000, payment_method_id="pm_card_visa")
        )
        # then: the amount is held, not charged
        assert isinstance(outcome, Held)
        intent = outcome.intent
        assert (intent.status, intent.amount_capturable, intent.amount_received) == (
            IntentStatus.REQUIRES_CAPTURE,
            5_000,
            0,
        )
        sent = next(r["params"] for r in stripe_server.requests if r["endpoint"] == "payment_intents.create")
        assert sent["capture_method"] == "manual"
        assert (sent["confirm"], sent["off_session"]) == ("true", "true")
        assert sent["metadata"] == {
            "chargenet_session_id": "41",
            "chargenet_user_id": "7",
            "chargenet_organization_id": "3",
        }
        # when: the cost nears the hold, then the session ends at less than held
        raised = await payments_gateway.increment_hold(
            session_id=41, payment_intent_id=intent.payment_intent_id, new_amount=8_000
        )
        captured = await payments_gateway.capture(
            session_id=41, payment_intent_id=intent.payment_intent_id, amount=6_150
        )
        refund = await payments_gateway.refund(
            payment_intent_id=intent.payment_intent_id,
            refund_reference="payment:1:refund:1",
            amount=1_000,
            reason=RefundReason.DUPLICATE,
        )
        # then
        assert raised.amount_capturable == 8_000
        assert (captured.status, captured.amount_received, captured.amount_capturable) == (
            IntentStatus.SUCCEEDED,
            6_150,
            0,
        )
        assert (refund.amount, refund.reason, refund.status, refund.charge_amount_refunded) == (
            1_000,
            "duplicate",
            "succeeded",
            1_000,
        )
        assert stripe_server.counts["authorizations"] == 1
        assert stripe_server.counts["captured_amount"] == 6_150
        assert stripe_server.counts["refunded_amount"] == 1_000
        pm = intent.payment_method_id
        assert [r["key"] for r in stripe_server.requests if r["key"]] == [
            "test:user:7:customer",
            "test:session:41:hold:pm_card_visa",
            "test:session:41:increment:8000",
            "test:session:41:capture:6150",
            "test:refund:payment:1:refund:1",
        ]
        assert pm is not None
        assert {r["version"] for r in stripe_server.requests} == {STRIPE_API_VERSION}

    async def test_a_declined_card_is_a_payment_declined_with_the_banks_reason(
        self, payments_gateway: StripeGateway, stripe_server: StripeServer
    ) -> None:
        customer = await payments_gateway.create_customer(user_id=7, email=None, name=None)
        with pytest.raises(PaymentDeclined) as declined:
            await payments_gateway.place_hold(
                hold(customer, payment_method_id="pm_card_chargeDeclinedInsufficientFunds")
            )
        assert declined.value.decline_code == "insufficient_funds"
        assert declined.value.extensions == {"code": "PAYMENT_DECLINED", "declineCode": "insufficient_funds"}
        assert declined.value.payment_intent_id in stripe_server.objects
        assert stripe_server.counts["authorizations"] == 0

    async def test_the_generic_decline_code_comes_through(self, payments_gateway: StripeGateway) -> None:
        customer = await payments_gateway.create_customer(user_id=7, email=None, name=None)
        with pytest.raises(PaymentDeclined) as declined:
            await payments_gateway.place_hold(hold(customer, payment_method_id="pm_card_chargeDeclined"))
        assert declined.value.decline_code == "generic_decline"

    async def test_off_session_authentication_returns_the_client_secret_for_the_app(
        self, payments_gateway: StripeGateway, stripe_server: StripeServer
    ) -> None:
        customer = await payments_gateway.create_customer(user_id=7, email=None, name=None)
        outcome = await payments_gateway.place_hold(
            hold(customer, payment_method_id="pm_card_authenticationRequired", off_session=True)
        )
        assert isinstance(outcome, AuthenticationRequired)
        stored = stripe_server.objects[outcome.intent.payment_intent_id]
        assert outcome.client_secret == stored["client_secret"]
        assert outcome.intent.failure_code == "authentication_required"

    async def test_on_session_authentication_then_capture(
        self, payments_gateway: StripeGateway, stripe_server: StripeServer
    ) -> None:
        # given: the driver is in the app and the bank asks for 3-D Secure
        customer = await payments_gateway.create_customer(user_id=7, email=None, name=None)
        outcome = await payments_gateway.place_hold(
            hold(customer, payment_method_id="pm_card_authenticationRequired", off_session=False)
        )
        assert isinstance(outcome, AuthenticationRequired)
        assert outcome.intent.status is IntentStatus.REQUIRES_ACTION
        # when: the driver authenticates in the app
        stripe_server.complete_authentication(outcome.intent.payment_intent_id)
        # then: the hold stands and can be captured
        intent = await payments_gateway.retrieve_intent(outcome.intent.payment_intent_id)
        assert intent.status is IntentStatus.REQUIRES_CAPTURE
        captured = await payments_gateway.capture(
            session_id=1, payment_intent_id=intent.payment_intent_id, amount=1_234
        )
        assert captured.amount_received == 1_234

    async def test_a_hold_is_released_not_captured_at_zero(
        self, payments_gateway: StripeGateway, stripe_server: StripeServer
    ) -> None:
        customer = await payments_gateway.create_customer(user_id=7, email=None, name=None)
        held = await payments_gateway.place_hold(hold(customer, payment_method_id="pm_card_visa"))
        pi = held.intent.payment_intent_id
        with pytest.raises(InvalidInput):
            await payments_gateway.capture(session_id=1, payment_intent_id=pi, amount=0)
        released = await payments_gateway.cancel_hold(session_id=1, payment_intent_id=pi)
        assert released.status is IntentStatus.CANCELED
        assert stripe_server.counts["captures"] == 0

    async def test_capturing_more_than_held_is_refused(self, payments_gateway: StripeGateway) -> None:
        customer = await payments_gateway.create_customer(user_id=7, email=None, name=None)
        held = await payments_gateway.place_hold(
            hold(customer, amount=1_000, payment_method_id="pm_card_visa")
        )
        with pytest.raises(PaymentProviderError) as refused:
            await payments_gateway.capture(
                session_id=1, payment_intent_id=held.intent.payment_intent_id, amount=1_001
            )
        assert refused.value.provider_code == "amount_too_large"

    async def test_the_default_card_is_held_when_none_is_named(
        self, payments_gateway: StripeGateway, stripe_server: StripeServer
    ) -> None:
        customer = await payments_gateway.create_customer(user_id=7, email=None, name=None)
        with pytest.raises(InvalidInput):
            await payments_gateway.place_hold(hold(customer))
        setup = await payments_gateway.create_setup_intent(customer_id=customer, user_id=7, attempt="a")
        card = await app_confirms_card(stripe_server, setup.setup_intent_id, "pm_card_visa")
        await payments_gateway.set_default_card(customer, card)
        outcome = await payments_gateway.place_hold(hold(customer))
        assert outcome.intent.payment_method_id == card


class TestRetriesNeverChargeTwice:
    async def test_a_capture_answered_500_is_retried_with_the_same_key_and_charged_once(
        self, payments_gateway: StripeGateway, stripe_server: StripeServer
    ) -> None:
        customer = await payments_gateway.create_customer(user_id=7, email=None, name=None)
        held = await payments_gateway.place_hold(hold(customer, payment_method_id="pm_card_visa"))
        stripe_server.fail_next("payment_intents.capture", 1, mode="error")
        # when
        captured = await payments_gateway.capture(
            session_id=1, payment_intent_id=held.intent.payment_intent_id, amount=2_500
        )
        # then
        assert captured.status is IntentStatus.SUCCEEDED
        assert stripe_server.calls["payment_intents.capture"] == 2
        assert keys_of(stripe_server, "payment_intents.capture") == ["test:session:1:capture:2500"] * 2
        assert stripe_server.counts["captures"] == 1

    async def test_a_lost_answer_is_replayed_not_charged_again(
        self, payments_gateway: StripeGateway, stripe_server: StripeServer
    ) -> None:
        # given: Stripe captures, but the answer never reaches ChargeNet
        customer = await payments_gateway.create_customer(user_id=7, email=None, name=None)
        held = await payments_gateway.place_hold(hold(customer, payment_method_id="pm_card_visa"))
        stripe_server.fail_next("payment_intents.capture", 1, mode="drop")
        # when
        captured = await payments_gateway.capture(
            session_id=1, payment_intent_id=held.intent.payment_intent_id, amount=2_500
        )
        # then
        assert captured.amount_received == 2_500
        assert stripe_server.calls["payment_intents.capture"] == 2
        assert stripe_server.counts["captures"] == 1
        assert stripe_server.counts["captured_amount"] == 2_500

    async def test_a_capture_that_fails_is_retried_later_and_charged_once(
        self, stripe_server: StripeServer
    ) -> None:
        # given: no SDK retries, so the failure reaches ChargeNet
        gw = StripeGateway.from_settings(stripe_settings(stripe_server, CHARGENET_STRIPE_MAX_RETRIES=0))
        try:
            customer = await gw.create_customer(user_id=7, email=None, name=None)
            held = await gw.place_hold(hold(customer, payment_method_id="pm_card_visa"))
            pi = held.intent.payment_intent_id
            stripe_server.fail_next("payment_intents.capture", 1, mode="drop")
            # when: the first attempt loses its answer, the retry (a later job round) repeats it
            with pytest.raises(PaymentProviderUnavailable):
                await gw.capture(session_id=1, payment_intent_id=pi, amount=3_000)
            first = await gw.capture(session_id=1, payment_intent_id=pi, amount=3_000)
            again = await gw.capture(session_id=1, payment_intent_id=pi, amount=3_000)
        finally:
            await gw.aclose()
        # then
        assert first == again
        assert first.amount_received == 3_000
        assert stripe_server.counts["captures"] == 1

    async def test_a_hold_that_times_out_is_provider_unavailable(self, stripe_server: StripeServer) -> None:
        gw = StripeGateway.from_settings(
            stripe_settings(stripe_server, CHARGENET_STRIPE_TIMEOUT=0.5, CHARGENET_STRIPE_MAX_RETRIES=1)
        )
        try:
            customer = await gw.create_customer(user_id=7, email=None, name=None)
            stripe_server.fail_next("payment_intents.create", 2, mode="hang", hang_s=10)
            started = time.monotonic()
            with pytest.raises(PaymentProviderUnavailable):
                await gw.place_hold(hold(customer, payment_method_id="pm_card_visa"))
            assert time.monotonic() - started < 5
        finally:
            await gw.aclose()
        assert stripe_server.calls["payment_intents.create"] == 2
        assert stripe_server.counts["authorizations"] == 0

    async def test_an_unreachable_stripe_is_provider_unavailable(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        settings = Settings(
            CHARGENET_STRIPE_API_KEY=API_KEY,
            CHARGENET_STRIPE_API_BASE=f"http://127.0.0.1:{port}",
            CHARGENET_STRIPE_MAX_RETRIES=0,
        )
        gw = StripeGateway.from_settings(settings)
        try:
            with pytest.raises(PaymentProviderUnavailable):
                await gw.create_customer(user_id=1, email=None, name=None)
        finally:
            await gw.aclose()

    async def test_the_same_key_with_other_parameters_is_refused(
        self, payments_gateway: StripeGateway
    ) -> None:
        customer = await payments_gateway.create_customer(user_id=7, email=None, name=None)
        await payments_gateway.place_hold(hold(customer, amount=1_000, payment_method_id="pm_card_visa"))
        with pytest.raises(PaymentProviderError) as refused:
            await payments_gateway.place_hold(hold(customer, amount=2_000, payment_method_id="pm_card_visa"))
        assert refused.value.provider_code == "idempotency_error"


class TestConfiguration:
    async def test_a_wrong_api_key_is_a_provider_error(self, stripe_server: StripeServer) -> None:
        gw = StripeGateway.from_settings(
            stripe_settings(stripe_server, CHARGENET_STRIPE_API_KEY="sk_test_wrong")
        )
        try:
            with pytest.raises(PaymentProviderError):
                await gw.create_customer(user_id=1, email=None, name=None)
        finally:
            await gw.aclose()

    async def test_without_a_key_billing_is_disabled_with_a_clear_error(self) -> None:
        gw = build_gateway(Settings())
        assert isinstance(gw, DisabledGateway)
        with pytest.raises(BillingDisabled) as disabled:
            await gw.create_customer(user_id=1, email=None, name=None)
        assert disabled.value.code == "BILLING_DISABLED"
        await gw.aclose()


class TestPlans:
    async def test_subscribe_change_plan_and_cancel_at_period_end(
        self, payments_gateway: StripeGateway, stripe_server: StripeServer
    ) -> None:
        basic = stripe_server.add_price(lookup_key="acme-basic", unit_amount=900)
        plus = stripe_server.add_price(lookup_key="acme-plus", unit_amount=1_900)
        customer = await payments_gateway.create_customer(user_id=7, email=None, name=None)
        # when
        found = await payments_gateway.price_by_lookup_key("acme-basic")
        missing = await payments_gateway.price_by_lookup_key("nope")
        sub = await payments_gateway.create_subscription(
            user_id=7, customer_id=customer, price_id=basic["id"], reference="m1"
        )
        upgraded = await payments_gateway.change_subscription_price(
            subscription_id=sub.subscription_id, price_id=plus["id"], reference="up1"
        )
        ending = await payments_gateway.cancel_subscription_at_period_end(subscription_id=sub.subscription_id)
        # then
        assert found is not None and (found.price_id, found.unit_amount, found.interval) == (
            basic["id"],
            900,
            "month",
        )
        assert missing is None
        assert sub.price_id == basic["id"] and sub.current_period_end is not None
        assert upgraded.price_id == plus["id"] and upgraded.item_id == sub.item_id
        assert ending.cancel_at_period_end is True
        assert [e["type"] for e in stripe_server.events if e["type"].startswith("customer.subscription")] == [
            "customer.subscription.created",
            "customer.subscription.updated",
            "customer.subscription.updated",
        ]


class TestPaymentsService:
    """The service records what the gateway did, on both databases."""

    async def test_a_sessions_hold_capture_and_refund_are_recorded(
        self, engine: AsyncEngine, payments_gateway: StripeGateway, stripe_server: StripeServer
    ) -> None:
        # given
        org = await make_org(engine)
        user = await make_user(engine, email="driver@example.com", display_name="Dee")
        db = session_factory(engine)
        async with db() as s:
            customer = await payments.ensure_customer(s, payments_gateway, user)
            assert await payments.ensure_customer(s, payments_gateway, user) == customer
            setup = await payments.start_card_setup(s, payments_gateway, user, attempt="first-card")
            await s.commit()
        card = await app_confirms_card(stripe_server, setup.setup_intent_id, "pm_card_visa")
        async with db() as s:
            await payments.set_default_card(s, payments_gateway, user, card)
            cards = await payments.list_cards(s, payments_gateway, user)
            await s.commit()
        assert [c.last4 for c in cards] == ["4242"]
        # when
        async with db() as s:
            outcome = await payments.hold_for_session(
                s,
                payments_gateway,
                hold(customer, session_id=9, user_id=user, organization_id=org, amount=4_000),
            )
            await s.commit()
        payment_id = (await fetch(engine, "SELECT id FROM payment"))[0]["id"]
        async with db() as s:
            await payments.raise_hold(s, payments_gateway, payment_id, new_amount=6_000)
            await payments.settle_session(s, payments_gateway, payment_id, amount=5_432)
            await payments.refund_payment(
                s, payments_gateway, payment_id, actor=SYSTEM_ACTOR, refund_reference="r1", amount=432
            )
            await s.commit()
        # then
        assert isinstance(outcome, Held)
        rows = await fetch(engine, "SELECT * FROM payment")
        assert len(rows) == 1
        row = rows[0]
        assert (row["status"], row["amount_held"], row["amount_captured"], row["amount_refunded"]) == (
            "succeeded",
            6_000,
            5_432,
            432,
        )
        assert keys_of(stripe_server, "payment_intents.capture") == ["test:session:9:capture:5432"]
        assert keys_of(stripe_server, "payment_intents.increment_authorization") == [
            "test:session:9:increment:6000"
        ]
        assert (
            row["session_id"],
            row["user_id"],
            row["organization_id"],
            row["payment_method_id"],
            row["currency"],
        ) == (
            9,
            user,
            org,
            card,
            "eur",
        )
        assert await fetch(
            engine, "SELECT user_id, customer_id, default_payment_method_id FROM stripe_customer"
        ) == [{"user_id": user, "customer_id": customer, "default_payment_method_id": card}]
        audit = await fetch(engine, "SELECT action, target_id FROM audit_entry WHERE action LIKE 'payment.%'")
        assert audit == [{"action": "payment.refund", "target_id": str(payment_id)}]
        assert len([o for o in stripe_server.objects.values() if o["object"] == "customer"]) == 1

    async def test_two_first_uses_at_once_make_one_customer(
        self, engine: AsyncEngine, payments_gateway: StripeGateway, stripe_server: StripeServer
    ) -> None:
        user = await make_user(engine, email="driver@example.com")
        db = session_factory(engine)

        async def first_use() -> str:
            async with db() as s:
                customer = await payments.ensure_customer(s, payments_gateway, user)
                await s.commit()
                return customer

        a, b = await asyncio.gather(first_use(), first_use())
        assert a == b
        assert await fetch(engine, "SELECT user_id, customer_id FROM stripe_customer") == [
            {"user_id": user, "customer_id": a}
        ]
        assert len([o for o in stripe_server.objects.values() if o["object"] == "customer"]) == 1

    async def test_a_session_that_cost_nothing_releases_its_hold(
        self, engine: AsyncEngine, payments_gateway: StripeGateway, stripe_server: StripeServer
    ) -> None:
        org = await make_org(engine)
        user = await make_user(engine, email="driver@example.com")
        async with session_factory(engine)() as s:
            customer = await payments.ensure_customer(s, payments_gateway, user)
            await payments.hold_for_session(
                s,
                payments_gateway,
                hold(
                    customer,
                    session_id=3,
                    user_id=user,
                    organization_id=org,
                    payment_method_id="pm_card_visa",
                ),
            )
            payment = (await payments.payments_of_user(s, user))[0]
            with pytest.raises(InvalidInput):
                await payments.settle_session(s, payments_gateway, payment.id or 0, amount=5_001)
            await payments.settle_session(s, payments_gateway, payment.id or 0, amount=0)
            await s.commit()
        assert await fetch(engine, "SELECT status, amount_captured FROM payment") == [
            {"status": "canceled", "amount_captured": 0}
        ]
        assert keys_of(stripe_server, "payment_intents.cancel") == ["test:session:3:cancel"]
        assert stripe_server.counts["captures"] == 0

    async def test_a_declined_hold_is_recorded_with_its_reason(
        self, engine: AsyncEngine, payments_gateway: StripeGateway
    ) -> None:
        org = await make_org(engine)
        user = await make_user(engine, email="driver@example.com")
        async with session_factory(engine)() as s:
            customer = await payments.ensure_customer(s, payments_gateway, user)
            with pytest.raises(PaymentDeclined):
                await payments.hold_for_session(
                    s,
                    payments_gateway,
                    hold(
                        customer,
                        user_id=user,
                        organization_id=org,
                        payment_method_id="pm_card_chargeDeclinedInsufficientFunds",
                    ),
                )
            await s.commit()
        rows = await fetch(engine, "SELECT status, failure_code, amount_captured FROM payment")
        assert rows == [
            {"status": "requires_payment_method", "failure_code": "insufficient_funds", "amount_captured": 0}
        ]

    async def test_a_card_of_another_driver_cannot_be_removed(
        self, engine: AsyncEngine, payments_gateway: StripeGateway, stripe_server: StripeServer
    ) -> None:
        me = await make_user(engine, email="me@example.com")
        other = await make_user(engine, email="other@example.com")
        db = session_factory(engine)
        async with db() as s:
            await payments.ensure_customer(s, payments_gateway, me)
            setup = await payments.start_card_setup(s, payments_gateway, other, attempt="a")
            await s.commit()
        their_card = await app_confirms_card(stripe_server, setup.setup_intent_id, "pm_card_visa")
        async with db() as s:
            with pytest.raises(NotFound):
                await payments.remove_card(s, payments_gateway, me, their_card)
        assert stripe_server.calls["payment_methods.detach"] == 0
