"""Memberships through Stripe Subscriptions, end to end: the real API with the real Stripe SDK
against the local Stripe-format server, and the events that server produced delivered signed
to the real webhook endpoint — on SQLite and PostgreSQL.

A driver subscribes, changes plan and cancels through GraphQL; what they pay at a connector
follows the membership the webhooks leave: the plan's tariff and benefits while active, the
general prices once it is past_due or canceled."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth.roles import Role
from api.billing import payments
from api.billing.stripe_gateway import StripeGateway
from api.billing.webhooks import WEBHOOK_PATH
from api.worker.service import DurableWork
from schema.db import session_factory
from schema.models import Organization
from schema.timeutil import utcnow
from tests.account_builders import add_member, give_token, make_user, sign_in
from tests.builders import make_org
from tests.conftest import OPERATOR_TOKEN, ApiServer, ApiServerFactory, ChargerFactory
from tests.dbutil import fetch, scalar
from tests.graphql_client import gql
from tests.stripe_payments import app_confirms_card, stripe_settings
from tests.stripe_server import API_KEY, WEBHOOK_SECRET, StripeServer, running_stripe_server
from tests.test_access_matrix import gid
from tests.test_memberships import MEMBER_TAG, _charges, _session
from tests.test_receipts import pdf_text
from tests.test_remote_control import eventually
from tests.test_stripe_webhooks import processed
from tests.test_tariffs import ASSIGN, ESTIMATE, _in_force_since, create, ok

CREATE_PLAN = """
mutation ($o: ID!, $name: String!, $fee: Int!, $kwh: Decimal, $bp: Int) {
  createMembershipPlan(input: {organizationId: $o, name: $name, monthlyFee: $fee, includedKwh: $kwh,
                               discountBasisPoints: $bp}) { id } }"""
ARCHIVE_PLAN = "mutation ($p: ID!) { archiveMembershipPlan(id: $p) { archivedAt } }"
ASSIGN_PLAN = "mutation ($t: ID!, $p: ID!) { assignTariff(input: {tariffId: $t, planId: $p}) { id } }"
MEMBERSHIP = """id status isMember cancelAtPeriodEnd latestInvoiceStatus currentPeriodStart
                currentPeriodEnd plan { name }"""
SUBSCRIBE = f"""
mutation ($p: ID!, $pm: String) {{ subscribeToPlan(planId: $p, paymentMethodId: $pm) {{
  clientSecret membership {{ {MEMBERSHIP} }} }} }}"""
CHANGE = f"mutation ($p: ID!) {{ changePlan(planId: $p) {{ {MEMBERSHIP} }} }}"
CANCEL = f"mutation ($m: ID!) {{ cancelMembership(id: $m, atPeriodEnd: true) {{ {MEMBERSHIP} }} }}"
MINE = f"{{ myMemberships {{ {MEMBERSHIP} }} }}"
NODE = "query ($id: ID!) { node(id: $id) { ... on PlanMembership { id status } } }"
PRICE = """
query ($s: ID!, $c: Int!) { connectorTariff(stationId: $s, connectorId: $c) { tariffName membershipPlan } }"""
MEMBERS = """
query ($p: ID!) { planSubscriptions(planId: $p, first: 10) {
  totalCount edges { node { status plan { name } } } } }"""
COUNT = "query ($o: ID!) { membershipPlans(organizationId: $o) { name membersCount } }"
MEMBERSHIP_EVENTS = ("customer.subscription.", "invoice.")


@pytest.fixture
def stripe_server() -> Iterator[StripeServer]:
    with running_stripe_server() as server:
        yield server


@pytest.fixture
async def api(api_server_factory: ApiServerFactory, stripe_server: StripeServer) -> ApiServer:
    return await api_server_factory(
        CHARGENET_STRIPE_API_KEY=API_KEY,
        CHARGENET_STRIPE_API_BASE=stripe_server.url,
        CHARGENET_STRIPE_IDEMPOTENCY_PREFIX="test",
        CHARGENET_STRIPE_TIMEOUT=2.0,
        CHARGENET_STRIPE_MAX_RETRIES=2,
        CHARGENET_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )


@pytest.fixture
async def http(api: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.base_url, timeout=20) as client:
        yield client


@pytest.fixture
async def stripe_gw(stripe_server: StripeServer) -> AsyncIterator[StripeGateway]:
    gw = StripeGateway.from_settings(stripe_settings(stripe_server))
    yield gw
    await gw.aclose()


@dataclass
class World:
    """The test's view of Stripe and ChargeNet: delivers what Stripe would have sent."""

    engine: AsyncEngine
    http: httpx.AsyncClient
    api: ApiServer
    stripe: StripeServer
    gateway: StripeGateway
    delivered: int = 0

    async def deliver(self, *, only: str | None = None) -> list[dict[str, Any]]:
        """Deliver every membership event Stripe produced since the last call (in order, or
        only those of type `only`), each processed before the next is sent."""
        fresh = [e for e in self.stripe.events[self.delivered :] if e["type"].startswith(MEMBERSHIP_EVENTS)]
        if only is None:
            self.delivered = len(self.stripe.events)
        else:
            fresh = [e for e in fresh if e["type"] == only]
        for event in fresh:
            await self.send(event)
        return fresh

    async def send(self, event: dict[str, Any]) -> None:
        answer = await self.stripe.deliver(self.api.base_url + WEBHOOK_PATH, event)
        assert answer.status_code == 200
        assert await eventually(lambda: processed(self.engine, event["id"]))

    async def driver(self, email: str, card: str = "pm_card_visa") -> tuple[int, str, str]:
        """A signed-in driver with a saved default card: (user id, token, card id)."""
        user = await make_user(self.engine, email=email)
        async with session_factory(self.engine)() as s:
            setup = await payments.start_card_setup(s, self.gateway, user, attempt="first")
            await s.commit()
        pm = await app_confirms_card(self.stripe, setup.setup_intent_id, card)
        async with session_factory(self.engine)() as s:
            await payments.set_default_card(s, self.gateway, user, pm)
            await s.commit()
        token = (await sign_in(self.engine, self.api.app.state.auth.keys, user_id=user)).access_token
        return user, token, pm

    async def plan(self, org: int, name: str, fee: int, *, kwh: str = "0", bp: int = 0) -> str:
        data = await ok(
            self.http, CREATE_PLAN, o=gid("Organization", org), name=name, fee=fee, kwh=kwh, bp=bp
        )
        return str(data["createMembershipPlan"]["id"])

    async def subscribe(self, token: str, plan: str, pm: str | None = None) -> dict[str, Any]:
        return (await ok(self.http, SUBSCRIBE, token=token, p=plan, pm=pm))["subscribeToPlan"]  # type: ignore[no-any-return]

    async def seen_at(self, station: int, token: str | None) -> dict[str, Any]:
        found = await ok(self.http, PRICE, token=token, s=gid("Station", station), c=1)
        return found["connectorTariff"]  # type: ignore[no-any-return]

    def subscription(self, membership_row: dict[str, Any]) -> dict[str, Any]:
        return self.stripe.objects[membership_row["stripe_subscription_id"]]


