"""Billing end to end, as a driver lives it: sign up, save a card, start by QR, charge 23.4 kWh
across the night-tariff boundary, stay plugged in 20 minutes, get a receipt — and the receipt's
lines and the amount Stripe captured match what a person computes by hand.

Everything is real except Stripe's servers (the local wire-format server): the API over HTTP,
the gateway and a charger over OCPP, the worker's durable events, the price engine, receipts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.billing import pay_as_you_go
from api.billing.stripe_gateway import StripeGateway
from api.worker.service import DurableWork
from schema.timeutil import to_ocpp, utcnow
from tests.accounts_api import VERIFY_EMAIL, latest_token, sign_up
from tests.builders import make_org
from tests.conftest import OPERATOR_TOKEN, ApiServer, ApiServerFactory, ChargerFactory
from tests.dbutil import fetch
from tests.graphql_client import gql
from tests.stripe_payments import app_confirms_card, stripe_settings
from tests.stripe_server import API_KEY, StripeServer, running_stripe_server
from tests.test_pay_as_you_go import ADD_CARD, SET_DEFAULT, SETTINGS, START, gid
from tests.test_remote_control import eventually
from tests.test_tariffs import ASSIGN, _in_force_since, _meter, _status, create

BERLIN = ZoneInfo("Europe/Berlin")
APP_TOKEN = "mutation { createAppToken { token } }"
RECEIPTS = """
{ myReceipts(first: 5) { edges { node { number total net tax amountDue
    lines { description quantity amount } session { energyWh } } } } }"""
TARIFF = {
    "energyPerKwh": "39",
    "idlePerMinute": "10",
    "sessionFee": 50,
    "taxBasisPoints": 1900,
    "windows": [{"name": "night", "start": "22:00", "end": "06:00", "energyPerKwh": "29"}],
}


@pytest.fixture
def stripe_server() -> Iterator[StripeServer]:
    with running_stripe_server() as server:
        yield server


@pytest.fixture
async def stripe(stripe_server: StripeServer) -> AsyncIterator[StripeGateway]:
    gw = StripeGateway.from_settings(stripe_settings(stripe_server))
    yield gw
    await gw.aclose()


@pytest.fixture
async def server(api_server_factory: ApiServerFactory, stripe_server: StripeServer) -> ApiServer:
    return await api_server_factory(
        CHARGENET_STRIPE_API_KEY=API_KEY,
        CHARGENET_STRIPE_API_BASE=stripe_server.url,
        CHARGENET_STRIPE_IDEMPOTENCY_PREFIX="test",
    )


async def ok(http: httpx.AsyncClient, query: str, token: str | None, **variables: Any) -> Any:
    result = await gql(http, query, variables, token=token)
    assert not result.get("errors"), result
    return result["data"]


def last_evening() -> datetime:
    """21:30 in Berlin on the most recent evening that is over, as UTC."""
    day = (utcnow() - timedelta(days=1)).astimezone(BERLIN).date()
    return datetime.combine(day, time(21, 30), BERLIN).astimezone(ZoneInfo("UTC"))


class TestADriversFirstPaidSession:
    async def test_receipt_and_capture_match_the_hand_computed_price(
        self,
        server: ApiServer,
        engine: AsyncEngine,
        station: int,
        stripe_server: StripeServer,
        stripe: StripeGateway,
        durable: DurableWork,
        connect_charger: ChargerFactory,
    ) -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as http:
            # the operator: payment required, day 0.39/kWh, night (22:00–06:00) 0.29/kWh, idle
            # 0.10/min, 0.50 per session, prices including 19 % tax; in force since long before
            org = await make_org(engine)
            await ok(http, SETTINGS, OPERATOR_TOKEN, o=gid("Organization", org), policy="ALLOW")
            await ok(http, ASSIGN, OPERATOR_TOKEN, t=await create(http, org, "Standard", TARIFF))
            start = last_evening()
            await _in_force_since(engine, start - timedelta(days=1))

            # the driver signs up, confirms the email, saves a card and gets an app token
            await sign_up(http, "anna@example.com", "correct horse battery staple")
            verify = latest_token(server, "anna@example.com", "verify_email", "verify-email")
            verified = await gql(http, VERIFY_EMAIL, {"token": verify})
            pair = verified["data"]["verifyEmail"]
            token = pair["accessToken"]
            setup = (await ok(http, ADD_CARD, token, a="first-card"))["addPaymentMethod"]
            card = await app_confirms_card(stripe_server, setup["setupIntentId"], "pm_card_visa")
            await ok(http, SET_DEFAULT, token, pm=card)
            app_tag = (await ok(http, APP_TOKEN, token))["createAppToken"]["token"]

            # the driver scans the connector's code: the bank holds 50.00, the station starts
            cp = await connect_charger("CP-1", id_tags=[app_tag])
            cp.on_call = lambda action, _p: (
                {"status": "Accepted"} if action == "RemoteStartTransaction" else None
            )
            started = (await ok(http, START, token, qr="CP-1*1"))["startCharging"]
            assert started["outcome"] == "ACCEPTED"

            # 21:30–22:30 local: 23.4 kWh, evenly (11.7 before 22:00, 11.7 after); the car is
            # full at 22:30 and stays plugged in until 22:50
            at = {m: to_ocpp(start + timedelta(minutes=m)) for m in (0, 30, 60, 80)}
            begin = {"connectorId": 1, "idTag": app_tag, "meterStart": 100_000, "timestamp": at[0]}
            tx = int((await cp.call("StartTransaction", begin))["transactionId"])
            await cp.call("StatusNotification", _status("Charging", at[0]))
            await cp.call("MeterValues", _meter(tx, 111_700, at[30]))
            await cp.call("MeterValues", _meter(tx, 123_400, at[60]))
            await cp.call("StatusNotification", _status("SuspendedEV", at[60]))
            await cp.call("StopTransaction", {"transactionId": tx, "meterStop": 123_400, "timestamp": at[80]})

            # the worker prices the session and issues the receipt; the payment is captured
            assert await eventually(lambda: _receipted(engine), timeout=10)
            await pay_as_you_go.settle_due(engine, stripe)
            receipts = (await ok(http, RECEIPTS, token))["myReceipts"]["edges"]
            receipt = receipts[0]["node"]

        # by hand: 11.7 kWh × 39 = 456.3 → 456; 11.7 kWh × 29 = 339.3 → 339; 20 idle minutes
        # (night) × 10 = 200; session fee 50 → 1,045, of which 19 % tax: 1,045 − 1,045 / 1.19
        # = 1,045 − 878 = 167
        lines = {li["description"]: (li["quantity"], li["amount"]) for li in receipt["lines"]}
        assert lines == {
            "Energy": ("11.7", 456),
            "Energy (night)": ("11.7", 339),
            "Idle time (night)": ("20", 200),
            "Session fee": ("1", 50),
        }
        assert (receipt["total"], receipt["net"], receipt["tax"], receipt["amountDue"]) == (
            1_045,
            878,
            167,
            1_045,
        )
        assert receipt["session"]["energyWh"] == 23_400
        assert (stripe_server.counts["captures"], stripe_server.counts["captured_amount"]) == (1, 1_045)


async def _receipted(engine: AsyncEngine) -> bool:
    return bool(await fetch(engine, "SELECT id FROM invoice"))
