"""Tariffs through the real API: created and versioned by operators, assigned at the right
scope (most specific wins), shown to drivers with an estimate, and frozen on each session at
its start by the worker (a later edit never changes a running or past session's prices)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from api.billing.charges import charge_session
from api.worker.service import DurableWork
from schema.bus import InProcessBus
from schema.commands import RemoteStart
from schema.db import session_factory
from schema.events import event_from_dict
from schema.models import Organization
from schema.tariff_models import TariffAssignment, TariffVersion
from schema.timeutil import to_ocpp, utcnow
from tests.builders import ACCEPTED_TAGS, make_location, make_org, make_station
from tests.conftest import OPERATOR_TOKEN, ApiServer, ChargerFactory
from tests.dbutil import fetch
from tests.graphql_client import GraphQLWS, gql
from tests.test_access_matrix import gid
from tests.test_remote_control import eventually

CREATE = """
mutation ($o: ID!, $name: String!, $prices: TariffPricesInput!) {
  createTariff(input: {organizationId: $o, name: $name, prices: $prices}) {
    id name
    currentVersion { version prices { summary currency energyPerKwh windows { name start end } } } } }"""
UPDATE = """
mutation ($t: ID!, $prices: TariffPricesInput!) { updateTariffPrices(input: {tariffId: $t, prices: $prices}) {
  versions { version prices { energyPerKwh } } } }"""
ASSIGN = """
mutation ($t: ID!, $l: ID, $s: ID, $c: Int) {
  assignTariff(input: {tariffId: $t, locationId: $l, stationId: $s, connectorId: $c}) {
    id scope removedAt } }"""
UNASSIGN = "mutation ($a: ID!) { unassignTariff(id: $a) { removedAt } }"
ARCHIVE = "mutation ($t: ID!) { archiveTariff(id: $t) { archivedAt } }"
PRICE = """
query ($s: ID!, $c: Int!) { connectorTariff(stationId: $s, connectorId: $c) {
  tariffName version prices { summary currency } } }"""
ESTIMATE = """
query ($s: ID!, $c: Int!, $kwh: Decimal!, $min: Float!, $idle: Float, $at: DateTime) {
  estimateCost(input: {stationId: $s, connectorId: $c, energyKwh: $kwh, chargingMinutes: $min,
                       idleMinutes: $idle, startAt: $at}) {
    currency total totalFormatted net tax lines { component label quantity unit unitPrice amount } } }"""
TARIFFS = "{ tariffs(first: 20) { edges { node { name assignments { scope connectorId } } } } }"

SIMPLE = {"energyPerKwh": "39", "idlePerMinute": "10", "idleGraceMinutes": 15}


async def ok(
    http: httpx.AsyncClient, query: str, token: str | None = OPERATOR_TOKEN, **variables: Any
) -> Any:
    result = await gql(http, query, variables, token=token)
    assert not result.get("errors"), result
    return result["data"]


async def create(http: httpx.AsyncClient, org: int, name: str, prices: dict[str, Any]) -> str:
    data = await ok(http, CREATE, o=gid("Organization", org), name=name, prices=prices)
    return str(data["createTariff"]["id"])


async def price_at(http: httpx.AsyncClient, station: int, connector: int) -> str | None:
    found = (await ok(http, PRICE, token=None, s=gid("Station", station), c=connector))["connectorTariff"]
    return None if found is None else str(found["tariffName"])


class TestOperatorsDefineTariffs:
    async def test_a_tariff_with_a_night_window_reads_back_in_words(
        self, http: httpx.AsyncClient, engine: AsyncEngine
    ) -> None:
        org = await make_org(engine)
        prices = {
            **SIMPLE,
            "windows": [{"name": "night", "start": "22:00", "end": "06:00", "energyPerKwh": "29"}],
        }
        data = await ok(http, CREATE, o=gid("Organization", org), name="Standard", prices=prices)
        version = data["createTariff"]["currentVersion"]
        assert version["version"] == 1
        assert version["prices"]["summary"] == (
            "€0.39/kWh, €0.10/min idle after 15 min, night (22:00–06:00): €0.29/kWh"
        )
        assert version["prices"]["windows"] == [{"name": "night", "start": "22:00", "end": "06:00"}]

    @pytest.mark.parametrize(
        "prices",
        [
            {"energyPerKwh": "-1"},
            {"energyPerKwh": "0.00001"},
            {"taxBasisPoints": 20_000},
            {"windows": [{"name": "x", "start": "25:00", "end": "06:00"}]},
            {"minPrice": 500, "maxPrice": 100},
        ],
    )
    async def test_meaningless_prices_are_refused(
        self, http: httpx.AsyncClient, engine: AsyncEngine, prices: dict[str, Any]
    ) -> None:
        org = await make_org(engine)
        result = await gql(
            http,
            CREATE,
            {"o": gid("Organization", org), "name": "Bad", "prices": prices},
            token=OPERATOR_TOKEN,
        )
        assert result["errors"][0]["extensions"]["code"] == "INVALID_INPUT"

    async def test_an_edit_is_a_new_version_and_names_are_unique(
        self, http: httpx.AsyncClient, engine: AsyncEngine
    ) -> None:
        org = await make_org(engine)
        tariff = await create(http, org, "Standard", SIMPLE)
        data = await ok(http, UPDATE, t=tariff, prices={**SIMPLE, "energyPerKwh": "45"})
        assert [
            (v["version"], v["prices"]["energyPerKwh"]) for v in data["updateTariffPrices"]["versions"]
        ] == [
            (1, "39"),
            (2, "45"),
        ]
        again = await gql(
            http,
            CREATE,
            {"o": gid("Organization", org), "name": "Standard", "prices": SIMPLE},
            token=OPERATOR_TOKEN,
        )
        assert again["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


class TestTheMostSpecificTariffWins:
    async def test_connector_then_station_then_location_then_organisation(
        self, http: httpx.AsyncClient, engine: AsyncEngine
    ) -> None:
        org = await make_org(engine)
        site = await make_location(engine, name="Mall")
        here = await make_station(engine, charge_point_id="CP-A", location_id=site)
        neighbour = await make_station(engine, charge_point_id="CP-B", location_id=site)
        elsewhere = await make_station(engine, charge_point_id="CP-C")
        # nothing assigned: no price
        assert await price_at(http, here, 1) is None
        ids = {n: await create(http, org, n, SIMPLE) for n in ("Org", "Site", "Station", "Fast plug")}
        await ok(http, ASSIGN, t=ids["Org"])
        await ok(http, ASSIGN, t=ids["Site"], l=gid("Location", site))
        await ok(http, ASSIGN, t=ids["Station"], s=gid("Station", here))
        plug = (await ok(http, ASSIGN, t=ids["Fast plug"], s=gid("Station", here), c=2))["assignTariff"]
        assert plug["scope"] == "CONNECTOR"
        assert [await price_at(http, here, 2), await price_at(http, here, 1)] == ["Fast plug", "Station"]
        assert [await price_at(http, neighbour, 1), await price_at(http, elsewhere, 1)] == ["Site", "Org"]
        # ending the connector's assignment falls back to the station's
        await ok(http, UNASSIGN, a=plug["id"])
        assert await price_at(http, here, 2) == "Station"
        # an archived tariff applies nowhere: the location's takes over
        await ok(http, ARCHIVE, t=ids["Station"])
        assert await price_at(http, here, 1) == "Site"
        listed = (await ok(http, TARIFFS))["tariffs"]["edges"]
        assert {e["node"]["name"] for e in listed} == {"Org", "Site", "Fast plug"}  # archived ones are hidden

    async def test_assigning_again_at_a_scope_replaces_the_tariff_there(
        self, http: httpx.AsyncClient, engine: AsyncEngine, station: int
    ) -> None:
        org = await make_org(engine)
        first, second = await create(http, org, "First", SIMPLE), await create(http, org, "Second", SIMPLE)
        await ok(http, ASSIGN, t=first, s=gid("Station", station))
        await ok(http, ASSIGN, t=second, s=gid("Station", station))
        assert await price_at(http, station, 1) == "Second"
        rows = await fetch(engine, "SELECT tariff_id, removed_at FROM tariff_assignment ORDER BY id")
        assert [r["removed_at"] is None for r in rows] == [False, True]

    async def test_another_organisations_station_cannot_get_the_tariff(
        self, http: httpx.AsyncClient, engine: AsyncEngine, station: int
    ) -> None:
        other = await _other_org(engine)
        tariff = await create(http, other, "Theirs", SIMPLE)
        result = await gql(http, ASSIGN, {"t": tariff, "s": gid("Station", station)}, token=OPERATOR_TOKEN)
        assert result["errors"][0]["extensions"]["code"] == "NOT_FOUND"


class TestDriversSeeThePrice:
    async def test_an_estimate_across_the_night_boundary_with_idle_time(
        self, http: httpx.AsyncClient, engine: AsyncEngine, station: int
    ) -> None:
        # the station is in Berlin (UTC+1 in November): night starts at 21:00 UTC
        org = await make_org(engine)
        prices = {
            **SIMPLE,
            "taxBasisPoints": 1900,
            "windows": [{"name": "night", "start": "22:00", "end": "06:00", "energyPerKwh": "29"}],
        }
        await ok(http, ASSIGN, t=await create(http, org, "Standard", prices))
        data = await ok(
            http,
            ESTIMATE,
            token=None,
            s=gid("Station", station),
            c=1,
            kwh="20",
            min=120,
            idle=25,
            at="2026-11-24T20:00:00+00:00",
        )
        estimate = data["estimateCost"]
        lines = {li["label"]: (li["quantity"], li["amount"]) for li in estimate["lines"]}
        # 10 kWh by day at 39, 10 kWh by night at 29, 10 idle minutes after the 15-minute grace
        assert lines == {
            "Energy": ("10", 390),
            "Energy (night)": ("10", 290),
            "Idle time (night)": ("10", 100),
        }
        assert (estimate["total"], estimate["totalFormatted"], estimate["net"], estimate["tax"]) == (
            780,
            "€7.80",
            655,
            125,
        )

    async def test_no_tariff_no_estimate(self, http: httpx.AsyncClient, station: int) -> None:
        result = await gql(http, ESTIMATE, {"s": gid("Station", station), "c": 1, "kwh": "1", "min": 10})
        assert result["errors"][0]["extensions"]["code"] == "NOT_FOUND"


class TestSessionsKeepTheirPrice:
    async def test_a_session_keeps_the_version_in_force_at_its_start(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        station: int,
        durable: DurableWork,
        connect_charger: ChargerFactory,
        bus: InProcessBus,
    ) -> None:
        org = await make_org(engine)
        tariff = await create(http, org, "Standard", SIMPLE)
        await ok(http, ASSIGN, t=tariff)
        charger = await connect_charger("CP-1", speed=60, connectors=[22_000, 22_000])
        # a session starts under version 1
        assert (
            await bus.request("CP-1", RemoteStart(id_tag=ACCEPTED_TAGS[0], connector_id=1), timeout=5)
        ).accepted
        assert await eventually(lambda: _frozen(engine))
        # the price changes while it runs
        await ok(http, UPDATE, t=tariff, prices={**SIMPLE, "energyPerKwh": "99"})
        # a second session, started after the change, gets version 2; the first keeps version 1
        assert (
            await bus.request("CP-1", RemoteStart(id_tag=ACCEPTED_TAGS[1], connector_id=2), timeout=5)
        ).accepted
        assert await eventually(lambda: _frozen(engine, 2))
        rows = await fetch(
            engine,
            "SELECT t.connector_id, v.version FROM charging_transaction t "
            "JOIN tariff_version v ON v.id = t.tariff_version_id ORDER BY t.id",
        )
        assert [(r["connector_id"], r["version"]) for r in rows] == [(1, 1), (2, 2)]
        assert charger.connectors[1].transaction_id is not None


async def _frozen(engine: AsyncEngine, n: int = 1) -> bool:
    rows = await fetch(engine, "SELECT id FROM charging_transaction WHERE tariff_version_id IS NOT NULL")
    return len(rows) >= n


async def _other_org(engine: AsyncEngine) -> int:
    async with session_factory(engine)() as s:
        org = Organization(name="Other", slug="other")
        s.add(org)
        await s.commit()
        return org.id or 0


TX_UPDATED = """
subscription ($id: ID!) { transactionUpdated(transactionId: $id) {
  state energyWh cost { total lines { label amount } } } }"""
SESSION_COST = "query ($id: ID!) { transaction(id: $id) { cost { total lines { label quantity amount } } } }"


class TestTheCostRisesLive:
    async def test_each_reading_reprices_and_the_end_prices_idle_time(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        api_server: ApiServer,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        # given €0.40/kWh and €0.10 per idle minute at the station's organisation
        org = await make_org(engine)
        await ok(
            http, ASSIGN, t=await create(http, org, "Standard", {"energyPerKwh": "40", "idlePerMinute": "10"})
        )
        base = utcnow().replace(microsecond=0) - timedelta(minutes=40)
        await _in_force_since(engine, base - timedelta(hours=1))
        cp = await connect_charger("CP-1")

        def at(minutes: int) -> str:
            return to_ocpp(base + timedelta(minutes=minutes))

        start = {"connectorId": 1, "idTag": ACCEPTED_TAGS[0], "meterStart": 10_000, "timestamp": at(0)}
        tx = (await cp.call("StartTransaction", start))["transactionId"]
        await cp.call("StatusNotification", _status("Charging", at(0)))
        client = await GraphQLWS.open(
            api_server.ws_url, payload={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        )
        sid = await client.subscribe(TX_UPDATED, {"id": gid("Transaction", tx)})
        first = (await client.next_payload())["transactionUpdated"]
        assert first["cost"]["total"] == 0
        # when the meter rises, each reading reprices the session: 1, 2.5 and 4 kWh at 40 ct
        for minutes, register, cost in ((5, 11_000, 40), (10, 12_500, 100), (15, 14_000, 160)):
            await cp.call("MeterValues", _meter(tx, register, at(minutes)))
            live = (await client.next_payload())["transactionUpdated"]
            assert (live["energyWh"], live["cost"]["total"]) == (register - 10_000, cost)
        # and the car finishes at 20 min (5 kWh) but stays plugged in until 30 min
        await cp.call("MeterValues", _meter(tx, 15_000, at(20)))
        await client.next_payload()
        await cp.call("StatusNotification", _status("SuspendedEV", at(20)))
        await cp.call("StopTransaction", {"transactionId": tx, "meterStop": 15_000, "timestamp": at(30)})
        last = (await client.next_payload())["transactionUpdated"]
        # then the final price has 5 kWh and 10 idle minutes, as the session's own cost says
        assert last["state"] == "COMPLETED"
        assert {li["label"]: li["amount"] for li in last["cost"]["lines"]} == {
            "Energy": 200,
            "Idle time": 100,
        }
        assert last["cost"]["total"] == 300
        assert await client.receive() == {"type": "complete", "id": sid}
        await client.close()
        stored = (await ok(http, SESSION_COST, id=gid("Transaction", tx)))["transaction"]["cost"]
        assert (stored["total"], [li["quantity"] for li in stored["lines"]]) == (300, ["5", "10"])


async def _in_force_since(engine: AsyncEngine, since: datetime) -> None:
    """The tariff has been in force since `since` (the session below started 40 minutes ago)."""
    async with engine.begin() as conn:
        for model in (TariffVersion, TariffAssignment):
            await conn.execute(update(model).values(created_at=since))


def _status(status: str, at: str) -> dict[str, Any]:
    return {"connectorId": 1, "errorCode": "NoError", "status": status, "timestamp": at}


def _meter(tx: int, wh: int, at: str) -> dict[str, Any]:
    value = {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    return {"connectorId": 1, "transactionId": tx, "meterValue": [{"timestamp": at, "sampledValue": [value]}]}


class TestEachSessionIsChargedOnce:
    async def test_the_ended_session_gets_its_bill_and_one_durable_event(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        station: int,
        durable: DurableWork,
        connect_charger: ChargerFactory,
    ) -> None:
        # given a tariff in force since before the session
        org = await make_org(engine)
        prices = {"energyPerKwh": "40", "idlePerMinute": "10", "sessionFee": 50}
        await ok(http, ASSIGN, t=await create(http, org, "Standard", prices))
        base = utcnow().replace(microsecond=0) - timedelta(minutes=40)
        await _in_force_since(engine, base - timedelta(hours=1))
        cp = await connect_charger("CP-1")
        at = [to_ocpp(base + timedelta(minutes=m)) for m in (0, 20, 30)]
        start = {"connectorId": 1, "idTag": ACCEPTED_TAGS[0], "meterStart": 10_000, "timestamp": at[0]}
        tx = (await cp.call("StartTransaction", start))["transactionId"]
        await cp.call("StatusNotification", _status("Charging", at[0]))
        await cp.call("MeterValues", _meter(tx, 15_000, at[1]))
        await cp.call("StatusNotification", _status("SuspendedEV", at[1]))
        # when it ends
        await cp.call("StopTransaction", {"transactionId": tx, "meterStop": 15_000, "timestamp": at[2]})
        # then the worker prices it once: 5 kWh, 10 idle minutes, the fee
        assert await eventually(lambda: _charged(engine))
        rows = await fetch(engine, "SELECT total, driver_amount, energy_wh, idle_seconds FROM session_charge")
        assert rows == [{"total": 350, "driver_amount": 350, "energy_wh": 5_000, "idle_seconds": 600}]
        events = await fetch(
            engine, "SELECT event_type FROM outbox_event WHERE event_type = 'session.charged'"
        )
        assert len(events) == 1
        # and the session's cost reads the bill
        cost = (await ok(http, SESSION_COST, id=gid("Transaction", tx)))["transaction"]["cost"]
        assert cost["total"] == 350
        # a redelivered end changes nothing
        ended = await fetch(engine, "SELECT payload FROM outbox_event WHERE event_type = 'transaction.ended'")
        payload = ended[0]["payload"]
        event = event_from_dict(json.loads(payload) if isinstance(payload, str) else payload)
        async with engine.begin() as conn:
            await charge_session(conn, event)
        assert len(await fetch(engine, "SELECT id FROM session_charge")) == 1


async def _charged(engine: AsyncEngine) -> bool:
    return bool(await fetch(engine, "SELECT id FROM session_charge"))