@pytest.fixture
async def world(
    engine: AsyncEngine,
    http: httpx.AsyncClient,
    api: ApiServer,
    stripe_server: StripeServer,
    stripe_gw: StripeGateway,
) -> World:
    return World(engine, http, api, stripe_server, stripe_gw)


async def error_code(http: httpx.AsyncClient, query: str, token: str | None, **variables: Any) -> str:
    result = await gql(http, query, variables, token=token)
    assert result.get("errors"), result
    return str(result["errors"][0]["extensions"]["code"])


async def other_org(engine: AsyncEngine) -> int:
    """A second organisation (without the test cards `make_org` gives the first)."""
    async with session_factory(engine)() as s:
        org = Organization(name="Other", slug="other")
        s.add(org)
        await s.commit()
        return org.id or 0


async def execute(engine: AsyncEngine, sql: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql))


async def membership_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    return await fetch(engine, "SELECT * FROM plan_subscription ORDER BY id")


async def priced_org(w: World) -> tuple[int, str, str]:
    """The station's organisation: a 40 ct general tariff, plans Basic (5 kWh included, 10 %
    off) and Plus (its own 29 ct tariff)."""
    org = await make_org(w.engine)
    await ok(w.http, ASSIGN, t=await create(w.http, org, "General", {"energyPerKwh": "40"}))
    basic = await w.plan(org, "Basic", 900, kwh="5", bp=1000)
    plus = await w.plan(org, "Plus", 1900)
    await ok(w.http, ASSIGN_PLAN, t=await create(w.http, org, "Members", {"energyPerKwh": "29"}), p=plus)
    return org, basic, plus


async def estimate(w: World, station: int, token: str | None) -> int:
    found = await ok(w.http, ESTIMATE, token=token, s=gid("Station", station), c=1, kwh="10", min=60.0)
    return int(found["estimateCost"]["total"])


