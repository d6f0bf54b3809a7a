"""`POST /webhooks/stripe` on the real API server: events signed like Stripe signs them,
produced by the local Stripe-format server from real SDK calls, stored once in the inbox and
processed after the answer — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.applications import Starlette

from api.billing import inbox
from api.billing.inbox import HandlerRegistry, InboundEvent
from api.billing.jobs import INBOX_RETENTION, process_stripe_inbox, purge_stripe_inbox
from api.billing.payment_state import apply_intent, moves_forward
from api.billing.payment_types import Held, HoldRequest
from api.billing.stripe_gateway import StripeGateway
from api.billing.webhooks import WEBHOOK_PATH, stripe_webhook_route
from schema.db import create_engine, session_factory
from schema.payment_models import Payment, StripeCustomer
from schema.settings import Settings
from schema.timeutil import utcnow
from tests.account_builders import make_user
from tests.builders import make_org
from tests.conftest import ApiServerFactory, _QuietServer
from tests.dbutil import fetch, scalar
from tests.stripe_payments import app_confirms_card, stripe_settings
from tests.stripe_server import WEBHOOK_SECRET, StripeServer, running_stripe_server


@pytest.fixture
def stripe_server() -> Iterator[StripeServer]:
    with running_stripe_server() as server:
        yield server


@pytest.fixture
async def payments_gateway(stripe_server: StripeServer) -> AsyncIterator[StripeGateway]:
    gw = StripeGateway.from_settings(stripe_settings(stripe_server))
    yield gw
    await gw.aclose()


WAIT_S = 10.0


@pytest.fixture
async def webhook_url(api_server_factory: ApiServerFactory) -> str:
    server = await api_server_factory(CHARGENET_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    return server.base_url + WEBHOOK_PATH


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def processed(engine: AsyncEngine, event_id: str) -> bool:
    done = await scalar(engine, "SELECT processed_at FROM inbox_event WHERE external_id = :e", e=event_id)
    return done is not None


async def driver(engine: AsyncEngine, gateway: StripeGateway) -> tuple[int, int, str]:
    """An organisation, a driver, and the driver's Stripe customer (stored as ChargeNet does)."""
    org = await make_org(engine)
    user = await make_user(engine, email="driver@example.com")
    customer = await gateway.create_customer(user_id=user, email="driver@example.com", name=None)
    async with session_factory(engine)() as s:
        s.add(StripeCustomer(user_id=user, customer_id=customer))
        await s.commit()
    return org, user, customer


async def held_session(engine: AsyncEngine, gateway: StripeGateway) -> tuple[int, int, str]:
    """A hold placed through the gateway only: ChargeNet's own row is missing, as after a crash
    between the Stripe call and the commit. Returns (org, user, payment intent id)."""
    org, user, customer = await driver(engine, gateway)
    outcome = await gateway.place_hold(
        HoldRequest(
            session_id=5,
            user_id=user,
            organization_id=org,
            customer_id=customer,
            amount=4_000,
            currency="eur",
            payment_method_id="pm_card_visa",
        )
    )
    assert isinstance(outcome, Held)
    return org, user, outcome.intent.payment_intent_id


async def payment_row(engine: AsyncEngine) -> dict[str, Any]:
    rows = await fetch(engine, "SELECT * FROM payment")
    assert len(rows) == 1
    return rows[0]


