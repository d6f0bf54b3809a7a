"""Sponsored charging through the real API, gateway and worker: a sponsor pays (part of) the
sessions started where and when its sponsorship applies, the driver pays the rest, budgets are
never overspent under concurrency, and sponsors get a report and a monthly statement."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from api.billing.charges import charge_session
from api.billing.tariffs import Prices, Tariff, Window
from api.invoicing.months import month_bounds, month_containing
from api.sponsorships.reports import issue_last_months_statements
from api.sponsorships.rules import cover, energy_cap_reserve, in_window, parse_windows
from api.sponsorships.service import claim_on_start
from api.worker.service import DurableWork, scheduled_jobs
from api.worker.settings import WorkerSettings
from schema.db import session_factory
from schema.events import TransactionEnded, TransactionStarted
from schema.models import Transaction
from schema.sponsorship_models import Sponsorship, SponsorshipClaim
from schema.tariff_models import TariffAssignment, TariffVersion
from schema.timeutil import to_ocpp, utcnow
from tests.builders import ACCEPTED_TAGS, make_location, make_org, make_station
from tests.conftest import ApiServer, ChargerFactory
from tests.dbutil import fetch
from tests.graphql_client import gql
from tests.ocpp201 import T0, Charger201Factory, connect201, register, tx_event
from tests.test_access_matrix import build_world, gid
from tests.test_remote_control import eventually
from tests.test_tariffs import ASSIGN, OPERATOR_TOKEN, create, ok

__all__ = ["connect201"]  # the fixture, imported for pytest

CREATE_SPONSOR = """
mutation ($o: ID!, $name: String!) {
  createSponsor(input: {organizationId: $o, name: $name, contactEmail: "ads@mall.example"}) { id name } }"""
CREATE_SPONSORSHIP = """
mutation ($input: CreateSponsorshipInput!) { createSponsorship(input: $input) {
  id state budget remaining capDescription } }"""
UPDATE_SPONSORSHIP = """
mutation ($input: UpdateSponsorshipInput!) { updateSponsorship(input: $input) {
  state budget spent reserved remaining } }"""
END_SPONSORSHIP = "mutation ($id: ID!) { endSponsorship(id: $id) { state endedAt } }"
SPONSORSHIPS = """
{ sponsorships(first: 20) { edges { node {
  message state budget spent reserved remaining sessions energyWh sponsoredAmount impressions
  sponsor { name } } } } }"""
PRICE = """
query ($s: ID!, $c: Int!) { connectorTariff(stationId: $s, connectorId: $c) {
  tariffName sponsorship { message sponsorName capDescription } } }"""
PRICE_ONLY = "query ($s: ID!, $c: Int!) { connectorTariff(stationId: $s, connectorId: $c) { tariffName } }"
REPORT = """
query ($id: ID!, $month: String!) { sponsorshipReport(id: $id, month: $month) {
  month sessions energyWh amount impressions days { day sessions energyWh amount impressions } } }"""
ISSUE = """
mutation ($o: ID!, $month: String!) { issueSponsorStatements(organizationId: $o, month: $month) {
  month currency sessions energyWh amount impressions sponsor { name } lines { sessions amount } } }"""
SESSION_COST = """
query ($id: ID!) { transaction(id: $id) { cost {
  total sponsoredAmount driverAmount lines { label amount } } } }"""

MALL_MESSAGE = "Charging here is sponsored by Mall"


async def sponsor(http: httpx.AsyncClient, org: int, name: str = "Mall") -> str:
    data = await ok(http, CREATE_SPONSOR, o=gid("Organization", org), name=name)
    return str(data["createSponsor"]["id"])


async def sponsorship(http: httpx.AsyncClient, sponsor_id: str, **terms: Any) -> dict[str, Any]:
    terms.setdefault("message", MALL_MESSAGE)
    data = await ok(http, CREATE_SPONSORSHIP, input={"sponsorId": sponsor_id, **terms})
    return dict(data["createSponsorship"])


async def _in_force_since(engine: AsyncEngine, since: datetime) -> None:
    async with engine.begin() as conn:
        for model in (TariffVersion, TariffAssignment):
            await conn.execute(update(model).values(created_at=since))


def _meter(tx: int, wh: int, at: str) -> dict[str, Any]:
    value = {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    return {"connectorId": 1, "transactionId": tx, "meterValue": [{"timestamp": at, "sampledValue": [value]}]}


async def _claims(engine: AsyncEngine) -> list[dict[str, Any]]:
    return await fetch(
        engine,
        "SELECT transaction_id, reserved_amount, final_amount, state FROM sponsorship_claim ORDER BY id",
    )


async def _sponsorship_row(engine: AsyncEngine) -> dict[str, Any]:
    rows = await fetch(engine, "SELECT budget, spent, reserved, state FROM sponsorship ORDER BY id")
    return rows[0]


async def _session(engine: AsyncEngine, cp: Any, *, wh: int, base: datetime) -> int:
    """A real 1.6 session through the gateway, `wh` delivered over 20 minutes from `base`."""
    at = [to_ocpp(base + timedelta(minutes=m)) for m in (0, 20)]
    start = {"connectorId": 1, "idTag": ACCEPTED_TAGS[0], "meterStart": 10_000, "timestamp": at[0]}
    tx = int((await cp.call("StartTransaction", start))["transactionId"])

    async def claimed() -> bool:
        return bool(await fetch(engine, f"SELECT id FROM sponsorship_claim WHERE transaction_id = {tx}"))

    async def charged() -> bool:
        return bool(await fetch(engine, f"SELECT id FROM session_charge WHERE transaction_id = {tx}"))

    await cp.call("MeterValues", _meter(tx, 10_000 + wh, at[1]))
    await eventually(claimed, timeout=2)  # the start is handled before the end either way
    await cp.call("StopTransaction", {"transactionId": tx, "meterStop": 10_000 + wh, "timestamp": at[1]})
    assert await eventually(charged)
    return tx


async def _tariff(http: httpx.AsyncClient, engine: AsyncEngine, org: int, prices: dict[str, Any]) -> None:
    await ok(http, ASSIGN, t=await create(http, org, "Standard", prices))


async def _tariff_and_org(http: httpx.AsyncClient, engine: AsyncEngine) -> int:
    """A new organisation charging 40 ct/kWh."""
    org = await make_org(engine)
    await _tariff(http, engine, org, {"energyPerKwh": "40"})
    return org


class TestTheSponsorPaysUpToItsCap:
    async def test_a_money_cap_the_driver_pays_only_the_excess(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        station: int,
        durable: DurableWork,
        connect_charger: ChargerFactory,
    ) -> None:
        # given €0.40/kWh and a sponsor paying up to €3.00 of each session at the station's site
        org = await make_org(engine)
        await _tariff(http, engine, org, {"energyPerKwh": "40"})
        base = utcnow().replace(microsecond=0) - timedelta(minutes=40)
        await _in_force_since(engine, base - timedelta(hours=1))
        site = (await fetch(engine, f"SELECT location_id FROM charging_station WHERE id = {station}"))[0]
        created = await sponsorship(
            http,
            await sponsor(http, org),
            locationIds=[gid("Location", site["location_id"])],
            capAmount=300,
            budget=1_000,
            startsAt=(base - timedelta(hours=1)).isoformat(),
        )
        assert created["capDescription"] == "Up to €3.00 of your session is free"
        # when a 10 kWh session (€4.00) runs there
        tx = await _session(engine, await connect_charger("CP-1"), wh=10_000, base=base)
        # then the sponsor pays €3.00 and the driver €1.00, with the sponsor's line on the bill
        charge = await fetch(engine, "SELECT total, sponsor_amount, driver_amount FROM session_charge")
        assert charge == [{"total": 400, "sponsor_amount": 300, "driver_amount": 100}]
        cost = (await ok(http, SESSION_COST, id=gid("Transaction", tx)))["transaction"]["cost"]
        assert (cost["total"], cost["sponsoredAmount"], cost["driverAmount"]) == (400, 300, 100)
        assert cost["lines"] == [
            {"label": "Energy", "amount": 400},
            {"label": "Sponsored by Mall", "amount": -300},
        ]
        assert await _claims(engine) == [
            {"transaction_id": tx, "reserved_amount": 300, "final_amount": 300, "state": "settled"}
        ]
        assert await _sponsorship_row(engine) == {
            "budget": 1_000,
            "spent": 300,
            "reserved": 0,
            "state": "active",
        }
        events = await fetch(engine, "SELECT payload FROM outbox_event WHERE event_type = 'session.charged'")
        assert '"driver_amount": 100' in str(events[0]["payload"]).replace("'", '"')
        listed = (await ok(http, SPONSORSHIPS))["sponsorships"]["edges"][0]["node"]
        assert (listed["spent"], listed["remaining"], listed["sessions"], listed["energyWh"]) == (
            300,
            700,
            1,
            10_000,
        )
        assert listed["sponsor"] == {"name": "Mall"}

    async def test_a_kwh_cap_covers_the_first_kwh_at_the_sessions_average_price(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        station: int,
        durable: DurableWork,
        connect_charger: ChargerFactory,
    ) -> None:
        # given €0.40/kWh plus a €0.50 session fee, and the first 2 kWh sponsored
        org = await make_org(engine)
        await _tariff(http, engine, org, {"energyPerKwh": "40", "sessionFee": 50})
        base = utcnow().replace(microsecond=0) - timedelta(minutes=40)
        await _in_force_since(engine, base - timedelta(hours=1))
        created = await sponsorship(
            http,
            await sponsor(http, org),
            stationIds=[gid("Station", station)],
            capWh=2_000,
            budget=10_000,
            startsAt=(base - timedelta(hours=1)).isoformat(),
        )
        assert created["capDescription"] == "The first 2 kWh of your session are free"
        # when a 5 kWh session costs €2.50
        await _session(engine, await connect_charger("CP-1"), wh=5_000, base=base)
        # then the sponsor pays 2/5 of it (€1.00), having held at most 2 kWh at 40 ct + the fee
        charge = await fetch(engine, "SELECT total, sponsor_amount, driver_amount FROM session_charge")
        assert charge == [{"total": 250, "sponsor_amount": 100, "driver_amount": 150}]
        claims = await _claims(engine)
        assert [(c["reserved_amount"], c["final_amount"]) for c in claims] == [(130, 100)]
        assert await _sponsorship_row(engine) == {
            "budget": 10_000,
            "spent": 100,
            "reserved": 0,
            "state": "active",
        }

    async def test_a_session_without_a_price_releases_its_claim(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        station: int,
        durable: DurableWork,
        connect_charger: ChargerFactory,
    ) -> None:
        # given a free tariff (€0) and a sponsorship
        org = await make_org(engine)
        await _tariff(http, engine, org, {})
        base = utcnow().replace(microsecond=0) - timedelta(minutes=40)
        await _in_force_since(engine, base - timedelta(hours=1))
        await sponsorship(
            http,
            await sponsor(http, org),
            stationIds=[gid("Station", station)],
            capAmount=300,
            budget=300,
            startsAt=(base - timedelta(hours=1)).isoformat(),
        )
        # when a session holds the whole budget and then costs nothing
        await _session(engine, await connect_charger("CP-1"), wh=1_000, base=base)
        # then its claim is released and the budget is whole again
        assert [c["state"] for c in await _claims(engine)] == ["released"]
        assert await _sponsorship_row(engine) == {"budget": 300, "spent": 0, "reserved": 0, "state": "active"}
        charge = await fetch(engine, "SELECT total, sponsor_amount, driver_amount FROM session_charge")
        assert charge == [{"total": 0, "sponsor_amount": 0, "driver_amount": 0}]

    async def test_an_ocpp_201_session_is_sponsored_the_same_way(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        station: int,
        durable: DurableWork,
        connect201: Charger201Factory,
    ) -> None:
        # given €0.40/kWh and up to €3.00 sponsored at the station
        org = await make_org(engine)
        await _tariff(http, engine, org, {"energyPerKwh": "40"})
        await _in_force_since(engine, T0 - timedelta(hours=1))
        await sponsorship(
            http,
            await sponsor(http, org),
            stationIds=[gid("Station", station)],
            capAmount=300,
            budget=1_000,
            startsAt=(T0 - timedelta(hours=1)).isoformat(),
        )
        # when a 2.0.1 station reports an 11.5 kWh session (€4.60)
        cp = await connect201("CP-1")
        start = tx_event("Started", "TX-S", 0, 0, trigger="Authorized", token=ACCEPTED_TAGS[0])
        start["meterValue"] = [register(1_000, 0, "Transaction.Begin")]
        await cp.call("TransactionEvent", start)

        async def claimed() -> bool:
            return bool(await _claims(engine))

        assert await eventually(claimed)
        end = tx_event("Ended", "TX-S", 1, 45, meter=[register(12_500, 45, "Transaction.End")])
        await cp.call("TransactionEvent", end)

        async def charged() -> bool:
            return bool(await fetch(engine, "SELECT id FROM session_charge"))

        assert await eventually(charged)
        # then the sponsor pays €3.00 and the driver €1.60
        charge = await fetch(engine, "SELECT total, sponsor_amount, driver_amount FROM session_charge")
        assert charge == [{"total": 460, "sponsor_amount": 300, "driver_amount": 160}]


# -- claims at the start, through the worker's handler (the gateway adds nothing here) ----------


_keys = itertools.count()


async def _transactions(engine: AsyncEngine, station: int, n: int, started_at: datetime) -> list[int]:
    async with session_factory(engine)() as s:
        rows = [
            Transaction(
                station_id=station, connector_id=1, start_key=f"k-{next(_keys)}", started_at=started_at
            )
            for _ in range(n)
        ]
        s.add_all(rows)
        await s.commit()
        return [r.id or 0 for r in rows]


def _started(station: int, tx: int, at: datetime) -> TransactionStarted:
    return TransactionStarted(
        station_id=station,
        charge_point_id="CP-1",
        location_id=None,
        at=at,
        transaction_id=tx,
        connector_id=1,
        state="Active",
        id_tag=None,
        started_at=at,
        stopped_at=None,
        meter_start_wh=0,
        energy_wh=0,
        power_w=None,
        soc_percent=None,
        last_sample_at=None,
        stop_reason=None,
    )


async def _claim(engine: AsyncEngine, station: int, tx: int, at: datetime) -> None:
    async with engine.begin() as conn:
        await claim_on_start(conn, _started(station, tx, at))


class TestWhereAndWhen:
    async def test_only_sessions_starting_inside_a_window_at_a_named_place_are_sponsored(
        self, http: httpx.AsyncClient, engine: AsyncEngine, station: int
    ) -> None:
        # given a sponsorship at the station's site, weekdays 08:00–20:00 Berlin time
        org = await make_org(engine)
        site = (await fetch(engine, f"SELECT location_id FROM charging_station WHERE id = {station}"))[0]
        elsewhere = await make_station(
            engine, charge_point_id="CP-FAR", location_id=await make_location(engine)
        )
        await sponsorship(
            http,
            await sponsor(http, org),
            locationIds=[gid("Location", site["location_id"])],
            windows=[{"start": "08:00", "end": "20:00", "days": [0, 1, 2, 3, 4]}],
            capAmount=300,
            budget=10_000,
            startsAt="2026-01-01T00:00:00+00:00",
        )
        tuesday_noon = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)  # 12:00 in Berlin
        tuesday_evening = datetime(2026, 11, 24, 19, 30, tzinfo=UTC)  # 20:30 in Berlin
        saturday_noon = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
        inside, late, weekend = await _transactions(engine, station, 3, tuesday_noon)
        (far,) = await _transactions(engine, elsewhere, 1, tuesday_noon)
        # when sessions start inside the window, after it, on a Saturday and at another site
        await _claim(engine, station, inside, tuesday_noon)
        await _claim(engine, station, late, tuesday_evening)
        await _claim(engine, station, weekend, saturday_noon)
        await _claim(engine, elsewhere, far, tuesday_noon)
        # then only the first is sponsored; a redelivered start claims nothing more
        await _claim(engine, station, inside, tuesday_noon)
        assert [c["transaction_id"] for c in await _claims(engine)] == [inside]
        assert (await _sponsorship_row(engine))["reserved"] == 300


class TestTheBudgetIsNeverOverspent:
    async def test_twenty_concurrent_starts_against_five_caps_make_exactly_five_claims(
        self, http: httpx.AsyncClient, engine: AsyncEngine, station: int
    ) -> None:
        if engine.dialect.name != "postgresql":
            pytest.skip("concurrent writers: PostgreSQL (the worker serialises on SQLite's write lock)")
        # given a budget for exactly five €3.00 caps
        org = await make_org(engine)
        created = await sponsorship(
            http, await sponsor(http, org), stationIds=[gid("Station", station)], capAmount=300, budget=1_500
        )
        now = utcnow()
        txs = await _transactions(engine, station, 20, now)
        # when twenty sessions start at once, each in its own worker transaction
        await asyncio.gather(*(_claim(engine, station, tx, now) for tx in txs))
        # then five hold a full cap, the budget is fully reserved, and it takes no new claims
        claims = await _claims(engine)
        assert [c["reserved_amount"] for c in claims] == [300] * 5
        assert await _sponsorship_row(engine) == {
            "budget": 1_500,
            "spent": 0,
            "reserved": 1_500,
            "state": "exhausted",
        }
        # and a top-up lets the next session claim again
        more = await ok(http, UPDATE_SPONSORSHIP, input={"id": created["id"], "budgetIncrease": 150})
        assert (more["updateSponsorship"]["state"], more["updateSponsorship"]["remaining"]) == ("ACTIVE", 150)
        (late,) = await _transactions(engine, station, 1, now)
        await _claim(engine, station, late, now)
        # with less than a cap left, the session gets what is left
        assert [c["reserved_amount"] for c in await _claims(engine)][-1] == 150
        assert (await _sponsorship_row(engine))["state"] == "exhausted"

    async def test_concurrent_starts_share_a_budget_that_is_not_a_multiple_of_the_cap(
        self, http: httpx.AsyncClient, engine: AsyncEngine, station: int
    ) -> None:
        if engine.dialect.name != "postgresql":
            pytest.skip("concurrent writers: PostgreSQL (the worker serialises on SQLite's write lock)")
        # given €16.50: five full €3.00 caps and half of one
        org = await make_org(engine)
        await sponsorship(
            http, await sponsor(http, org), stationIds=[gid("Station", station)], capAmount=300, budget=1_650
        )
        now = utcnow()
        txs = await _transactions(engine, station, 20, now)
        # when twenty sessions start at once
        await asyncio.gather(*(_claim(engine, station, tx, now) for tx in txs))
        # then each claim saw the budget as the one before left it: five full caps and the rest
        assert sorted(c["reserved_amount"] for c in await _claims(engine)) == [150, 300, 300, 300, 300, 300]
        row = await _sponsorship_row(engine)
        assert (row["reserved"], row["state"]) == (1_650, "exhausted")

    async def test_an_ended_sponsorship_takes_no_claims_but_covers_those_it_has(
        self, http: httpx.AsyncClient, engine: AsyncEngine, station: int
    ) -> None:
        org = await make_org(engine)
        created = await sponsorship(
            http, await sponsor(http, org), stationIds=[gid("Station", station)], capAmount=300, budget=1_500
        )
        now = utcnow()
        first, second = await _transactions(engine, station, 2, now)
        await _claim(engine, station, first, now)
        ended = (await ok(http, END_SPONSORSHIP, id=created["id"]))["endSponsorship"]
        assert ended["state"] == "ENDED"
        await _claim(engine, station, second, now)
        assert [c["transaction_id"] for c in await _claims(engine)] == [first]
        # the first session ends without a tariff: its claim is released, the state stays ended
        async with engine.begin() as conn:
            await conn.execute(
                update(Transaction).where(Transaction.id == first).values(stopped_at=utcnow())  # type: ignore[arg-type]
            )
            await charge_session(conn, _ended(station, first, now))
        assert [c["state"] for c in await _claims(engine)] == ["released"]
        assert await _sponsorship_row(engine) == {
            "budget": 1_500,
            "spent": 0,
            "reserved": 0,
            "state": "ended",
        }


def _ended(station: int, tx: int, at: datetime) -> TransactionEnded:
    return TransactionEnded(
        station_id=station,
        charge_point_id="CP-1",
        location_id=None,
        at=at,
        transaction_id=tx,
        connector_id=1,
        state="Completed",
        id_tag=None,
        started_at=at,
        stopped_at=at,
        meter_start_wh=0,
        energy_wh=0,
        power_w=None,
        soc_percent=None,
        last_sample_at=None,
        stop_reason=None,
    )


class TestSponsorsSeeTheirReach:
    async def test_impressions_are_counted_when_apps_show_the_message(
        self, http: httpx.AsyncClient, engine: AsyncEngine, station: int
    ) -> None:
        org = await make_org(engine)
        await _tariff(http, engine, org, {"energyPerKwh": "40"})
        created = await sponsorship(
            http, await sponsor(http, org), stationIds=[gid("Station", station)], capAmount=300, budget=1_500
        )
        # when two app screens show the price with the sponsorship, and one without it
        for _ in range(2):
            shown = (await ok(http, PRICE, token=None, s=gid("Station", station), c=1))["connectorTariff"]
            assert shown["sponsorship"] == {
                "message": MALL_MESSAGE,
                "sponsorName": "Mall",
                "capDescription": "Up to €3.00 of your session is free",
            }
        await ok(http, PRICE_ONLY, token=None, s=gid("Station", station), c=1)
        # then two impressions are counted for today
        today = utcnow().date()
        report = (await ok(http, REPORT, id=created["id"], month=f"{today:%Y-%m}"))["sponsorshipReport"]
        assert report["impressions"] == 2
        assert report["days"] == [
            {"day": today.isoformat(), "sessions": 0, "energyWh": 0, "amount": 0, "impressions": 2}
        ]
        # and an exhausted sponsorship is not advertised
        async with engine.begin() as conn:
            await conn.execute(update(Sponsorship).values(spent=1_500, state="exhausted"))
        shown = (await ok(http, PRICE, token=None, s=gid("Station", station), c=1))["connectorTariff"]
        assert shown["sponsorship"] is None


async def _settled_at(engine: AsyncEngine, tx: int, at: datetime) -> None:
    """Claims settle when the worker charges the session (now); put one back where its session
    ended, as if charged then."""
    async with engine.begin() as conn:
        await conn.execute(
            update(SponsorshipClaim).where(SponsorshipClaim.transaction_id == tx).values(settled_at=at)  # type: ignore[arg-type]
        )


class TestReportsAndStatements:
    async def test_the_month_adds_up_in_the_report_and_the_statement_is_issued_once(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        station: int,
        durable: DurableWork,
        connect_charger: ChargerFactory,
    ) -> None:
        # given two sponsored sessions last month (€4.00 and €2.00 at 40 ct, the sponsor paying up
        # to €3.00), on its last day
        org = await _tariff_and_org(http, engine)
        this_month = month_containing(utcnow())
        base = month_bounds(this_month)[0] - timedelta(hours=14)
        month = month_containing(base)
        await _in_force_since(engine, base - timedelta(hours=1))
        created = await sponsorship(
            http,
            await sponsor(http, org),
            stationIds=[gid("Station", station)],
            capAmount=300,
            budget=10_000,
            startsAt=(base - timedelta(hours=1)).isoformat(),
        )
        cp = await connect_charger("CP-1")
        for wh, start in ((10_000, base), (5_000, base + timedelta(minutes=30))):
            tx = await _session(engine, cp, wh=wh, base=start)
            await _settled_at(engine, tx, start + timedelta(minutes=20))
        # and the message shown today, this month
        await ok(http, PRICE, token=None, s=gid("Station", station), c=1)
        # when last month's report is read and its statements issued (twice)
        report = (await ok(http, REPORT, id=created["id"], month=month))["sponsorshipReport"]
        first = (await ok(http, ISSUE, o=gid("Organization", org), month=month))["issueSponsorStatements"]
        again = (await ok(http, ISSUE, o=gid("Organization", org), month=month))["issueSponsorStatements"]
        # then both say two sessions, 15 kWh, €5.00 (3.00 + 2.00), on one day
        assert (report["sessions"], report["energyWh"], report["amount"], report["impressions"]) == (
            2,
            15_000,
            500,
            0,
        )
        assert report["days"] == [
            {
                "day": base.date().isoformat(),
                "sessions": 2,
                "energyWh": 15_000,
                "amount": 500,
                "impressions": 0,
            }
        ]
        assert first == again
        assert first == [
            {
                "month": month,
                "currency": "EUR",
                "sessions": 2,
                "energyWh": 15_000,
                "amount": 500,
                "impressions": 0,
                "sponsor": {"name": "Mall"},
                "lines": [{"sessions": 2, "amount": 500}],
            }
        ]
        assert len(await fetch(engine, "SELECT id FROM sponsor_statement")) == 1
        # and this month's live report has today's impression and none of last month's sessions
        live = (await ok(http, REPORT, id=created["id"], month=this_month))["sponsorshipReport"]
        assert (live["sessions"], live["impressions"]) == (0, 1)
        # a month without activity has an empty report and no statement
        empty = (await ok(http, REPORT, id=created["id"], month="2020-01"))["sponsorshipReport"]
        assert (empty["sessions"], empty["days"]) == (0, [])
        quiet = await ok(http, ISSUE, o=gid("Organization", org), month="2020-01")
        assert quiet["issueSponsorStatements"] == []

    async def test_a_month_not_over_yet_has_no_statement(
        self, http: httpx.AsyncClient, engine: AsyncEngine, station: int
    ) -> None:
        # given a sponsorship whose message was shown today
        org = await _tariff_and_org(http, engine)
        created = await sponsorship(
            http, await sponsor(http, org), stationIds=[gid("Station", station)], capAmount=300, budget=1_500
        )
        await ok(http, PRICE, token=None, s=gid("Station", station), c=1)
        this_month = month_containing(utcnow())
        following = month_containing(month_bounds(this_month)[1])
        # when statements are asked for this month, or the next
        for month in (this_month, following):
            result = await gql(
                http, ISSUE, {"o": gid("Organization", org), "month": month}, token=OPERATOR_TOKEN
            )
            # then they are refused: the month is not over, its figures are not final
            (error,) = result["errors"]
            assert error["extensions"]["code"] == "INVALID_INPUT", result
            assert f"{month} is not over yet" in error["message"]
        assert await fetch(engine, "SELECT id FROM sponsor_statement") == []
        # while this month's report shows its figures so far
        live = (await ok(http, REPORT, id=created["id"], month=this_month))["sponsorshipReport"]
        assert live["impressions"] == 1

    async def test_the_worker_issues_last_months_statements_once(
        self, http: httpx.AsyncClient, engine: AsyncEngine, station: int
    ) -> None:
        # given a session the sponsor paid €2.00 for, charged on 31 October
        org = await make_org(engine)
        await sponsorship(
            http, await sponsor(http, org), stationIds=[gid("Station", station)], capAmount=300, budget=1_500
        )
        (tx,) = await _transactions(engine, station, 1, datetime(2026, 10, 31, 20, 0, tzinfo=UTC))
        async with engine.begin() as conn:
            await conn.execute(
                insert(SponsorshipClaim).values(
                    sponsorship_id=await _first_sponsorship_id(engine),
                    transaction_id=tx,
                    reserved_amount=300,
                    final_amount=200,
                    energy_wh=5_000,
                    state="settled",
                    created_at=datetime(2026, 10, 31, 20, 0, tzinfo=UTC),
                    settled_at=datetime(2026, 10, 31, 22, 0, tzinfo=UTC),
                )
            )
        # when the daily job runs in November, twice
        november = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
        assert "sponsor-statements" in {j.name for j in scheduled_jobs(engine, WorkerSettings(), None)}
        assert await issue_last_months_statements(engine, now=november) == 1
        assert await issue_last_months_statements(engine, now=november) == 1
        # then October's statement exists once, with the session
        rows = await fetch(engine, "SELECT month, sessions, energy_wh, amount FROM sponsor_statement")
        assert rows == [{"month": "2026-10", "sessions": 1, "energy_wh": 5_000, "amount": 200}]
        # and, its session having no bill to take the tax rate from, it is not invoiced: an
        # invoice never disagrees with its statement
        assert await fetch(engine, "SELECT id FROM invoice") == []


async def _first_sponsorship_id(engine: AsyncEngine) -> int:
    return int((await fetch(engine, "SELECT id FROM sponsorship ORDER BY id"))[0]["id"])


class TestOtherOrganisations:
    async def test_cannot_see_or_change_a_sponsorship(
        self, http: httpx.AsyncClient, engine: AsyncEngine, station: int, api_server: ApiServer
    ) -> None:
        keys = api_server.app.state.auth.keys
        a, b = await build_world(engine, keys), await build_world(engine, keys)
        their_sponsor = await sponsor(http, b.org)
        theirs = await sponsorship(
            http,
            their_sponsor,
            stationIds=[gid("Station", b.station)],
            capAmount=300,
            budget=1_500,
        )
        spy = a.tokens["finance"]
        listed = await ok(http, "{ sponsorships(first: 50) { edges { node { id } } } }", token=spy)
        # A's finance sees A's own sponsorship (build_world made one), never B's
        assert [e["node"]["id"] for e in listed["sponsorships"]["edges"]] == [
            gid("Sponsorship", a.sponsorship)
        ]
        report = await ok(http, REPORT, token=spy, id=theirs["id"], month="2026-11")
        assert report["sponsorshipReport"] is None
        for query, variables in (
            (UPDATE_SPONSORSHIP, {"input": {"id": theirs["id"], "budgetIncrease": 1}}),
            (END_SPONSORSHIP, {"id": theirs["id"]}),
            (
                CREATE_SPONSORSHIP,
                {"input": {"sponsorId": their_sponsor, "message": "x", "budget": 1, "capAmount": 1}},
            ),
        ):
            result = await gql(http, query, variables, token=spy)
            assert result["errors"][0]["extensions"]["code"] == "NOT_FOUND", result
        issued = await gql(http, ISSUE, {"o": gid("Organization", b.org), "month": "2026-11"}, token=spy)
        assert issued["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        rows = await fetch(engine, "SELECT budget, state FROM sponsorship ORDER BY id DESC")
        assert rows[0] == {"budget": 1_500, "state": "active"}  # B's own, unchanged
        assert len(rows) == 3  # A's, B's from the world, and B's above: the spy created nothing


class TestTheRules:
    def test_an_energy_cap_reserves_its_most_expensive_kwh_and_covers_its_share(self) -> None:
        peak = Window(name="peak", start=time(17), end=time(20), energy_per_kwh=Decimal("55.5"))
        tariff = Tariff(
            currency="EUR",
            base=Prices(energy_per_kwh=Decimal(40)),
            windows=(peak,),
            session_fee=50,
            tax_basis_points=1900,
            prices_include_tax=False,
        )
        # 3 kWh at 55.5 ct = 166.5 → 167, + 50 fee = 217, + 19 % tax = 258.23 → 259
        assert energy_cap_reserve(3_000, tariff) == 259
        assert energy_cap_reserve(3_000, None) == 0
        assert cover(total=1_000, energy_wh=10_000, reserved=259, cap_wh=3_000) == 259  # bounded
        assert cover(total=1_000, energy_wh=10_000, reserved=500, cap_wh=3_000) == 300
        assert cover(total=1_000, energy_wh=2_000, reserved=500, cap_wh=3_000) == 500
        assert cover(total=0, energy_wh=2_000, reserved=500, cap_wh=None) == 0

    def test_a_window_past_midnight_belongs_to_the_day_it_starts(self) -> None:
        friday_night = parse_windows([{"start": "22:00", "end": "06:00", "days": [4]}])
        saturday_3am = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)  # 03:00 in Berlin
        sunday_3am = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
        assert in_window(friday_night, saturday_3am, "Europe/Berlin")
        assert not in_window(friday_night, sunday_3am, "Europe/Berlin")
        assert in_window((), sunday_3am, "Europe/Berlin")