class TestPlansAtStripe:
    async def test_a_new_plan_gets_one_monthly_price_and_archiving_withdraws_it(self, world: World) -> None:
        # given
        org = await make_org(world.engine)
        # when
        plan = await world.plan(org, "Basic", 900)
        # then one Product and one monthly Price, found again by the plan's lookup key
        row = (
            await fetch(world.engine, "SELECT id, stripe_product_id, stripe_price_id FROM membership_plan")
        )[0]
        price = world.stripe.objects[row["stripe_price_id"]]
        assert (price["unit_amount"], price["currency"], price["recurring"]["interval"]) == (
            900,
            "eur",
            "month",
        )
        assert price["product"] == row["stripe_product_id"]
        assert price["lookup_key"] == f"test:plan:{row['id']}:monthly"
        again = await world.gateway.ensure_plan_price(
            plan_id=row["id"], name="Basic", monthly_fee=900, currency="EUR"
        )
        assert again.price_id == price["id"]
        assert (world.stripe.calls["products.create"], world.stripe.calls["prices.create"]) == (1, 1)
        # when archived: the price takes no new subscriptions, and ChargeNet refuses them
        await ok(world.http, ARCHIVE_PLAN, p=plan)
        assert price["id"] not in {
            p["id"] for p in world.stripe.objects.values() if p["object"] == "price" and p["active"]
        }
        _, token, _ = await world.driver("late@example.com")
        assert await error_code(world.http, SUBSCRIBE, token, p=plan) == "NOT_FOUND"