class TestDelivery:
    async def test_a_signed_event_is_stored_once_and_processed(
        self,
        engine: AsyncEngine,
        webhook_url: str,
        stripe_server: StripeServer,
        payments_gateway: StripeGateway,
    ) -> None:
        # given
        org, user, pi = await held_session(engine, payments_gateway)
        event = stripe_server.events_of("payment_intent.amount_capturable_updated")[0]
        # when
        answer = await stripe_server.deliver(webhook_url, event)
        # then
        assert answer.status_code == 200
        assert answer.json() == {"received": True, "duplicate": False}
        await eventually(lambda: processed(engine, event["id"]))
        row = await payment_row(engine)
        assert (row["payment_intent_id"], row["user_id"], row["organization_id"], row["session_id"]) == (
            pi,
            user,
            org,
            5,
        )
        assert (row["status"], row["amount_held"], row["currency"]) == ("requires_capture", 4_000, "eur")
        stored = await fetch(
            engine, "SELECT source, event_type, outcome, attempts, last_error FROM inbox_event"
        )
        assert stored == [
            {
                "source": "stripe",
                "event_type": "payment_intent.amount_capturable_updated",
                "outcome": "handled",
                "attempts": 1,
                "last_error": None,
            }
        ]

    async def test_a_redelivered_event_is_not_stored_twice(
        self,
        engine: AsyncEngine,
        webhook_url: str,
        stripe_server: StripeServer,
        payments_gateway: StripeGateway,
    ) -> None:
        await held_session(engine, payments_gateway)
        event = stripe_server.events_of("payment_intent.amount_capturable_updated")[0]
        first = await stripe_server.deliver(webhook_url, event)
        await eventually(lambda: processed(engine, event["id"]))
        # when: Stripe delivers it again (it did not see our answer)
        again = await stripe_server.deliver(webhook_url, event)
        # then
        assert (first.status_code, again.status_code) == (200, 200)
        assert again.json() == {"received": True, "duplicate": True}
        assert await scalar(engine, "SELECT count(*) FROM inbox_event") == 1
        assert await scalar(engine, "SELECT attempts FROM inbox_event") == 1

    @pytest.mark.parametrize(
        "tamper",
        ["wrong secret", "changed body", "no signature", "garbage header"],
    )
    async def test_a_bad_signature_is_refused_and_nothing_stored(
        self, engine: AsyncEngine, webhook_url: str, stripe_server: StripeServer, tamper: str
    ) -> None:
        event = stripe_server.make_event(
            "payment_intent.succeeded", {"id": "pi_x", "object": "payment_intent"}
        )
        if tamper == "wrong secret":
            answer = await stripe_server.deliver(webhook_url, event, secret="whsec_not_ours")
        elif tamper == "changed body":
            header = stripe_server.sign('{"id": "evt_other"}')
            answer = await stripe_server.deliver(webhook_url, event, signature=header)
        elif tamper == "no signature":
            answer = await stripe_server.deliver(webhook_url, event, signature="")
        else:
            answer = await stripe_server.deliver(webhook_url, event, signature="t=abc,v1")
        assert answer.status_code == 400
        assert await scalar(engine, "SELECT count(*) FROM inbox_event") == 0

    @pytest.mark.parametrize("skew_s", [-600, 600])
    async def test_a_stale_or_future_timestamp_is_refused(
        self, engine: AsyncEngine, webhook_url: str, stripe_server: StripeServer, skew_s: int
    ) -> None:
        event = stripe_server.make_event(
            "payment_intent.succeeded", {"id": "pi_x", "object": "payment_intent"}
        )
        answer = await stripe_server.deliver(webhook_url, event, timestamp=int(time.time()) + skew_s)
        assert answer.status_code == 400
        assert await scalar(engine, "SELECT count(*) FROM inbox_event") == 0

    async def test_a_signed_body_that_is_not_an_event_is_refused(
        self, engine: AsyncEngine, webhook_url: str, stripe_server: StripeServer
    ) -> None:
        answer = await stripe_server.deliver(webhook_url, {"hello": "world"})
        assert answer.status_code == 400
        assert await scalar(engine, "SELECT count(*) FROM inbox_event") == 0

    async def test_without_a_secret_the_endpoint_refuses_everything(
        self, engine: AsyncEngine, api_server_factory: ApiServerFactory, stripe_server: StripeServer
    ) -> None:
        server = await api_server_factory()
        event = stripe_server.make_event(
            "payment_intent.succeeded", {"id": "pi_x", "object": "payment_intent"}
        )
        answer = await stripe_server.deliver(server.base_url + WEBHOOK_PATH, event)
        assert answer.status_code == 503
        assert await scalar(engine, "SELECT count(*) FROM inbox_event") == 0


