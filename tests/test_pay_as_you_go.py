"""Pay-as-you-go end to end: a driver saves a card through the API, starts from the app, the
bank holds an amount before the station is asked, the session's price is captured after it
ends; declines, 3-D Secure, Stripe outages and unpaid sessions — with the real `stripe` SDK
against the local Stripe server, a real gateway and a simulated charger."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.billing import hold_top_up, pay_as_you_go
from api.billing.stripe_gateway import StripeGateway
from api.control import requests
from api.worker.service import DurableWork
from gateway.simulator import SimCharger
from schema.bus import InProcessBus
from schema.charge_models import OrganizationBilling
from schema.db import session_factory
from schema.timeutil import to_ocpp, utcnow
from tests.account_builders import give_token, make_user, sign_in
from tests.builders import make_org
from tests.conftest import OPERATOR_TOKEN, ApiServerFactory, ChargerFactory
from tests.dbutil import fetch
from tests.graphql_client import gql
from tests.stripe_payments import app_confirms_card, stripe_settings
from tests.stripe_server import API_KEY, StripeServer, running_stripe_server
from tests.test_remote_control import eventually
from tests.test_tariffs import ASSIGN, _meter, _status, create

APP_TAG = "APP-PAYER-1"
START = """
mutation ($qr: String!) { startCharging(input: {qrCode: $qr, waitSeconds: 0}) {
  outcome message paymentClientSecret request { id state failureReason } } }"""
RESUME = """
mutation ($r: ID!) { resumeCharging(requestId: $r, waitSeconds: 0) { outcome message request { state } } }"""
ADD_CARD = "mutation ($a: String!) { addPaymentMethod(attemptId: $a) { setupIntentId clientSecret } }"
SET_DEFAULT = "mutation ($pm: String!) { setDefaultPaymentMethod(paymentMethodId: $pm) { id last4 } }"
MY_PAYMENTS = "{ myPayments { status amountHeld amountCaptured amountRefunded transaction { id } } }"
BALANCE = "{ myUnpaidBalance }"
PAY_BALANCE = "mutation { payUnpaidBalance }"
REFUND = """
mutation ($t: ID!, $a: Int) {
  refundSession(input: {transactionId: $t, amount: $a}) { amountCaptured amountRefunded } }"""
SETTINGS = """
mutation ($o: ID!, $policy: ProviderDownPolicy!) {
  updateBillingSettings(input: {organizationId: $o, paymentsRequired: true, holdAmount: 2000,
                                providerDownPolicy: $policy}) { paymentsRequired holdAmount } }"""


def gid(kind: str, pk: int) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


@pytest.fixture
def stripe_server() -> Iterator[StripeServer]:
    with running_stripe_server() as server:
        yield server


@pytest.fixture
async def stripe(stripe_server: StripeServer) -> AsyncIterator[StripeGateway]:
    """What the worker settles with (run directly, so each test decides when)."""
    gw = StripeGateway.from_settings(stripe_settings(stripe_server))
    yield gw
    await gw.aclose()


@pytest.fixture
async def api(
    api_server_factory: ApiServerFactory, stripe_server: StripeServer
) -> AsyncIterator[httpx.AsyncClient]:
    server = await api_server_factory(
        CHARGENET_STRIPE_API_KEY=API_KEY,
        CHARGENET_STRIPE_API_BASE=stripe_server.url,
        CHARGENET_STRIPE_TIMEOUT=2.0,
        CHARGENET_STRIPE_MAX_RETRIES=1,
        CHARGENET_STRIPE_IDEMPOTENCY_PREFIX="test",
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as client:
        client.app = server.app  # type: ignore[attr-defined]
        yield client


async def ok(http: httpx.AsyncClient, query: str, token: str, **variables: Any) -> Any:
    result = await gql(http, query, variables, token=token)
    assert not result.get("errors"), result
    return result["data"]


@pytest.fixture
async def world(engine: AsyncEngine, api: httpx.AsyncClient, station: int) -> dict[str, Any]:
    """An organisation that requires payment (2,000 held), 40 ct/kWh, and a signed-in driver."""
    org = await make_org(engine)
    await ok(api, SETTINGS, OPERATOR_TOKEN, o=gid("Organization", org), policy="ALLOW")
    await ok(api, ASSIGN, OPERATOR_TOKEN, t=await create(api, org, "Standard", {"energyPerKwh": "40"}))
    user = await make_user(engine, email="payer@example.com")
    await give_token(engine, user_id=user, token=APP_TAG, token_type="Central", organization_id=org)
    token = (await sign_in(engine, api.app.state.auth.keys, user_id=user)).access_token  # type: ignore[attr-defined]
    return {"org": org, "user": user, "token": token}


async def save_card(api: httpx.AsyncClient, server: StripeServer, token: str, card: str) -> str:
    setup = (await ok(api, ADD_CARD, token, a=f"attempt-{card}"))["addPaymentMethod"]
    pm = await app_confirms_card(server, setup["setupIntentId"], card)
    await ok(api, SET_DEFAULT, token, pm=pm)
    return pm


async def quiet_charger(connect_charger: ChargerFactory) -> SimCharger:
    """Accepts remote starts; the test plays the session itself."""
    cp = await connect_charger("CP-1", id_tags=[APP_TAG])
    cp.on_call = lambda action, _p: {"status": "Accepted"} if action == "RemoteStartTransaction" else None
    return cp


async def play_session(cp: SimCharger, kwh: int) -> int:
    base = utcnow().replace(microsecond=0) + timedelta(seconds=1)
    at = [to_ocpp(base + timedelta(minutes=m)) for m in (0, 20)]
    start = {"connectorId": 1, "idTag": APP_TAG, "meterStart": 1_000, "timestamp": at[0]}
    tx = int((await cp.call("StartTransaction", start))["transactionId"])
    await cp.call("StatusNotification", _status("Charging", at[0]))
    await cp.call("MeterValues", _meter(tx, 1_000 + kwh * 1000, at[1]))
    await cp.call(
        "StopTransaction", {"transactionId": tx, "meterStop": 1_000 + kwh * 1000, "timestamp": at[1]}
    )
    return tx


async def charged(engine: AsyncEngine) -> bool:
    return bool(await fetch(engine, "SELECT id FROM session_charge"))


class TestHoldThenCapture:
    async def test_the_hold_comes_first_and_the_session_price_is_captured(
        self,
        api: httpx.AsyncClient,
        engine: AsyncEngine,
        world: dict[str, Any],
        stripe_server: StripeServer,
        stripe: StripeGateway,
        durable: DurableWork,
        connect_charger: ChargerFactory,
    ) -> None:
        token = world["token"]
        await save_card(api, stripe_server, token, "pm_card_visa")
        cp = await quiet_charger(connect_charger)
        # when the driver starts: the bank holds 20.00 before the station is asked
        started = (await ok(api, START, token, qr="CP-1*1"))["startCharging"]
        assert started["outcome"] == "ACCEPTED"
        assert stripe_server.counts["authorizations"] == 1
        assert any(action == "RemoteStartTransaction" for action, _ in cp.received_calls)
        # and the 5 kWh session (2.00) ends
        tx = await play_session(cp, 5)
        assert await eventually(lambda: charged(engine))
        # then the worker captures exactly the price, once however often it runs
        assert await pay_as_you_go.settle_due(engine, stripe) == 1
        assert await pay_as_you_go.settle_due(engine, stripe) == 0
        assert (stripe_server.counts["captures"], stripe_server.counts["captured_amount"]) == (1, 200)
        bill = await fetch(engine, "SELECT payment_status, amount_paid, payment_method FROM session_charge")
        assert bill == [{"payment_status": "paid", "amount_paid": 200, "payment_method": "card"}]
        paid = (await ok(api, MY_PAYMENTS, token))["myPayments"]
        assert paid == [
            {
                "status": "succeeded",
                "amountHeld": 2000,
                "amountCaptured": 200,
                "amountRefunded": 0,
                "transaction": {"id": gid("Transaction", tx)},
            }
        ]
        # and finance can refund part of it
        refunded = (await ok(api, REFUND, OPERATOR_TOKEN, t=gid("Transaction", tx), a=50))["refundSession"]
        assert refunded == {"amountCaptured": 200, "amountRefunded": 50}
        assert stripe_server.counts["refunded_amount"] == 50

    async def test_a_capture_stripe_fails_is_retried_by_the_next_run(
        self,
        api: httpx.AsyncClient,
        engine: AsyncEngine,
        world: dict[str, Any],
        stripe_server: StripeServer,
        stripe: StripeGateway,
        durable: DurableWork,
        connect_charger: ChargerFactory,
    ) -> None:
        await save_card(api, stripe_server, world["token"], "pm_card_visa")
        cp = await quiet_charger(connect_charger)
        await ok(api, START, world["token"], qr="CP-1*1")
        await play_session(cp, 5)
        assert await eventually(lambda: charged(engine))
        stripe_server.fail_next("payment_intents.capture", times=5)
        assert await pay_as_you_go.settle_due(engine, stripe) == 0
        assert await pay_as_you_go.settle_due(engine, stripe) == 1
        assert (stripe_server.counts["captures"], stripe_server.counts["captured_amount"]) == (1, 200)


class TestRefusedStarts:
    async def test_without_a_card_the_station_is_not_asked(
        self, api: httpx.AsyncClient, world: dict[str, Any], connect_charger: ChargerFactory
    ) -> None:
        cp = await quiet_charger(connect_charger)
        started = (await ok(api, START, world["token"], qr="CP-1*1"))["startCharging"]
        assert (started["outcome"], started["request"]["state"]) == ("PAYMENT_REQUIRED", "FAILED")
        assert not any(action == "RemoteStartTransaction" for action, _ in cp.received_calls)

    async def test_a_declined_card_fails_the_request_with_the_banks_reason(
        self,
        api: httpx.AsyncClient,
        world: dict[str, Any],
        stripe_server: StripeServer,
        connect_charger: ChargerFactory,
    ) -> None:
        await save_card(api, stripe_server, world["token"], "pm_card_chargeCustomerFail")
        cp = await quiet_charger(connect_charger)
        started = (await ok(api, START, world["token"], qr="CP-1*1"))["startCharging"]
        assert started["outcome"] == "PAYMENT_DECLINED"
        assert "generic_decline" in started["request"]["failureReason"]
        assert not any(action == "RemoteStartTransaction" for action, _ in cp.received_calls)

    async def test_3d_secure_waits_for_the_app_then_starts(
        self,
        api: httpx.AsyncClient,
        engine: AsyncEngine,
        world: dict[str, Any],
        stripe_server: StripeServer,
        connect_charger: ChargerFactory,
    ) -> None:
        await save_card(api, stripe_server, world["token"], "pm_card_authenticationRequired")
        cp = await quiet_charger(connect_charger)
        started = (await ok(api, START, world["token"], qr="CP-1*1"))["startCharging"]
        assert (started["outcome"], started["request"]["state"]) == (
            "PAYMENT_ACTION_REQUIRED",
            "AWAITING_PAYMENT",
        )
        assert started["paymentClientSecret"]
        request = started["request"]["id"]
        # resuming before the driver authenticated changes nothing
        early = (await ok(api, RESUME, world["token"], r=request))["resumeCharging"]
        assert early["outcome"] == "PAYMENT_ACTION_REQUIRED"
        assert not any(action == "RemoteStartTransaction" for action, _ in cp.received_calls)
        # once the app has passed the bank's check, the station is asked
        intent = (await fetch(engine, "SELECT payment_intent_id FROM payment"))[0]["payment_intent_id"]
        stripe_server.complete_authentication(intent)
        resumed = (await ok(api, RESUME, world["token"], r=request))["resumeCharging"]
        assert resumed["outcome"] == "ACCEPTED"
        assert any(action == "RemoteStartTransaction" for action, _ in cp.received_calls)

    async def test_a_payment_never_confirmed_fails_the_request_in_time(
        self,
        api: httpx.AsyncClient,
        engine: AsyncEngine,
        world: dict[str, Any],
        stripe_server: StripeServer,
        connect_charger: ChargerFactory,
    ) -> None:
        await save_card(api, stripe_server, world["token"], "pm_card_authenticationRequired")
        await quiet_charger(connect_charger)
        await ok(api, START, world["token"], qr="CP-1*1")
        assert await requests.fail_unstarted(engine, timeout_s=0) == 1
        rows = await fetch(engine, "SELECT state, failure_reason FROM charging_request")
        assert rows[0]["state"] == "failed" and "payment was not confirmed" in rows[0]["failure_reason"]


class TestStripeDown:
    async def test_policy_allow_starts_and_charges_at_the_end_a_decline_then_becomes_a_debt(
        self,
        api: httpx.AsyncClient,
        engine: AsyncEngine,
        world: dict[str, Any],
        stripe_server: StripeServer,
        stripe: StripeGateway,
        durable: DurableWork,
        connect_charger: ChargerFactory,
    ) -> None:
        token = world["token"]
        await save_card(api, stripe_server, token, "pm_card_chargeCustomerFail")
        cp = await quiet_charger(connect_charger)
        # Stripe is down when the driver starts: the organisation allows starting anyway
        stripe_server.fail_next("payment_intents.create", times=4)
        started = (await ok(api, START, token, qr="CP-1*1"))["startCharging"]
        assert started["outcome"] == "ACCEPTED"
        await play_session(cp, 5)
        assert await eventually(lambda: charged(engine))
        # at the end the card is charged off-session, and declined: the session is owed
        await pay_as_you_go.settle_due(engine, stripe)
        assert (await ok(api, BALANCE, token))["myUnpaidBalance"] == 200
        told = await fetch(engine, "SELECT event_type FROM outbox_event WHERE event_type = 'payment.failed'")
        assert len(told) == 1
        # so the next start is refused until the driver pays
        again = (await ok(api, START, token, qr="CP-1*1"))["startCharging"]
        assert again["outcome"] == "PAYMENT_REQUIRED"
        await save_card(api, stripe_server, token, "pm_card_visa")
        assert (await ok(api, PAY_BALANCE, token))["payUnpaidBalance"] == 0
        assert stripe_server.counts["captured_amount"] == 200

    async def test_policy_refuse_does_not_start(
        self,
        api: httpx.AsyncClient,
        engine: AsyncEngine,
        world: dict[str, Any],
        stripe_server: StripeServer,
        connect_charger: ChargerFactory,
    ) -> None:
        async with session_factory(engine)() as s:
            row = await s.get(OrganizationBilling, world["org"])
            assert row is not None
            row.provider_down_policy = "refuse"
            s.add(row)
            await s.commit()
        await save_card(api, stripe_server, world["token"], "pm_card_visa")
        cp = await quiet_charger(connect_charger)
        stripe_server.fail_next("payment_intents.create", times=4)
        started = (await ok(api, START, world["token"], qr="CP-1*1"))["startCharging"]
        assert started["outcome"] == "PAYMENT_UNAVAILABLE"
        assert not any(action == "RemoteStartTransaction" for action, _ in cp.received_calls)


class TestHoldsFollowTheCost:
    @pytest.mark.parametrize("policy", ["increment", "stop"])
    async def test_near_the_hold_it_is_raised_or_the_session_stopped(
        self,
        api: httpx.AsyncClient,
        engine: AsyncEngine,
        world: dict[str, Any],
        stripe_server: StripeServer,
        stripe: StripeGateway,
        durable: DurableWork,
        bus: InProcessBus,
        connect_charger: ChargerFactory,
        policy: str,
    ) -> None:
        async with session_factory(engine)() as s:
            row = await s.get(OrganizationBilling, world["org"])
            assert row is not None
            row.over_hold_policy = policy
            s.add(row)
            await s.commit()
        await save_card(api, stripe_server, world["token"], "pm_card_visa")
        cp = await quiet_charger(connect_charger)
        await ok(api, START, world["token"], qr="CP-1*1")
        # a running session at 15 kWh (6.00 of the 20.00 held): nothing to do yet
        now = utcnow().replace(microsecond=0) + timedelta(seconds=1)  # after the tariff began
        start = {"connectorId": 1, "idTag": APP_TAG, "meterStart": 0, "timestamp": to_ocpp(now)}
        tx = int((await cp.call("StartTransaction", start))["transactionId"])
        assert await eventually(lambda: _linked(engine, tx))
        await cp.call("MeterValues", _meter(tx, 15_000, to_ocpp(now + timedelta(seconds=1))))
        assert await hold_top_up.top_up_holds(engine, stripe, bus, command_timeout_s=5) == 0
        # at 41 kWh (16.40, over 80 % of the hold) the policy acts
        await cp.call("MeterValues", _meter(tx, 41_000, to_ocpp(now + timedelta(seconds=2))))
        assert await hold_top_up.top_up_holds(engine, stripe, bus, command_timeout_s=5) == 1
        held = (await fetch(engine, "SELECT amount_held FROM payment"))[0]["amount_held"]
        stopped = ("RemoteStopTransaction", {"transactionId": tx}) in cp.received_calls
        if policy == "increment":
            assert (held, stripe_server.counts["increments"], stopped) == (4_000, 1, False)
        else:
            assert (held, stripe_server.counts["increments"], stopped) == (2_000, 0, True)


async def _linked(engine: AsyncEngine, tx: int) -> bool:
    return bool(await fetch(engine, "SELECT id FROM payment WHERE transaction_id = :t", t=tx))