class TestSubscribing:
    async def test_the_active_webhook_gives_the_plan_tariff_and_benefits(
        self, world: World, station: int
    ) -> None:
        # given a driver whose card needs 3-D Secure for the first invoice
        org, _, plus = await priced_org(world)
        user, token, _ = await world.driver("member@example.com", card="pm_card_authenticationRequired")
        # when they subscribe to Plus
        done = await world.subscribe(token, plus)
        # then the membership waits for the app to authenticate; no member prices yet
        assert done["membership"]["status"] == "incomplete" and done["clientSecret"]
        assert await world.seen_at(station, token) == {"tariffName": "General", "membershipPlan": None}
        await world.deliver()
        assert (await membership_rows(world.engine))[0]["status"] == "incomplete"
        # when the driver authenticates and Stripe reports the invoice paid, the subscription active
        row = (await membership_rows(world.engine))[0]
        world.stripe.complete_invoice_authentication(row["stripe_subscription_id"])
        delivered = await world.deliver()
        # then
        assert [e["type"] for e in delivered] == ["invoice.paid", "customer.subscription.updated"]
        assert await world.seen_at(station, token) == {"tariffName": "Members", "membershipPlan": "Plus"}
        assert await world.seen_at(station, None) == {"tariffName": "General", "membershipPlan": None}
        mine = (await ok(world.http, MINE, token=token))["myMemberships"]
        assert [(m["status"], m["isMember"], m["latestInvoiceStatus"], m["plan"]["name"]) for m in mine] == [
            ("active", True, "paid", "Plus")
        ]
        assert mine[0]["currentPeriodEnd"] is not None
        audit = await fetch(
            world.engine, "SELECT action FROM audit_entry WHERE target_type = 'plan_subscription' ORDER BY id"
        )
        assert [a["action"] for a in audit] == [
            "membership.subscribe",
            "membership.invoice_paid",
            "membership.status",
        ]
        assert user == row["user_id"] and org == row["organization_id"]

    async def test_a_basic_member_gets_included_energy_and_the_discount(
        self, world: World, station: int
    ) -> None:
        # given
        _, basic, _ = await priced_org(world)
        _, token, pm = await world.driver("member@example.com")
        # when subscribing with a named card (paid at once)
        done = await world.subscribe(token, basic, pm)
        await world.deliver()
        # then 10 kWh at 40 ct: 5 kWh included, 10 % off the other 5 → 180 instead of 400
        assert (done["membership"]["status"], done["clientSecret"]) == ("active", None)
        assert world.subscription((await membership_rows(world.engine))[0])["default_payment_method"] == pm
        assert await estimate(world, station, token) == 180
        assert await estimate(world, station, None) == 400

    async def test_a_second_membership_at_the_same_organisation_is_refused_a_repeat_is_not(
        self, world: World
    ) -> None:
        # given
        _, basic, plus = await priced_org(world)
        _, token, _ = await world.driver("member@example.com")
        first = await world.subscribe(token, basic)
        # when / then
        assert await error_code(world.http, SUBSCRIBE, token, p=plus) == "MEMBERSHIP_EXISTS"
        again = await world.subscribe(token, basic)
        assert again["membership"]["id"] == first["membership"]["id"]
        assert world.stripe.calls["subscriptions.create"] == 1
        assert len(await membership_rows(world.engine)) == 1
        # a plan of another organisation is a membership of its own
        other = await other_org(world.engine)
        elsewhere = await world.subscribe(token, await world.plan(other, "Other", 500))
        assert elsewhere["membership"]["status"] == "active"

    async def test_a_lost_answer_is_retried_into_the_same_subscription(self, world: World) -> None:
        # given Stripe creates the subscription but the answer never arrives (the SDK retries
        # with the same idempotency key, and so does the driver's second tap)
        _, basic, _ = await priced_org(world)
        _, token, _ = await world.driver("member@example.com")
        world.stripe.fail_next("subscriptions.create", 3, mode="drop")
        assert await error_code(world.http, SUBSCRIBE, token, p=basic) == "PAYMENT_PROVIDER_UNAVAILABLE"
        # when
        done = await world.subscribe(token, basic)
        # then one subscription at Stripe, one membership
        subs = [o for o in world.stripe.objects.values() if o["object"] == "subscription"]
        assert len(subs) == 1 and done["membership"]["status"] == "active"
        assert (await membership_rows(world.engine))[0]["stripe_subscription_id"] == subs[0]["id"]

    async def test_webhooks_complete_a_membership_whose_answer_was_lost(self, world: World) -> None:
        # given the subscription exists at Stripe but ChargeNet never heard the answer
        _, basic, _ = await priced_org(world)
        _, token, _ = await world.driver("member@example.com")
        world.stripe.fail_next("subscriptions.create", 3, mode="drop")
        assert await error_code(world.http, SUBSCRIBE, token, p=basic) == "PAYMENT_PROVIDER_UNAVAILABLE"
        assert (await membership_rows(world.engine))[0]["stripe_subscription_id"] is None
        # when Stripe's events arrive, the membership is found by the id in their metadata
        await world.deliver()
        # then
        row = (await membership_rows(world.engine))[0]
        subs = [o for o in world.stripe.objects.values() if o["object"] == "subscription"]
        assert (row["stripe_subscription_id"], row["status"]) == (subs[0]["id"], "active")
        # and the driver's retry returns it without asking Stripe again
        again = await world.subscribe(token, basic)
        assert again["membership"]["status"] == "active"
        assert world.stripe.calls["subscriptions.create"] == 3

    async def test_a_price_created_with_its_answer_lost_is_found_by_its_lookup_key(
        self, world: World
    ) -> None:
        # given the plan's Price was created at Stripe, but every answer was lost
        org = await make_org(world.engine)
        world.stripe.fail_next("prices.create", 3, mode="drop")
        plan = await world.plan(org, "Basic", 900)
        assert (await fetch(world.engine, "SELECT stripe_price_id FROM membership_plan"))[0] == {
            "stripe_price_id": None
        }
        # when the first driver subscribes
        _, token, _ = await world.driver("member@example.com")
        done = await world.subscribe(token, plan)
        # then the existing Price is used: one Price, stored on the plan
        prices = [o for o in world.stripe.objects.values() if o["object"] == "price"]
        assert len(prices) == 1 and done["membership"]["status"] == "active"
        stored = (await fetch(world.engine, "SELECT stripe_price_id FROM membership_plan"))[0]
        assert stored == {"stripe_price_id": prices[0]["id"]}

    async def test_a_subscription_stripe_refuses_leaves_no_membership_behind(self, world: World) -> None:
        # given Basic's price was deactivated at Stripe behind ChargeNet's back
        _, basic, plus = await priced_org(world)
        _, token, _ = await world.driver("member@example.com")
        price = (
            await fetch(world.engine, "SELECT stripe_price_id FROM membership_plan WHERE name = 'Basic'")
        )[0]
        world.stripe.objects[price["stripe_price_id"]]["active"] = False
        # when / then
        assert await error_code(world.http, SUBSCRIBE, token, p=basic) == "PAYMENT_PROVIDER_ERROR"
        assert [r["status"] for r in await membership_rows(world.engine)] == ["incomplete_expired"]
        done = await world.subscribe(token, plus)
        assert done["membership"]["status"] == "active"

    async def test_operators_and_api_keys_have_no_memberships_to_subscribe(self, world: World) -> None:
        _, basic, _ = await priced_org(world)
        assert await error_code(world.http, SUBSCRIBE, OPERATOR_TOKEN, p=basic) == "FORBIDDEN"
        assert world.stripe.calls["subscriptions.create"] == 0