class TestPaymentEvents:
    async def test_out_of_order_a_late_hold_event_never_undoes_a_capture(
        self,
        engine: AsyncEngine,
        webhook_url: str,
        stripe_server: StripeServer,
        payments_gateway: StripeGateway,
    ) -> None:
        # given: hold, then capture; Stripe sends succeeded first and requires_capture after it
        _, _, pi = await held_session(engine, payments_gateway)
        await payments_gateway.capture(session_id=5, payment_intent_id=pi, amount=3_210)
        held = stripe_server.events_of("payment_intent.amount_capturable_updated")[0]
        succeeded = stripe_server.events_of("payment_intent.succeeded")[0]
        succeeded["created"] = held["created"] + 1
        # when
        for event in (succeeded, held):
            assert (await stripe_server.deliver(webhook_url, event)).status_code == 200
            await eventually(lambda e=event: processed(engine, e["id"]))
        # then
        row = await payment_row(engine)
        assert (row["status"], row["amount_captured"]) == ("succeeded", 3_210)
        assert await fetch(engine, "SELECT outcome FROM inbox_event ORDER BY id") == [
            {"outcome": "handled"},
            {"outcome": "handled"},
        ]

    async def test_events_of_the_same_second_keep_the_furthest_status(
        self, engine: AsyncEngine, stripe_server: StripeServer, payments_gateway: StripeGateway
    ) -> None:
        _, _, pi = await held_session(engine, payments_gateway)
        await payments_gateway.capture(session_id=5, payment_intent_id=pi, amount=1_000)
        held = stripe_server.events_of("payment_intent.amount_capturable_updated")[0]
        succeeded = stripe_server.events_of("payment_intent.succeeded")[0]
        succeeded["created"] = held["created"]
        # stored newest-first, then processed in one round
        for event in (succeeded, held):
            await inbox.store(
                engine,
                source=inbox.STRIPE,
                external_id=event["id"],
                event_type=event["type"],
                payload=event,
                created=inbox.stripe_created(event),
            )
        assert await process_stripe_inbox(engine) == 2
        assert (await payment_row(engine))["status"] == "succeeded"

    async def test_a_failed_payment_records_the_decline(
        self,
        engine: AsyncEngine,
        webhook_url: str,
        stripe_server: StripeServer,
        payments_gateway: StripeGateway,
    ) -> None:
        org, user, customer = await driver(engine, payments_gateway)
        with pytest.raises(Exception):  # noqa: B017  (the decline itself is the gateway's test)
            await payments_gateway.place_hold(
                HoldRequest(
                    session_id=8,
                    user_id=user,
                    organization_id=org,
                    customer_id=customer,
                    amount=2_000,
                    currency="eur",
                    payment_method_id="pm_card_chargeDeclined",
                )
            )
        event = stripe_server.events_of("payment_intent.payment_failed")[0]
        await stripe_server.deliver(webhook_url, event)
        await eventually(lambda: processed(engine, event["id"]))
        row = await payment_row(engine)
        assert (row["status"], row["failure_code"]) == ("requires_payment_method", "generic_decline")
        assert row["failure_message"] == "Your card was declined."

    async def test_an_intent_chargenet_did_not_make_is_ignored(
        self, engine: AsyncEngine, webhook_url: str, stripe_server: StripeServer
    ) -> None:
        event = stripe_server.make_event(
            "payment_intent.succeeded",
            {"id": "pi_foreign", "object": "payment_intent", "status": "succeeded", "metadata": {}},
        )
        await stripe_server.deliver(webhook_url, event)
        await eventually(lambda: processed(engine, event["id"]))
        assert await scalar(engine, "SELECT outcome FROM inbox_event") == "ignored"
        assert await scalar(engine, "SELECT count(*) FROM payment") == 0


