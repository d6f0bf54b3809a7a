"""Live updates over graphql-transport-ws while a real charger meters, and remote control."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.exceptions import ConnectionClosed

from tests.builders import ACCEPTED_TAGS
from tests.conftest import OPERATOR_TOKEN, ApiServer, ChargerFactory
from tests.graphql_client import GraphQLWS, data, gql
from tests.test_gateway_sessions import meter, ts

STATION_STATUS = """
subscription($stationId: ID, $locationId: ID) {
  stationStatusChanged(stationId: $stationId, locationId: $locationId) {
    chargePointId online status reason changedConnectorId
    connectors { connectorId status errorCode }
  }
}
"""

TX_UPDATED = """
subscription($id: ID!) {
  transactionUpdated(transactionId: $id) {
    transactionId state energyWh powerW socPercent lastSampleAt stopReason
  }
}
"""

START = """
mutation($input: StartChargingInput!) {
  startCharging(input: $input) { outcome message transaction { id state connectorId idTag } }
}
"""

STOP = """
mutation($input: StopChargingInput!) {
  stopCharging(input: $input) { outcome message transaction { id state stopReason } }
}
"""

AUTH = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def gid(kind: str, pk: int) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


class TestStationStatusSubscription:
    async def test_snapshot_then_each_change(
        self,
        api_server: ApiServer,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        # given an app watching the station anonymously (availability is public)
        client = await GraphQLWS.open(api_server.ws_url)
        await client.subscribe(STATION_STATUS, {"stationId": gid("Station", station)})
        snapshot = (await client.next_payload())["stationStatusChanged"]
        assert snapshot["reason"] == "snapshot" and snapshot["online"] is False
        # when the charger connects and a connector faults
        cp = await connect_charger("CP-1", boot=False)
        connected = (await client.next_payload())["stationStatusChanged"]
        await cp.start()
        await cp.status(2, "Faulted", "GroundFailure")
        # then each change arrives with the full view of the station
        updates = [connected]
        while updates[-1]["changedConnectorId"] != 2 or updates[-1]["connectors"][1]["status"] != "FAULTED":
            updates.append((await client.next_payload())["stationStatusChanged"])
        assert connected["online"] is True and connected["reason"] == "connected"
        assert updates[-1]["connectors"][1] == {
            "connectorId": 2,
            "status": "FAULTED",
            "errorCode": "GroundFailure",
        }
        await client.close()

    async def test_location_subscription_covers_its_stations(
        self,
        api_server: ApiServer,
        engine: AsyncEngine,
        station: int,
        http: httpx.AsyncClient,
    ) -> None:
        loc = data(await gql(http, '{ station(chargePointId: "CP-1") { location { id } } }'))
        client = await GraphQLWS.open(api_server.ws_url)
        await client.subscribe(STATION_STATUS, {"locationId": loc["station"]["location"]["id"]})
        snapshot = (await client.next_payload())["stationStatusChanged"]
        assert snapshot["chargePointId"] == "CP-1"
        await client.close()

    async def test_both_or_neither_argument_is_an_error(self, api_server: ApiServer) -> None:
        client = await GraphQLWS.open(api_server.ws_url)
        await client.subscribe(STATION_STATUS, {})
        message = await client.receive()
        assert message["type"] in ("error", "next")
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "INVALID_INPUT"
        await client.close()


class TestTransactionSubscription:
    async def test_live_energy_while_metering_then_completion(
        self,
        api_server: ApiServer,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")
        tx = (
            await cp.call(
                "StartTransaction",
                {"connectorId": 1, "idTag": ACCEPTED_TAGS[0], "meterStart": 50_000, "timestamp": ts(0)},
            )
        )["transactionId"]
        client = await GraphQLWS.open(api_server.ws_url, payload=AUTH)
        sid = await client.subscribe(TX_UPDATED, {"id": gid("Transaction", tx)})
        first = (await client.next_payload())["transactionUpdated"]
        assert (first["state"], first["energyWh"]) == ("ACTIVE", 0)
        for n, wh in enumerate((51_000, 52_500, 54_000), start=1):
            await cp.call("MeterValues", meter(tx, wh, ts(n * 5), power_w=18_000, soc=30 + n))
            live = (await client.next_payload())["transactionUpdated"]
            assert live["energyWh"] == wh - 50_000
            assert live["powerW"] == 18_000 and live["socPercent"] == 30 + n
        await cp.call(
            "StopTransaction",
            {"transactionId": tx, "meterStop": 55_000, "timestamp": ts(20), "reason": "Local"},
        )
        last = (await client.next_payload())["transactionUpdated"]
        assert (last["state"], last["energyWh"], last["stopReason"]) == ("COMPLETED", 5_000, "Local")
        done = await client.receive()
        assert done == {"type": "complete", "id": sid}
        await client.close()

    async def test_sessions_need_a_signed_in_caller(
        self,
        api_server: ApiServer,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        client = await GraphQLWS.open(api_server.ws_url)
        await client.subscribe(TX_UPDATED, {"id": gid("Transaction", 1)})
        message = await client.receive()
        payload = message["payload"]
        errors = payload if isinstance(payload, list) else payload["errors"]
        assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
        await client.close()

    async def test_a_bad_token_closes_the_socket(self, api_server: ApiServer) -> None:
        with pytest.raises((ConnectionClosed, AssertionError)):
            client = await GraphQLWS.open(api_server.ws_url, payload={"Authorization": "Bearer nope"})
            await client.receive()


class TestRemoteControl:
    async def test_start_returns_the_session_and_stop_ends_it(
        self,
        http: httpx.AsyncClient,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        await connect_charger("CP-1", connectors=[22_000, 22_000], speed=600, meter_interval_s=60)
        started = data(
            await gql(
                http,
                START,
                {
                    "input": {
                        "stationId": gid("Station", station),
                        "idTag": ACCEPTED_TAGS[1],
                        "connectorId": 2,
                    }
                },
                token=OPERATOR_TOKEN,
            )
        )["startCharging"]
        assert started["outcome"] == "ACCEPTED"
        assert started["transaction"]["state"] == "ACTIVE"
        assert (started["transaction"]["connectorId"], started["transaction"]["idTag"]) == (
            2,
            ACCEPTED_TAGS[1],
        )
        stopped = data(
            await gql(
                http, STOP, {"input": {"transactionId": started["transaction"]["id"]}}, token=OPERATOR_TOKEN
            )
        )["stopCharging"]
        assert stopped["outcome"] == "ACCEPTED"
        assert stopped["transaction"] == {
            "id": started["transaction"]["id"],
            "state": "COMPLETED",
            "stopReason": "Remote",
        }
        again = data(
            await gql(
                http, STOP, {"input": {"transactionId": started["transaction"]["id"]}}, token=OPERATOR_TOKEN
            )
        )["stopCharging"]
        assert again["outcome"] == "NOT_ACTIVE"

    async def test_offline_station(self, http: httpx.AsyncClient, station: int) -> None:
        result = data(
            await gql(
                http,
                START,
                {"input": {"stationId": gid("Station", station), "idTag": ACCEPTED_TAGS[0]}},
                token=OPERATOR_TOKEN,
            )
        )
        assert result["startCharging"] == {
            "outcome": "STATION_OFFLINE",
            "transaction": None,
            "message": "station CP-1 is not connected",
        }

    async def test_station_rejects(
        self,
        http: httpx.AsyncClient,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")
        await cp.status(1, "Faulted", "GroundFailure")
        result = data(
            await gql(
                http,
                START,
                {
                    "input": {
                        "stationId": gid("Station", station),
                        "idTag": ACCEPTED_TAGS[0],
                        "connectorId": 1,
                    }
                },
                token=OPERATOR_TOKEN,
            )
        )["startCharging"]
        assert result["outcome"] == "REJECTED" and result["transaction"] is None

    async def test_accepted_but_never_started(
        self,
        http: httpx.AsyncClient,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")
        cp.on_call = lambda action, payload: {"status": "Accepted"}  # the driver never plugs in
        result = data(
            await gql(
                http,
                START,
                {
                    "input": {
                        "stationId": gid("Station", station),
                        "idTag": ACCEPTED_TAGS[0],
                        "waitSeconds": 0.3,
                    }
                },
                token=OPERATOR_TOKEN,
            )
        )["startCharging"]
        assert result["outcome"] == "ACCEPTED" and result["transaction"] is None
        assert "plugged in" in result["message"]

    async def test_anonymous_cannot_command_and_inputs_are_checked(
        self,
        http: httpx.AsyncClient,
        station: int,
    ) -> None:
        variables = {"input": {"stationId": gid("Station", station), "idTag": ACCEPTED_TAGS[0]}}
        anonymous = await gql(http, START, variables)
        assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        too_long = await gql(
            http, START, {"input": {**variables["input"], "idTag": "X" * 21}}, token=OPERATOR_TOKEN
        )
        assert too_long["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
        no_connector = await gql(
            http, START, {"input": {**variables["input"], "connectorId": 9}}, token=OPERATOR_TOKEN
        )
        assert no_connector["errors"][0]["extensions"]["code"] == "NOT_FOUND"

    async def test_concurrent_subscribers_all_get_the_update(
        self,
        api_server: ApiServer,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")
        tx = (
            await cp.call(
                "StartTransaction",
                {"connectorId": 1, "idTag": ACCEPTED_TAGS[0], "meterStart": 0, "timestamp": ts(0)},
            )
        )["transactionId"]
        clients = [await GraphQLWS.open(api_server.ws_url, payload=AUTH) for _ in range(5)]
        for c in clients:
            await c.subscribe(TX_UPDATED, {"id": gid("Transaction", tx)})
            await c.next_payload()
        await cp.call("MeterValues", meter(tx, 777, ts(1)))
        got = await asyncio.gather(*(c.next_payload() for c in clients))
        assert {g["transactionUpdated"]["energyWh"] for g in got} == {777}
        for c in clients:
            await c.close()