class TestChangingAndEnding:
    async def test_upgrading_moves_the_subscription_to_the_new_price(
        self, world: World, station: int
    ) -> None:
        # given a Basic member
        _, basic, plus = await priced_org(world)
        _, token, _ = await world.driver("member@example.com")
        await world.subscribe(token, basic)
        await world.deliver()
        assert (await world.seen_at(station, token))["membershipPlan"] == "Basic"
        # when
        changed = (await ok(world.http, CHANGE, token=token, p=plus))["changePlan"]
        await world.deliver()
        # then
        row = (await membership_rows(world.engine))[0]
        plus_price = (
            await fetch(world.engine, "SELECT stripe_price_id FROM membership_plan WHERE name = 'Plus'")
        )[0]
        assert world.subscription(row)["items"]["data"][0]["price"]["id"] == plus_price["stripe_price_id"]
        assert changed["plan"]["name"] == "Plus"
        assert await world.seen_at(station, token) == {"tariffName": "Members", "membershipPlan": "Plus"}
        # and back again is a new change at Stripe, not a replay of the first
        await ok(world.http, CHANGE, token=token, p=basic)
        await world.deliver()
        assert (await world.seen_at(station, token))["membershipPlan"] == "Basic"
        assert world.stripe.calls["subscriptions.update"] == 2

    async def test_cancel_at_period_end_keeps_the_benefits_until_stripe_deletes_it(
        self, world: World, station: int
    ) -> None:
        # given
        _, _, plus = await priced_org(world)
        _, token, _ = await world.driver("member@example.com")
        membership = (await world.subscribe(token, plus))["membership"]
        await world.deliver()
        # when
        cancelled = (await ok(world.http, CANCEL, token=token, m=membership["id"]))["cancelMembership"]
        await world.deliver()
        # then still a member until the period ends
        assert (cancelled["cancelAtPeriodEnd"], cancelled["status"]) == (True, "active")
        assert (await world.seen_at(station, token))["membershipPlan"] == "Plus"
        # when the period ends
        row = (await membership_rows(world.engine))[0]
        world.stripe.end_period(row["stripe_subscription_id"])
        assert [e["type"] for e in await world.deliver()] == ["customer.subscription.deleted"]
        # then
        assert await world.seen_at(station, token) == {"tariffName": "General", "membershipPlan": None}
        assert (await ok(world.http, MINE, token=token))["myMemberships"][0]["status"] == "canceled"
        # and the driver may join again
        again = await world.subscribe(token, plus)
        assert again["membership"]["id"] != membership["id"] and again["membership"]["status"] == "active"

    async def test_a_failed_renewal_stops_the_benefits_until_paid(self, world: World, station: int) -> None:
        # given
        _, basic, _ = await priced_org(world)
        _, token, _ = await world.driver("member@example.com")
        await world.subscribe(token, basic)
        await world.deliver()
        first = (await membership_rows(world.engine))[0]
        await execute(
            world.engine,
            "INSERT INTO plan_usage (subscription_id, period_start, used_wh) "
            "SELECT id, current_period_start, 5000 FROM plan_subscription",
        )
        assert await estimate(world, station, token) == 360  # this period's 5 kWh are used up
        # when the next period's invoice fails (only the invoice event has arrived yet)
        world.stripe.renew(first["stripe_subscription_id"], card="pm_card_chargeDeclined")
        await world.deliver(only="invoice.payment_failed")
        # then
        assert (await world.seen_at(station, token))["membershipPlan"] is None
        assert await estimate(world, station, token) == 400
        mine = (await ok(world.http, MINE, token=token))["myMemberships"][0]
        assert (mine["status"], mine["isMember"], mine["latestInvoiceStatus"]) == (
            "past_due",
            False,
            "payment_failed",
        )
        failed = await fetch(
            world.engine, "SELECT detail FROM audit_entry WHERE action = 'membership.invoice_payment_failed'"
        )
        assert len(failed) == 1
        await world.deliver()
        # when the driver's next card pays the following period: member again, new period
        world.stripe.renew(first["stripe_subscription_id"], card="pm_card_mastercard")
        await world.deliver()
        row = (await membership_rows(world.engine))[0]
        assert (row["status"], row["latest_invoice_status"]) == ("active", "paid")
        assert row["current_period_start"] > first["current_period_start"]
        assert await estimate(world, station, token) == 180  # the new period's 5 kWh are included


class TestOnTheBill:
    async def test_sessions_are_billed_with_the_benefits_only_while_the_membership_is_active(
        self,
        world: World,
        station: int,
        durable: DurableWork,
        connect_charger: ChargerFactory,
    ) -> None:
        # given a Basic member (5 kWh included, 10 % off) by subscription and webhooks
        org, basic, _ = await priced_org(world)
        base = utcnow().replace(microsecond=0) - timedelta(hours=2)
        await _in_force_since(world.engine, base - timedelta(hours=1))
        user, token, _ = await world.driver("member@example.com")
        await give_token(world.engine, user_id=user, token=MEMBER_TAG, organization_id=org)
        await world.subscribe(token, basic)
        await world.deliver()
        cp = await connect_charger("CP-1", id_tags=[MEMBER_TAG])
        # when a 5 kWh session ends: all of it included
        await _session(cp, base, 0, 10_000)
        assert await eventually(lambda: _charges(world.engine, 1))
        # when the renewal fails, and another 5 kWh session ends: the general price, no discount
        row = (await membership_rows(world.engine))[0]
        world.stripe.renew(row["stripe_subscription_id"], card="pm_card_chargeDeclined")
        await world.deliver()
        await _session(cp, base, 30, 20_000)
        assert await eventually(lambda: _charges(world.engine, 2))
        # then
        rows = await fetch(world.engine, "SELECT total FROM session_charge ORDER BY id")
        assert [r["total"] for r in rows] == [0, 200]


