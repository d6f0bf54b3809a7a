"""A driver starts charging from the QR code on a connector and follows the request: pending at
once, charging (with its session) when the station reports it, failed with a reason otherwise."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.control import requests
from api.worker.service import DurableWork
from tests.account_builders import give_token, make_user, sign_in
from tests.builders import ACCEPTED_TAGS
from tests.conftest import OPERATOR_TOKEN, ApiServer, ChargerFactory
from tests.dbutil import fetch, scalar
from tests.graphql_client import gql
from tests.ocpp201 import Charger201Factory, connect201, tx_event
from tests.test_access_matrix import gid

START_BY_QR = """
mutation ($qr: String!, $wait: Float) { startCharging(input: {qrCode: $qr, waitSeconds: $wait}) {
  outcome message request { id state failureReason connectorId transaction { id } } } }"""
START_OPERATOR = """
mutation ($s: ID!, $tag: String!) { startCharging(input: {stationId: $s, idTag: $tag, connectorId: 1}) {
  outcome request { state transaction { id } } } }"""
REQUEST = "query ($id: ID!) { chargingRequest(id: $id) { state failureReason transaction { id } } }"
CONNECTOR_CODES = "query ($s: ID!) { station(id: $s) { connectors { connectorId qrCode } } }"
APP_TAG = "APP-DRIVER-1"
__all__ = ["connect201"]  # the fixture, imported for pytest


@pytest.fixture
async def driver(engine: AsyncEngine, api_server: ApiServer) -> str:
    user = await make_user(engine, email="driver@example.com")
    await give_token(engine, user_id=user, token=APP_TAG, token_type="Central")
    pair = await sign_in(engine, api_server.app.state.auth.keys, user_id=user)
    return pair.access_token


async def ask(http: httpx.AsyncClient, token: str, query: str, **variables: Any) -> dict[str, Any]:
    result = await gql(http, query, variables, token=token)
    assert not result.get("errors"), result
    data: dict[str, Any] = result["data"]
    return data


async def until_state(http: httpx.AsyncClient, token: str, request_id: str, state: str) -> dict[str, Any]:
    for _ in range(100):
        found: dict[str, Any] = (await ask(http, token, REQUEST, id=request_id))["chargingRequest"]
        if found["state"] == state:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"request {request_id} stayed {found['state']}, expected {state}")


class TestStartFromTheQrCode:
    async def test_pending_at_once_then_charging_with_its_session_then_ended(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        driver: str,
        durable: DurableWork,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        # given a connected station whose connectors carry their codes
        charger = await connect_charger("CP-1", connectors=[22_000, 22_000], id_tags=[APP_TAG])
        codes = (await ask(http, driver, CONNECTOR_CODES, s=gid("Station", station)))["station"]["connectors"]
        assert [c["qrCode"] for c in codes] == ["CP-1*1", "CP-1*2"]
        # when the driver scans connector 2 and does not wait
        started = (await ask(http, driver, START_BY_QR, qr="CP-1*2", wait=0))["startCharging"]
        # then the request comes back at once, pending, for that connector
        request = started["request"]
        assert started["outcome"] == "ACCEPTED"
        assert (request["state"], request["connectorId"]) in {("PENDING", 2), ("CHARGING", 2)}
        # and becomes charging with the session linked once the station reports it
        charging = await until_state(http, driver, request["id"], "CHARGING")
        assert charging["transaction"] is not None
        assert charger.connectors[2].transaction_id is not None
        # and ended when the session ends
        charger.request_stop(charger.connectors[2], "Local")
        await until_state(http, driver, request["id"], "ENDED")

    async def test_a_refusal_fails_the_request_with_the_station_reason(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        driver: str,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        charger = await connect_charger("CP-1")
        charger.on_call = lambda action, _p: (
            {"status": "Rejected"} if action == "RemoteStartTransaction" else None
        )
        started = (await ask(http, driver, START_BY_QR, qr="CP-1*1", wait=0))["startCharging"]
        assert started["outcome"] == "REJECTED"
        assert started["request"]["state"] == "FAILED"
        assert "Rejected" in started["request"]["failureReason"]
        durable = await fetch(
            engine, "SELECT payload FROM outbox_event WHERE event_type = 'charging_request.failed'"
        )
        assert len(durable) == 1 and "Rejected" in str(durable[0]["payload"])

    async def test_an_accepted_start_that_never_happens_fails_after_the_timeout(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        driver: str,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        charger = await connect_charger("CP-1")
        # the station says yes but nobody plugs in
        charger.on_call = lambda action, _p: (
            {"status": "Accepted"} if action == "RemoteStartTransaction" else None
        )
        started = (await ask(http, driver, START_BY_QR, qr="CP-1*1", wait=0))["startCharging"]
        assert started["request"]["state"] == "PENDING"
        assert await requests.fail_unstarted(engine, timeout_s=0) == 1
        failed = (await ask(http, driver, REQUEST, id=started["request"]["id"]))["chargingRequest"]
        assert failed["state"] == "FAILED" and "did not start a session" in failed["failureReason"]
        # and the driver will hear of it: a durable event, once
        assert await requests.fail_unstarted(engine, timeout_s=0) == 0
        durable = await fetch(
            engine, "SELECT event_type FROM outbox_event WHERE event_type LIKE 'charging_request.%'"
        )
        assert durable == [{"event_type": "charging_request.failed"}]

    @pytest.mark.parametrize(
        ("code", "error"), [("CP-1", "INVALID_INPUT"), ("NOPE*1", "NOT_FOUND"), ("CP-1*9", "NOT_FOUND")]
    )
    async def test_codes_that_name_no_connector(
        self, http: httpx.AsyncClient, driver: str, station: int, code: str, error: str
    ) -> None:
        result = await gql(http, START_BY_QR, {"qr": code, "wait": 0}, token=driver)
        assert result["errors"][0]["extensions"]["code"] == error


class TestOperatorsAndOtherDrivers:
    async def test_an_operator_start_that_waits_returns_the_linked_request(
        self, http: httpx.AsyncClient, engine: AsyncEngine, station: int, connect_charger: ChargerFactory
    ) -> None:
        await connect_charger("CP-1", id_tags=["OPS-TAG-1"])
        started = (
            await ask(http, OPERATOR_TOKEN, START_OPERATOR, s=gid("Station", station), tag=ACCEPTED_TAGS[0])
        )["startCharging"]
        assert started["request"]["state"] == "CHARGING" and started["request"]["transaction"] is not None

    async def test_another_driver_cannot_read_my_request(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        api_server: ApiServer,
        driver: str,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        await connect_charger("CP-1")
        started = (await ask(http, driver, START_BY_QR, qr="CP-1*1", wait=0))["startCharging"]
        other = await make_user(engine, email="other@example.com")
        other_token = (await sign_in(engine, api_server.app.state.auth.keys, user_id=other)).access_token
        seen = await gql(http, REQUEST, {"id": started["request"]["id"]}, token=other_token)
        assert seen["data"]["chargingRequest"] is None
        assert await scalar(engine, "SELECT count(*) FROM charging_request") == 1


class TestOcpp201Starts:
    async def test_the_station_echoes_the_request_id_and_that_links_the_session(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        driver: str,
        durable: DurableWork,
        station: int,
        connect201: Charger201Factory,
    ) -> None:
        # given a 2.0.1 station that accepts the start but reports the session itself, with
        # the remoteStartId and without the token (it may send the token later)
        cp = await connect201("CP-1")
        cp.on_call = lambda action, _p: (
            {"status": "Accepted"} if action == "RequestStartTransaction" else None
        )
        started = (await ask(http, driver, START_BY_QR, qr="CP-1*1", wait=0))["startCharging"]
        assert started["request"]["state"] == "PENDING"
        sent = next(p for a, p in cp.received_calls if a == "RequestStartTransaction")
        request_id = (await fetch(engine, "SELECT id FROM charging_request"))[0]["id"]
        assert sent["remoteStartId"] == request_id
        # when the session's Started names that request
        await cp.call(
            "TransactionEvent",
            tx_event("Started", "T-9", 0, 0, trigger="RemoteStart", remoteStartId=request_id),
        )
        # then the request is charging with that session, although no token matched it
        charging = await until_state(http, driver, started["request"]["id"], "CHARGING")
        tx = await fetch(engine, "SELECT id FROM charging_transaction WHERE station_transaction_id = 'T-9'")
        assert charging["transaction"]["id"] == gid("Transaction", tx[0]["id"])

    async def test_cable_first_the_start_links_the_running_session_at_once(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        driver: str,
        station: int,
        connect201: Charger201Factory,
    ) -> None:
        # given a 2.0.1 station whose session began when the cable went in, before any token
        cp = await connect201("CP-1")
        await cp.call("TransactionEvent", tx_event("Started", "T-7", 0, 0, trigger="CablePluggedIn"))
        # and that answers the start with that session's id, as 2.0.1 says it must
        cp.on_call = lambda action, _p: (
            {"status": "Accepted", "transactionId": "T-7"} if action == "RequestStartTransaction" else None
        )
        started = (await ask(http, driver, START_BY_QR, qr="CP-1*1", wait=0))["startCharging"]
        # then the request is charging with the running session in the mutation's own answer
        tx = await fetch(engine, "SELECT id FROM charging_transaction WHERE station_transaction_id = 'T-7'")
        assert started["request"]["state"] == "CHARGING"
        assert started["request"]["transaction"]["id"] == gid("Transaction", tx[0]["id"])
