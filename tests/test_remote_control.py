"""Operators command stations through GraphQL: every answer a station can give comes back typed,
and every command leaves its trail (who, what, answer, latency)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.server import Gateway
from gateway.simulator import NO_ANSWER, CallError
from tests.builders import make_station
from tests.conftest import OPERATOR_TOKEN, ApiServerFactory, ChargerFactory
from tests.dbutil import fetch, scalar
from tests.graphql_client import gql
from tests.test_access_matrix import gid

RESET = """
mutation ($s: ID!, $kind: ResetKind!) {
  resetStation(input: {stationId: $s, kind: $kind}) {
    outcome message stationStatus
    command { id name payload outcome stationStatus latencyMs actor { kind label } station { chargePointId } }
  }
}"""
COMMANDS = """
query ($s: ID) { commands(stationId: $s, first: 20) {
  totalCount edges { node { name outcome stationStatus bulkId latencyMs payload reply } } } }"""
READ_CONFIGURATION = """
mutation ($s: ID!, $keys: [String!]) { readConfiguration(input: {stationId: $s, keys: $keys}) {
  outcome keys { key value readonly } unknownKeys } }"""
STORED_CONFIGURATION = "query ($s: ID!) { stationConfiguration(stationId: $s) { key value readonly } }"
CHANGE_CONFIGURATION = """
mutation ($s: ID!, $k: String!, $v: String!) {
  changeConfiguration(input: {stationId: $s, key: $k, value: $v}) { outcome stationStatus message } }"""
SET_LIMIT = """
mutation ($s: ID!, $limit: Float!, $c: Int!) {
  setChargingLimit(
    input: {stationId: $s, limit: $limit, unit: AMPERES, purpose: TX_DEFAULT, connectorId: $c}
  ) { outcome stationStatus } }"""
COMPOSITE = """
mutation ($s: ID!) { compositeSchedule(input: {stationId: $s, connectorId: 1, durationSeconds: 3600}) {
  outcome schedule { unit startAt durationSeconds periods { startSeconds limit phases } } } }"""
BULK_RESET = """
mutation ($ids: [ID!]!) { bulkResetStations(input: {stationIds: $ids, kind: HARD}) {
  bulkId accepted results { outcome stationStatus station { chargePointId } } } }"""
UNLOCK = (
    "mutation ($s: ID!) { unlockConnector(input: {stationId: $s, connectorId: 1}) { outcome stationStatus } }"
)

CONFIGURATION_1_6 = {
    "configurationKey": [
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
        {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
        {"key": "SupportedFeatureProfiles", "readonly": True, "value": "Core,RemoteTrigger"},
        # a station that breaks the security whitepaper and reports a write-only key
        {"key": "AuthorizationKey", "readonly": False, "value": "0011223344"},
    ]
}


async def op(http: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    result = await gql(http, query, variables, token=OPERATOR_TOKEN)
    assert not result.get("errors"), result
    data: dict[str, Any] = result["data"]
    return data


async def eventually(check: Any, timeout: float = 5.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


class TestAnswersComeBackTyped:
    async def test_an_accepted_reset_returns_the_station_answer_and_its_log_entry(
        self, http: httpx.AsyncClient, station: int, connect_charger: ChargerFactory
    ) -> None:
        # given a connected charger
        cp = await connect_charger("CP-1")
        # when an operator resets it
        data = await op(http, RESET, s=gid("Station", station), kind="HARD")
        # then the station got a 1.6 Reset and its answer came back with the log entry
        reset = data["resetStation"]
        assert (reset["outcome"], reset["stationStatus"]) == ("ACCEPTED", "Accepted")
        assert ("Reset", {"type": "Hard"}) in cp.received_calls
        command = reset["command"]
        assert command["name"] == "Reset" and json.loads(command["payload"]) == {"kind": "Hard"}
        assert command["actor"]["kind"] == "platform" and command["station"]["chargePointId"] == "CP-1"
        assert 0 <= command["latencyMs"] < 5_000

    async def test_rejected_not_supported_silent_and_offline_stations(
        self,
        engine: AsyncEngine,
        api_server_factory: ApiServerFactory,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        api = await api_server_factory(CHARGENET_COMMAND_TIMEOUT=0.5)
        cp = await connect_charger("CP-1")
        answers: dict[str, Any] = {}
        cp.on_call = lambda action, _p: answers.get(action)
        async with httpx.AsyncClient(base_url=api.base_url, timeout=20) as http:
            s = gid("Station", station)
            # the station says no, in its own word
            answers["UnlockConnector"] = {"status": "UnlockFailed"}
            unlock = (await op(http, UNLOCK, s=s))["unlockConnector"]
            assert (unlock["outcome"], unlock["stationStatus"]) == ("REJECTED", "UnlockFailed")
            # the station does not implement the message
            del answers["UnlockConnector"]

            def not_supported(action: str, _p: dict[str, Any]) -> dict[str, Any] | None:
                raise CallError("NotSupported", f"{action} not here")

            cp.on_call = not_supported
            assert (await op(http, UNLOCK, s=s))["unlockConnector"]["outcome"] == "NOT_SUPPORTED"
            # the station never answers
            cp.on_call = lambda _a, _p: NO_ANSWER
            assert (await op(http, UNLOCK, s=s))["unlockConnector"]["outcome"] == "TIMED_OUT"
            # the station is gone
            await cp.close()
            await eventually(lambda: _offline(engine))
            offline = (await op(http, UNLOCK, s=s))["unlockConnector"]
            assert offline["outcome"] == "STATION_OFFLINE"
            # and each attempt is in the log, newest first
            log = (await op(http, COMMANDS, s=s))["commands"]
            assert [e["node"]["outcome"] for e in log["edges"]] == [
                "STATION_OFFLINE",
                "TIMED_OUT",
                "NOT_SUPPORTED",
                "REJECTED",
            ]

    async def test_a_station_disconnecting_mid_call_is_offline_not_hung(
        self, http: httpx.AsyncClient, station: int, connect_charger: ChargerFactory
    ) -> None:
        cp = await connect_charger("CP-1")

        def drop(_action: str, _p: dict[str, Any]) -> dict[str, Any]:
            assert cp.ws is not None
            asyncio.get_running_loop().create_task(cp.ws.close())
            return NO_ANSWER

        cp.on_call = drop
        started = asyncio.get_running_loop().time()
        unlock = (await op(http, UNLOCK, s=gid("Station", station)))["unlockConnector"]
        assert unlock["outcome"] == "STATION_OFFLINE"
        assert asyncio.get_running_loop().time() - started < 3


async def _offline(engine: AsyncEngine) -> bool:
    return not await scalar(engine, "SELECT online FROM charging_station WHERE charge_point_id = 'CP-1'")


class TestConfiguration:
    async def test_read_after_boot_stored_without_secrets_and_features_enforced(
        self, http: httpx.AsyncClient, engine: AsyncEngine, station: int, connect_charger: ChargerFactory
    ) -> None:
        # given a charger that supports only Core and RemoteTrigger
        def answer(action: str, _p: dict[str, Any]) -> dict[str, Any] | None:
            return CONFIGURATION_1_6 if action == "GetConfiguration" else None

        cp = await connect_charger("CP-1", boot=False)
        cp.on_call = answer
        await cp.start()
        s = gid("Station", station)
        # then ChargeNet read its configuration after the boot and stored it, minus the secret
        stored = await eventually(lambda: _stored(http, s))
        assert {k["key"]: k["value"] for k in stored} == {
            "HeartbeatInterval": "300",
            "NumberOfConnectors": "2",
            "SupportedFeatureProfiles": "Core,RemoteTrigger",
        }
        assert ("GetConfiguration", {}) in cp.received_calls
        station_row = (
            await fetch(engine, "SELECT feature_profiles FROM charging_station WHERE id = :i", i=station)
        )[0]
        assert station_row["feature_profiles"] == "Core,RemoteTrigger"
        # when an operator sets a limit (SmartCharging), the station is not even asked
        limit = (await op(http, SET_LIMIT, s=s, limit=16.0, c=1))["setChargingLimit"]
        assert limit["outcome"] == "NOT_SUPPORTED"
        assert "SetChargingProfile" not in {a for a, _ in cp.received_calls}
        # but a Core command still goes through, and an accepted change updates the stored copy
        cp.on_call = lambda action, _p: {"status": "Accepted"} if action == "ChangeConfiguration" else None
        change = (await op(http, CHANGE_CONFIGURATION, s=s, k="HeartbeatInterval", v="120"))[
            "changeConfiguration"
        ]
        assert change["outcome"] == "ACCEPTED"
        assert ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "120"}) in cp.received_calls
        stored = {k["key"]: k["value"] for k in await _stored(http, s)}
        assert stored["HeartbeatInterval"] == "120"

    async def test_reading_keys_on_demand_reports_unknown_ones(
        self, http: httpx.AsyncClient, station: int, connect_charger: ChargerFactory
    ) -> None:
        cp = await connect_charger("CP-1")
        cp.on_call = lambda action, p: (
            {
                "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
                "unknownKey": [k for k in p.get("key", []) if k != "HeartbeatInterval"],
            }
            if action == "GetConfiguration"
            else None
        )
        data = await op(
            http, READ_CONFIGURATION, s=gid("Station", station), keys=["HeartbeatInterval", "Nope"]
        )
        read = data["readConfiguration"]
        assert read["outcome"] == "ACCEPTED"
        assert read["keys"] == [{"key": "HeartbeatInterval", "value": "300", "readonly": False}]
        assert read["unknownKeys"] == ["Nope"]

    async def test_a_key_the_protocol_cannot_carry_is_refused_before_sending(
        self, http: httpx.AsyncClient, station: int, connect_charger: ChargerFactory
    ) -> None:
        cp = await connect_charger("CP-1")
        result = await gql(
            http,
            CHANGE_CONFIGURATION,
            {"s": gid("Station", station), "k": "K" * 51, "v": "1"},
            token=OPERATOR_TOKEN,
        )
        assert result["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
        assert "ChangeConfiguration" not in {a for a, _ in cp.received_calls}


async def _stored(http: httpx.AsyncClient, s: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await op(http, STORED_CONFIGURATION, s=s))["stationConfiguration"]
    return found


class TestSmartCharging:
    async def test_a_limit_becomes_a_profile_and_the_composite_schedule_comes_back(
        self, http: httpx.AsyncClient, station: int, connect_charger: ChargerFactory
    ) -> None:
        cp = await connect_charger("CP-1")
        schedule = {
            "status": "Accepted",
            "connectorId": 1,
            "scheduleStart": "2026-11-24T10:00:00Z",
            "chargingSchedule": {
                "duration": 3600,
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0, "numberPhases": 3}],
            },
        }
        cp.on_call = lambda action, _p: (
            schedule if action == "GetCompositeSchedule" else {"status": "Accepted"}
        )
        s = gid("Station", station)
        assert (await op(http, SET_LIMIT, s=s, limit=16.0, c=1))["setChargingLimit"]["outcome"] == "ACCEPTED"
        _, payload = next(c for c in cp.received_calls if c[0] == "SetChargingProfile")
        profile = payload["csChargingProfiles"]
        assert payload["connectorId"] == 1
        assert (profile["chargingProfilePurpose"], profile["chargingProfileKind"]) == (
            "TxDefaultProfile",
            "Absolute",
        )
        assert profile["chargingSchedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 16.0}]
        composite = (await op(http, COMPOSITE, s=s))["compositeSchedule"]
        assert composite["schedule"] == {
            "unit": "AMPERES",
            "startAt": "2026-11-24T10:00:00+00:00",
            "durationSeconds": 3600,
            "periods": [{"startSeconds": 0, "limit": 16.0, "phases": 3}],
        }


class TestBulk:
    async def test_one_result_per_station_and_one_bulk_id_in_the_log(
        self, http: httpx.AsyncClient, engine: AsyncEngine, gateway: Gateway, connect_charger: ChargerFactory
    ) -> None:
        ids = [await make_station(engine, charge_point_id=f"BULK-{n}") for n in range(3)]
        for n in range(2):  # the third stays offline
            await connect_charger(f"BULK-{n}")
        data = await op(http, BULK_RESET, ids=[gid("Station", i) for i in ids])
        bulk = data["bulkResetStations"]
        assert [(r["station"]["chargePointId"], r["outcome"]) for r in bulk["results"]] == [
            ("BULK-0", "ACCEPTED"),
            ("BULK-1", "ACCEPTED"),
            ("BULK-2", "STATION_OFFLINE"),
        ]
        assert bulk["accepted"] == 2
        log = (await op(http, COMMANDS, s=None))["commands"]["edges"]
        assert {e["node"]["bulkId"] for e in log} == {bulk["bulkId"]} and len(log) == 3