class TestWebhookOrder:
    async def test_older_events_never_undo_newer_ones_and_ended_stays_ended(
        self, world: World, station: int
    ) -> None:
        # given an active member
        _, basic, _ = await priced_org(world)
        _, token, _ = await world.driver("member@example.com")
        await world.subscribe(token, basic)
        await world.deliver()
        sub = world.subscription((await membership_rows(world.engine))[0])
        now = int(time.time())
        past_due = world.stripe.make_event(
            "customer.subscription.updated", {**sub, "status": "past_due"}, created=now + 20
        )
        stale_active = world.stripe.make_event("customer.subscription.updated", sub, created=now + 10)
        # when the newer past_due arrives before the older active
        await world.send(past_due)
        await world.send(stale_active)
        # then
        assert (await membership_rows(world.engine))[0]["status"] == "past_due"
        # when deleted, then an "active" newer than the deletion arrives (a replayed object)
        deleted = world.stripe.make_event(
            "customer.subscription.deleted", {**sub, "status": "canceled"}, created=now + 30
        )
        revived = world.stripe.make_event("customer.subscription.updated", sub, created=now + 40)
        await world.send(deleted)
        await world.send(revived)
        # then it stays ended, and the slot is free
        row = (await membership_rows(world.engine))[0]
        assert (row["status"], row["open_organization_id"]) == ("canceled", None)
        assert (await world.seen_at(station, token))["membershipPlan"] is None


class TestWhoSeesWhat:
    async def test_another_driver_cannot_cancel_or_read_my_membership(self, world: World) -> None:
        # given
        _, _, plus = await priced_org(world)
        _, mine, _ = await world.driver("me@example.com")
        _, theirs, _ = await world.driver("them@example.com")
        membership = (await world.subscribe(mine, plus))["membership"]
        # when / then
        assert await error_code(world.http, CANCEL, theirs, m=membership["id"]) == "NOT_FOUND"
        assert (await ok(world.http, NODE, token=theirs, id=membership["id"]))["node"] is None
        assert (await ok(world.http, NODE, token=mine, id=membership["id"]))["node"]["status"] == "active"
        assert (await ok(world.http, MINE, token=theirs))["myMemberships"] == []
        assert world.stripe.calls["subscriptions.update"] == 0

    async def test_billing_staff_list_their_plans_members_only(self, world: World) -> None:
        # given a member of Acme's Plus, and finance staff of Acme and of another organisation
        org, _, plus = await priced_org(world)
        _, token, _ = await world.driver("member@example.com")
        await world.subscribe(token, plus)
        await world.deliver()
        other = await other_org(world.engine)
        staff = {}
        for name, where in (("acme", org), ("other", other)):
            user = await make_user(world.engine, email=f"finance@{name}.example.com")
            await add_member(world.engine, user_id=user, organization_id=where, role=Role.FINANCE)
            staff[name] = (
                await sign_in(world.engine, world.api.app.state.auth.keys, user_id=user)
            ).access_token
        # when / then
        listed = (await ok(world.http, MEMBERS, token=staff["acme"], p=plus))["planSubscriptions"]
        assert listed["totalCount"] == 1
        assert [e["node"] for e in listed["edges"]] == [{"status": "active", "plan": {"name": "Plus"}}]
        counts = (await ok(world.http, COUNT, token=staff["acme"], o=gid("Organization", org)))[
            "membershipPlans"
        ]
        assert {c["name"]: c["membersCount"] for c in counts} == {"Basic": 0, "Plus": 1}
        assert await error_code(world.http, MEMBERS, staff["other"], p=plus) == "NOT_FOUND"
        outside = (await ok(world.http, COUNT, token=staff["other"], o=gid("Organization", org)))[
            "membershipPlans"
        ]
        assert {c["membersCount"] for c in outside} == {None}
        membership_id = (await ok(world.http, MINE, token=token))["myMemberships"][0]["id"]
        assert (await ok(world.http, NODE, token=staff["other"], id=membership_id))["node"] is None
        assert (await ok(world.http, NODE, token=staff["acme"], id=membership_id))["node"][
            "status"
        ] == "active"
        assert await scalar(world.engine, "SELECT count(*) FROM plan_subscription") == 1

    async def test_a_late_failed_attempt_never_unpays_an_invoice_nor_a_membership(
        self, world: World, station: int
    ) -> None:
        # given a renewal that failed, then was paid with another card (all delivered)
        _, basic, _ = await priced_org(world)
        _, token, _ = await world.driver("member@example.com")
        await world.subscribe(token, basic)
        await world.deliver()
        sub_id = (await membership_rows(world.engine))[0]["stripe_subscription_id"]
        world.stripe.renew(sub_id, card="pm_card_chargeDeclined")
        failed = world.stripe.events_of("invoice.payment_failed")[-1]
        invoice = world.stripe.objects[failed["data"]["object"]["id"]]
        invoice.update(status="paid", amount_paid=invoice["amount_due"])
        paid = world.stripe.make_event("invoice.paid", invoice, created=failed["created"] + 5)
        active = world.stripe.make_event(
            "customer.subscription.updated",
            {**world.stripe.objects[sub_id], "status": "active"},
            created=failed["created"] + 5,
        )
        # when the failure arrives last
        for event in (paid, active, failed):
            await world.send(event)
        # then
        row = (await membership_rows(world.engine))[0]
        assert (row["status"], row["latest_invoice_status"]) == ("active", "paid")
        assert (await world.seen_at(station, token))["membershipPlan"] == "Basic"