class TestCardsRefundsDisputes:
    async def test_a_succeeded_setup_saves_the_drivers_card(
        self,
        engine: AsyncEngine,
        webhook_url: str,
        stripe_server: StripeServer,
        payments_gateway: StripeGateway,
    ) -> None:
        _, user, customer = await driver(engine, payments_gateway)
        setup = await payments_gateway.create_setup_intent(customer_id=customer, user_id=user, attempt="a")
        card = await app_confirms_card(stripe_server, setup.setup_intent_id, "pm_card_visa")
        event = stripe_server.events_of("setup_intent.succeeded")[0]
        # when (twice: a redelivery under a new id must not duplicate the card either)
        await stripe_server.deliver(webhook_url, event)
        copy = {**event, "id": event["id"] + "_again"}
        await stripe_server.deliver(webhook_url, copy)
        await eventually(lambda: processed(engine, copy["id"]))
        # then
        assert await fetch(engine, "SELECT user_id, payment_method_id, detached_at FROM payment_method") == [
            {"user_id": user, "payment_method_id": card, "detached_at": None}
        ]

    async def test_refunds_and_disputes_are_recorded_on_the_payment_with_an_audit_entry(
        self,
        engine: AsyncEngine,
        webhook_url: str,
        stripe_server: StripeServer,
        payments_gateway: StripeGateway,
    ) -> None:
        # given: a captured session, partly refunded twice in Stripe's dashboard
        org, _, pi = await held_session(engine, payments_gateway)
        await payments_gateway.capture(session_id=5, payment_intent_id=pi, amount=3_000)
        await payments_gateway.refund(payment_intent_id=pi, refund_reference="d1", amount=500)
        await payments_gateway.refund(payment_intent_id=pi, refund_reference="d2", amount=700)
        first_refund, second_refund = stripe_server.events_of("charge.refunded")
        dispute = stripe_server.open_dispute(pi)
        # when: the intent's news, then the refunds out of order, one twice, then the dispute
        for event in (
            stripe_server.events_of("payment_intent.succeeded")[0],
            second_refund,
            first_refund,
            second_refund,
            dispute,
        ):
            await stripe_server.deliver(webhook_url, event)
        await eventually(lambda: processed(engine, dispute["id"]))
        await eventually(lambda: processed(engine, first_refund["id"]))
        # then
        row = await payment_row(engine)
        assert (row["amount_captured"], row["amount_refunded"], row["dispute_status"]) == (
            3_000,
            1_200,
            "needs_response",
        )
        audit = await fetch(engine, "SELECT action, organization_id, actor_kind FROM audit_entry ORDER BY id")
        assert audit == [
            {"action": "payment.refunded", "organization_id": org, "actor_kind": "system"},
            {"action": "payment.disputed", "organization_id": org, "actor_kind": "system"},
        ]


class TestMembershipEventsAndTheInbox:
    async def test_subscriptions_and_invoices_of_no_membership_are_ignored_other_invoice_events_kept(
        self, engine: AsyncEngine, webhook_url: str, stripe_server: StripeServer
    ) -> None:
        # Memberships act on these (tests/test_membership_subscriptions.py); ones that are not
        # ChargeNet's are ignored, invoice events memberships do not use stay recorded.
        invoice = stripe_server.make_event("invoice.paid", {"id": "in_1", "object": "invoice"})
        finalized = stripe_server.make_event("invoice.finalized", {"id": "in_1", "object": "invoice"})
        sub = stripe_server.make_event(
            "customer.subscription.updated", {"id": "sub_1", "object": "subscription", "status": "active"}
        )
        other = stripe_server.make_event("balance.available", {"object": "balance"})
        for event in (invoice, finalized, sub, other):
            assert (await stripe_server.deliver(webhook_url, event)).status_code == 200
        for event in (invoice, finalized, sub, other):
            await eventually(lambda e=event: processed(engine, e["id"]))
        outcomes = await fetch(engine, "SELECT event_type, outcome FROM inbox_event ORDER BY event_type")
        assert outcomes == [
            {"event_type": "balance.available", "outcome": "ignored"},
            {"event_type": "customer.subscription.updated", "outcome": "ignored"},
            {"event_type": "invoice.finalized", "outcome": "recorded"},
            {"event_type": "invoice.paid", "outcome": "ignored"},
        ]

    async def test_rows_are_processed_in_stripes_order_and_failures_retried(
        self, engine: AsyncEngine, stripe_server: StripeServer
    ) -> None:
        # given: three events stored out of order, and a handler that fails once
        seen: list[str] = []
        failures = {"evt_b": 1}

        async def handler(session: AsyncSession, event: InboundEvent) -> str:
            if failures.get(event.external_id, 0) > 0:
                failures[event.external_id] -= 1
                raise RuntimeError("database hiccup")
            seen.append(event.external_id)
            return "handled"

        registry = HandlerRegistry()
        registry.register("test.*", handler)
        now = int(time.time())
        for ident, created in (("evt_c", now + 2), ("evt_a", now), ("evt_b", now + 1)):
            event = {
                **stripe_server.make_event("test.event", {"object": "thing"}, created=created),
                "id": ident,
            }
            await inbox.store(
                engine,
                source=inbox.STRIPE,
                external_id=ident,
                event_type="test.event",
                payload=event,
                created=inbox.stripe_created(event),
            )
        # when
        first_round = await inbox.process_pending(engine, registry)
        failed = await fetch(
            engine, "SELECT attempts, last_error, processed_at FROM inbox_event WHERE external_id = 'evt_b'"
        )
        second_round = await inbox.process_pending(engine, registry)
        # then
        assert (first_round, second_round) == (2, 1)
        assert seen == ["evt_a", "evt_c", "evt_b"]
        assert failed[0]["attempts"] == 1 and "database hiccup" in failed[0]["last_error"]
        assert failed[0]["processed_at"] is None
        assert await fetch(
            engine, "SELECT attempts, last_error FROM inbox_event WHERE external_id = 'evt_b'"
        ) == [{"attempts": 2, "last_error": None}]

    async def test_a_row_that_keeps_failing_is_left_for_an_operator(self, engine: AsyncEngine) -> None:
        async def broken(session: AsyncSession, event: InboundEvent) -> str:
            raise RuntimeError("always")

        registry = HandlerRegistry()
        registry.register("test.event", broken)
        await inbox.store(
            engine,
            source=inbox.STRIPE,
            external_id="evt_bad",
            event_type="test.event",
            payload={"id": "evt_bad", "created": 0, "data": {"object": {}}},
            created=inbox.stripe_created({"created": 0}),
        )
        for _ in range(4):
            await inbox.process_pending(engine, registry, max_attempts=3)
        assert await scalar(engine, "SELECT attempts FROM inbox_event") == 3


