"""Membership plans: billing staff create them, every app lists them, members get the plan's
own tariffs and its benefits (included energy, a discount) on each session's bill."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from api.worker.service import DurableWork
from schema.db import session_factory
from schema.plan_models import PlanSubscription
from schema.timeutil import to_ocpp, utcnow
from tests.account_builders import give_token, make_user, sign_in
from tests.builders import make_org
from tests.conftest import OPERATOR_TOKEN, ApiServer, ChargerFactory
from tests.dbutil import fetch
from tests.graphql_client import gql
from tests.test_access_matrix import gid
from tests.test_remote_control import eventually
from tests.test_tariffs import ASSIGN, PRICE, _in_force_since, _meter, _status, create, ok

CREATE_PLAN = """
mutation ($o: ID!, $name: String!, $fee: Int!, $kwh: Decimal, $bp: Int) {
  createMembershipPlan(input: {organizationId: $o, name: $name, monthlyFee: $fee, includedKwh: $kwh,
                               discountBasisPoints: $bp}) { id name monthlyFeeFormatted includedKwh } }"""
PLANS = "query ($o: ID!) { membershipPlans(organizationId: $o) { name monthlyFee currency } }"
ARCHIVE_PLAN = "mutation ($p: ID!) { archiveMembershipPlan(id: $p) { archivedAt } }"
MINE = "{ myMemberships { plan { name } status cancelAtPeriodEnd } }"
ASSIGN_PLAN = """
mutation ($t: ID!, $p: ID!) { assignTariff(input: {tariffId: $t, planId: $p}) { id } }"""
MEMBER_TAG = "MEMBER-CARD-1"


async def subscribe(engine: AsyncEngine, *, user_id: int, plan: str, org: int, since: datetime) -> int:
    """An active membership, as Stripe's subscription webhook leaves it."""
    async with session_factory(engine)() as s:
        row = PlanSubscription(
            user_id=user_id,
            plan_id=int(_pk(plan)),
            organization_id=org,
            status="active",
            current_period_start=since,
            current_period_end=since + timedelta(days=30),
        )
        s.add(row)
        await s.commit()
        return row.id or 0


def _pk(global_id: str) -> str:
    return base64.b64decode(global_id).decode().split(":", 1)[1]


class TestPlans:
    async def test_created_listed_for_every_app_and_archived(
        self, http: httpx.AsyncClient, engine: AsyncEngine
    ) -> None:
        org = await make_org(engine)
        plan = (
            await ok(http, CREATE_PLAN, o=gid("Organization", org), name="Plus", fee=999, kwh="50", bp=1000)
        )["createMembershipPlan"]
        assert (plan["monthlyFeeFormatted"], plan["includedKwh"]) == ("€9.99", "50")
        listed = (await ok(http, PLANS, token=None, o=gid("Organization", org)))["membershipPlans"]
        assert listed == [{"name": "Plus", "monthlyFee": 999, "currency": "EUR"}]
        again = await gql(
            http, CREATE_PLAN, {"o": gid("Organization", org), "name": "Plus", "fee": 1}, token=OPERATOR_TOKEN
        )
        assert again["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
        await ok(http, ARCHIVE_PLAN, p=plan["id"])
        assert (await ok(http, PLANS, token=None, o=gid("Organization", org)))["membershipPlans"] == []


class TestMembersPrices:
    async def test_members_get_the_plan_tariff_others_the_general_one(
        self, http: httpx.AsyncClient, engine: AsyncEngine, api_server: ApiServer, station: int
    ) -> None:
        org = await make_org(engine)
        plan = (await ok(http, CREATE_PLAN, o=gid("Organization", org), name="Plus", fee=999))[
            "createMembershipPlan"
        ]
        await ok(http, ASSIGN, t=await create(http, org, "General", {"energyPerKwh": "49"}))
        members_only = await create(http, org, "Members", {"energyPerKwh": "29"})
        await ok(http, ASSIGN_PLAN, t=members_only, p=plan["id"])
        user = await make_user(engine, email="member@example.com")
        await subscribe(engine, user_id=user, plan=plan["id"], org=org, since=utcnow() - timedelta(days=1))
        token = (await sign_in(engine, api_server.app.state.auth.keys, user_id=user)).access_token
        variables = {"s": gid("Station", station), "c": 1}
        seen = (await ok(http, PRICE, token=token, **variables))["connectorTariff"]
        assert (seen["tariffName"], seen["prices"]["summary"]) == ("Members", "€0.29/kWh")
        anonymous = (await ok(http, PRICE, token=None, **variables))["connectorTariff"]
        assert anonymous["tariffName"] == "General"
        mine = (await ok(http, MINE, token=token))["myMemberships"]
        assert mine == [{"plan": {"name": "Plus"}, "status": "active", "cancelAtPeriodEnd": False}]


class TestBenefitsOnTheBill:
    async def test_included_energy_is_used_up_across_sessions_then_the_discount_applies(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        station: int,
        durable: DurableWork,
        connect_charger: ChargerFactory,
    ) -> None:
        # given a member with 8 kWh included and 10 % off, and a 40 ct/kWh tariff
        org = await make_org(engine)
        plan = (
            await ok(http, CREATE_PLAN, o=gid("Organization", org), name="Plus", fee=999, kwh="8", bp=1000)
        )["createMembershipPlan"]
        await ok(http, ASSIGN, t=await create(http, org, "General", {"energyPerKwh": "40"}))
        base = utcnow().replace(microsecond=0) - timedelta(hours=2)
        await _in_force_since(engine, base - timedelta(hours=1))
        user = await make_user(engine, email="member@example.com")
        await give_token(engine, user_id=user, token=MEMBER_TAG, organization_id=org)
        await subscribe(engine, user_id=user, plan=plan["id"], org=org, since=base - timedelta(days=1))
        cp = await connect_charger("CP-1", id_tags=[MEMBER_TAG])
        # when two 5 kWh sessions end
        for n, start in enumerate((0, 30), start=1):
            await _session(cp, base, start, 10_000 * n)
            assert await eventually(lambda n=n: _charges(engine, n))
        rows = await fetch(engine, "SELECT total, lines FROM session_charge ORDER BY id")
        # then the first is free (5 of the 8 kWh), the second has 3 kWh free and 10 % off the rest
        assert [r["total"] for r in rows] == [0, 72]  # 200 − 120 = 80, − 8 = 72
        used = await fetch(engine, "SELECT used_wh FROM plan_usage")
        assert used == [{"used_wh": 8_000}]


async def _session(cp: Any, base: datetime, minutes: int, meter_start: int) -> None:
    at = [to_ocpp(base + timedelta(minutes=minutes + m)) for m in (0, 20)]
    start = {"connectorId": 1, "idTag": MEMBER_TAG, "meterStart": meter_start, "timestamp": at[0]}
    tx = (await cp.call("StartTransaction", start))["transactionId"]
    await cp.call("StatusNotification", _status("Charging", at[0]))
    await cp.call("MeterValues", _meter(tx, meter_start + 5_000, at[1]))
    await cp.call(
        "StopTransaction", {"transactionId": tx, "meterStop": meter_start + 5_000, "timestamp": at[1]}
    )


async def _charges(engine: AsyncEngine, n: int) -> bool:
    return len(await fetch(engine, "SELECT id FROM session_charge")) >= n