CREATE_TAXED_PLAN = """
mutation ($o: ID!, $fee: Int!, $bp: Int, $incl: Boolean) {
  createMembershipPlan(input: {organizationId: $o, name: "Plus", monthlyFee: $fee, taxBasisPoints: $bp,
                               feeIncludesTax: $incl}) { id taxBasisPoints feeIncludesTax chargedFee } }"""
INVOICE = """id number kind periodStart periodEnd net tax total amountDue buyer { kind name email address }
  lines { description quantity unit unitPrice amount taxBasisPoints }
  taxBreakdown { taxBasisPoints net tax gross } downloadUrl(expiresInMinutes: 5)"""
MY_INVOICES = f"{{ myInvoices(first: 10) {{ edges {{ node {{ {INVOICE} }} }} }} }}"
ORG_INVOICES = (
    "query ($k: InvoiceKind) { invoices(first: 10, kind: $k) { edges { node { number buyer { email } } } } }"
)
SET_ADDRESS = """
mutation ($a: String) { updateProfile(input: {billingAddress: $a}) { billingAddress } }"""
INVOICE_NODE = "query ($id: ID!) { node(id: $id) { ... on Invoice { number } } }"


async def _pk(engine: AsyncEngine, number: str) -> int:
    return int(await scalar(engine, "SELECT id FROM invoice WHERE number = :n", n=number))