class TestPaymentStateRules:
    """The rules every payment update follows (api.billing.payment_state), one by one."""

    T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    def test_final_statuses_never_change_even_for_newer_news(self) -> None:
        later = self.T0 + timedelta(minutes=5)
        assert not moves_forward("succeeded", self.T0, "requires_capture", later)
        assert not moves_forward("canceled", self.T0, "requires_capture", later)

    def test_newer_news_wins_between_open_statuses(self) -> None:
        # 3-D Secure failed after being asked for: the intent goes back to a payment method
        assert moves_forward(
            "requires_action", self.T0, "requires_payment_method", self.T0 + timedelta(seconds=3)
        )
        assert not moves_forward(
            "requires_capture", self.T0, "requires_action", self.T0 - timedelta(seconds=3)
        )

    def test_news_of_the_same_second_or_from_our_own_calls_go_by_progress(self) -> None:
        assert moves_forward("requires_capture", self.T0, "succeeded", self.T0)
        assert not moves_forward("requires_capture", self.T0, "requires_confirmation", self.T0)
        assert moves_forward("requires_capture", self.T0, "succeeded", None)

    def test_amounts_only_grow(self) -> None:
        payment = Payment(
            organization_id=1,
            user_id=1,
            payment_intent_id="pi_1",
            currency="eur",
            amount_held=5_000,
            amount_captured=4_000,
            status="succeeded",
        )
        changed = apply_intent(
            payment,
            {"id": "pi_1", "status": "requires_capture", "amount": 5_000, "amount_received": 0},
            at=self.T0,
        )
        assert not changed
        assert (payment.status, payment.amount_captured) == ("succeeded", 4_000)