class TestMembersGetAnInvoiceForEveryPaidMonth:
    async def test_paid_months_are_invoiced_once_each_and_a_failed_renewal_not_at_all(
        self, world: World
    ) -> None:
        # given a member of Plus (€11.90 a month including 19 % tax) whose first month is paid
        org = await make_org(world.engine)
        created = await ok(
            world.http, CREATE_TAXED_PLAN, o=gid("Organization", org), fee=1190, bp=1900, incl=True
        )
        plan = created["createMembershipPlan"]
        assert (plan["taxBasisPoints"], plan["feeIncludesTax"], plan["chargedFee"]) == (1900, True, 1190)
        _, token, _ = await world.driver("member@example.com")
        address = await ok(world.http, SET_ADDRESS, token=token, a="  Gartenweg 2 \n\n 10115   Berlin ")
        assert address["updateProfile"]["billingAddress"] == "Gartenweg 2\n10115 Berlin"
        await world.subscribe(token, plan["id"])
        await world.deliver()
        sub_id = (await membership_rows(world.engine))[0]["stripe_subscription_id"]
        # when a renewal fails, and the next one is paid with another card
        world.stripe.renew(sub_id, card="pm_card_chargeDeclined")
        await world.deliver()
        world.stripe.renew(sub_id, card="pm_card_mastercard")
        await world.deliver()
        # and Stripe redelivers the last invoice.paid
        await world.send(world.stripe.events_of("invoice.paid")[-1])
        # then the driver has two invoices: the first month and the paid renewal
        mine = [e["node"] for e in (await ok(world.http, MY_INVOICES, token=token))["myInvoices"]["edges"]]
        year = utcnow().year
        assert [i["number"] for i in mine] == [f"I-{year}-000002", f"I-{year}-000001"]
        paid = world.stripe.events_of("invoice.paid")[-1]["data"]["object"]
        latest = mine[0]
        assert latest["kind"] == "MEMBERSHIP"
        assert latest["buyer"] == {
            "kind": "driver",
            "name": "member@example.com",
            "email": "member@example.com",
            "address": "Gartenweg 2\n10115 Berlin",
        }
        assert latest["periodStart"].startswith(
            f"{datetime.fromtimestamp(paid['period_start'], UTC):%Y-%m-%d}"
        )
        assert latest["lines"] == [
            {
                "description": f"Plus membership, {latest['periodStart'][:10]} to {latest['periodEnd'][:10]}",
                "quantity": "1",
                "unit": "month",
                "unitPrice": "1190",
                "amount": 1190,
                "taxBasisPoints": 1900,
            }
        ]
        assert latest["taxBreakdown"] == [{"taxBasisPoints": 1900, "net": 1000, "tax": 190, "gross": 1190}]
        assert (latest["net"], latest["tax"], latest["total"], latest["amountDue"]) == (1000, 190, 1190, 1190)
        assert await scalar(world.engine, "SELECT count(*) FROM invoice") == 2
        # and the driver can be told: one durable event per outcome, written with the facts
        announced = await fetch(
            world.engine,
            "SELECT event_type, payload FROM outbox_event WHERE event_type LIKE 'membership.%' ORDER BY id",
        )
        assert [a["event_type"] for a in announced] == [
            "membership.invoice_paid",
            "membership.invoice_failed",
            "membership.invoice_paid",
        ]
        payloads = [
            json.loads(a["payload"]) if isinstance(a["payload"], str) else a["payload"] for a in announced
        ]
        assert payloads[1]["renewal"] is True
        assert [p.get("invoice_id") for p in payloads] == [
            await _pk(world.engine, mine[1]["number"]),
            None,
            await _pk(world.engine, latest["number"]),
        ]
        assert {p["amount"] for p in payloads} == {1190}
        # and its PDF downloads through the signed link
        response = await world.http.get(latest["downloadUrl"])
        assert response.status_code == 200 and latest["number"] in pdf_text(response.content)
        # and the organisation's billing staff list both; nobody else sees them
        staff = await ok(world.http, ORG_INVOICES, k="MEMBERSHIP")
        assert [e["node"]["buyer"]["email"] for e in staff["invoices"]["edges"]] == ["member@example.com"] * 2
        assert (await ok(world.http, ORG_INVOICES, k="SPONSORSHIP"))["invoices"]["edges"] == []
        _, other, _ = await world.driver("other@example.com")
        assert (await ok(world.http, MY_INVOICES, token=other))["myInvoices"]["edges"] == []
        assert (await ok(world.http, INVOICE_NODE, token=other, id=latest["id"]))["node"] is None
        assert (await ok(world.http, INVOICE_NODE, token=token, id=latest["id"]))["node"]["number"]
        outsider = await make_user(world.engine, email="finance@other.example.com")
        await add_member(
            world.engine, user_id=outsider, organization_id=await other_org(world.engine), role=Role.FINANCE
        )
        outsider_token = (
            await sign_in(world.engine, world.api.app.state.auth.keys, user_id=outsider)
        ).access_token
        assert (await ok(world.http, ORG_INVOICES, token=outsider_token))["invoices"]["edges"] == []
        assert (await ok(world.http, INVOICE_NODE, token=outsider_token, id=latest["id"]))["node"] is None

    async def test_a_plan_is_taxed_like_the_default_tariff_unless_told_and_charged_its_tax(
        self, world: World
    ) -> None:
        # given an organisation whose default tariff is priced plus 7 % tax
        org = await make_org(world.engine)
        general = await create(
            world.http,
            org,
            "General",
            {"energyPerKwh": "40", "taxBasisPoints": 700, "pricesIncludeTax": False},
        )
        await ok(world.http, ASSIGN, t=general)
        # when a plan of €10.00 is created without a tax, and one with 19 % included
        await world.plan(org, "Basic", 1000)
        await ok(world.http, CREATE_TAXED_PLAN, o=gid("Organization", org), fee=1190, bp=1900, incl=True)
        # then Basic is €10.00 plus 7 %: Stripe charges €10.70; Plus is charged its fee
        plans = await fetch(
            world.engine,
            "SELECT name, tax_basis_points, fee_includes_tax, stripe_price_id "
            "FROM membership_plan ORDER BY id",
        )
        assert [(p["name"], p["tax_basis_points"], bool(p["fee_includes_tax"])) for p in plans] == [
            ("Basic", 700, False),
            ("Plus", 1900, True),
        ]
        assert [world.stripe.objects[p["stripe_price_id"]]["unit_amount"] for p in plans] == [1070, 1190]