class TestConcurrencyAndRetention:
    async def test_two_deliveries_of_one_event_racing_store_it_once(
        self, engine: AsyncEngine, webhook_url: str, stripe_server: StripeServer
    ) -> None:
        event = stripe_server.make_event("invoice.paid", {"id": "in_1", "object": "invoice"})
        answers = await asyncio.gather(*(stripe_server.deliver(webhook_url, event) for _ in range(4)))
        assert [a.status_code for a in answers] == [200] * 4
        assert sorted(a.json()["duplicate"] for a in answers) == [False, True, True, True]
        assert await scalar(engine, "SELECT count(*) FROM inbox_event") == 1

    async def test_an_oversized_body_is_refused_unread(
        self, engine: AsyncEngine, webhook_url: str, stripe_server: StripeServer
    ) -> None:
        event = stripe_server.make_event(
            "invoice.paid", {"id": "in_1", "object": "invoice", "pad": "x" * 1_100_000}
        )
        answer = await stripe_server.deliver(webhook_url, event)
        assert answer.status_code == 413
        assert await scalar(engine, "SELECT count(*) FROM inbox_event") == 0

    async def test_two_replicas_process_each_event_once(self, engine: AsyncEngine, db_url: str) -> None:
        if engine.dialect.name != "postgresql":
            pytest.skip("replicas share PostgreSQL; an embedded SQLite has one process")
        calls: list[str] = []

        async def handler(session: AsyncSession, event: InboundEvent) -> str:
            calls.append(event.external_id)
            await asyncio.sleep(0.01)
            return "handled"

        registry = HandlerRegistry()
        registry.register("test.event", handler)
        for n in range(30):
            await inbox.store(
                engine,
                source=inbox.STRIPE,
                external_id=f"evt_{n}",
                event_type="test.event",
                payload={"id": f"evt_{n}", "created": n, "data": {"object": {}}},
                created=inbox.stripe_created({"created": n}),
            )
        other = create_engine(db_url)
        try:
            done = await asyncio.gather(
                inbox.process_pending(engine, registry), inbox.process_pending(other, registry)
            )
        finally:
            await other.dispose()
        assert sum(done) == 30
        assert sorted(calls) == sorted(f"evt_{n}" for n in range(30))
        assert await scalar(engine, "SELECT max(attempts) FROM inbox_event") == 1

    async def test_processed_events_are_purged_after_the_retention_only(
        self, engine: AsyncEngine, stripe_server: StripeServer
    ) -> None:
        for ident in ("evt_old", "evt_pending"):
            event = {**stripe_server.make_event("invoice.paid", {"object": "invoice"}), "id": ident}
            await inbox.store(
                engine,
                source=inbox.STRIPE,
                external_id=ident,
                event_type="invoice.paid",
                payload=event,
                created=inbox.stripe_created(event),
            )
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE inbox_event SET processed_at = received_at WHERE external_id = 'evt_old'")
            )
        # when: a day later nothing goes; past the retention the processed row goes
        assert await purge_stripe_inbox(engine, now=utcnow() + timedelta(days=1)) == 0
        assert await purge_stripe_inbox(engine, now=utcnow() + INBOX_RETENTION + timedelta(days=1)) == 1
        assert await fetch(engine, "SELECT external_id FROM inbox_event") == [{"external_id": "evt_pending"}]


class TestAnsweringFast:
    async def test_the_answer_does_not_wait_for_processing(
        self, engine: AsyncEngine, stripe_server: StripeServer
    ) -> None:
        # given: a handler that blocks until released
        release = asyncio.Event()

        async def slow(session: AsyncSession, event: InboundEvent) -> str:
            await release.wait()
            return "handled"

        registry = HandlerRegistry()
        registry.register("invoice.paid", slow)
        settings = Settings(CHARGENET_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
        app = Starlette(routes=[stripe_webhook_route(engine, settings, registry)])
        server = _QuietServer(
            uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
        )
        task = asyncio.create_task(server.serve())
        try:

            async def started() -> bool:
                return bool(server.started)

            await eventually(started)
            port = server.servers[0].sockets[0].getsockname()[1]
            event = stripe_server.make_event("invoice.paid", {"id": "in_1", "object": "invoice"})
            # when
            answer = await asyncio.wait_for(
                stripe_server.deliver(f"http://127.0.0.1:{port}{WEBHOOK_PATH}", event), timeout=5
            )
            # then: answered and stored while the handler still waits
            assert answer.status_code == 200
            assert await scalar(engine, "SELECT count(*) FROM inbox_event") == 1
            assert not await processed(engine, event["id"])
            release.set()
            await eventually(lambda: processed(engine, event["id"]))
        finally:
            release.set()
            server.should_exit = True
            await task

    async def test_a_secret_being_rolled_accepts_both(
        self, engine: AsyncEngine, api_server_factory: ApiServerFactory, stripe_server: StripeServer
    ) -> None:
        server = await api_server_factory(CHARGENET_STRIPE_WEBHOOK_SECRET=f"whsec_old_one, {WEBHOOK_SECRET}")
        url = server.base_url + WEBHOOK_PATH
        old = stripe_server.make_event("invoice.paid", {"id": "in_1", "object": "invoice"})
        new = stripe_server.make_event("invoice.paid", {"id": "in_2", "object": "invoice"})
        assert (await stripe_server.deliver(url, old, secret="whsec_old_one")).status_code == 200
        assert (await stripe_server.deliver(url, new)).status_code == 200
        assert (await stripe_server.deliver(url, new, secret="whsec_neither")).status_code == 400
        assert await scalar(engine, "SELECT count(*) FROM inbox_event") == 2
