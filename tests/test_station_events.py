"""An operator's station screen follows one live stream: status and boots, what the station
reports (configuration read, firmware progress) and the results of commands sent to it."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.account_builders import make_user, sign_in
from tests.conftest import OPERATOR_TOKEN, ApiServer, ChargerFactory
from tests.graphql_client import GraphQLWS, gql
from tests.test_access_matrix import gid

EVENTS = """
subscription ($s: ID!) { stationEvents(stationId: $s) {
  __typename
  ... on StationStatusUpdate { online reason }
  ... on StationReport { action detail }
  ... on StationCommandResult { name outcome stationStatus latencyMs commandId }
} }"""
RESET = "mutation ($s: ID!) { resetStation(input: {stationId: $s}) { outcome command { id } } }"
AUTH = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


async def next_event(live: GraphQLWS, typename: str, **match: Any) -> dict[str, Any]:
    """The next event of that type whose fields match (others on the stream are skipped)."""
    for _ in range(50):
        event: dict[str, Any] = (await live.next_payload(10))["stationEvents"]
        if event["__typename"] == typename and all(event.get(k) == v for k, v in match.items()):
            return event
    raise AssertionError(f"no {typename} {match} on the stream")


class TestOneStreamForTheStationScreen:
    async def test_boot_configuration_read_and_command_results_arrive_live(
        self, http: httpx.AsyncClient, api_server: ApiServer, station: int, connect_charger: ChargerFactory
    ) -> None:
        # given an operator watching a station that is offline
        live = await GraphQLWS.open(api_server.ws_url, payload=AUTH)
        await live.subscribe(EVENTS, {"s": gid("Station", station)})
        snapshot = (await live.next_payload())["stationEvents"]
        assert snapshot == {"__typename": "StationStatusUpdate", "online": False, "reason": "snapshot"}
        # when the station connects and boots
        await connect_charger("CP-1")
        # then the boot and the configuration ChargeNet reads after it are on the stream
        await next_event(live, "StationStatusUpdate", reason="booted")
        read = await next_event(live, "StationReport", action="ConfigurationRead")
        assert '"feature_profiles": "Core,' in read["detail"]
        # and a command's result arrives as it completes, pointing at its log entry
        reset = (await gql(http, RESET, {"s": gid("Station", station)}, token=OPERATOR_TOKEN))["data"][
            "resetStation"
        ]
        result = await next_event(live, "StationCommandResult", name="Reset")
        assert (result["outcome"], result["stationStatus"]) == ("ACCEPTED", "Accepted")
        assert result["commandId"] == reset["command"]["id"] and result["latencyMs"] >= 0
        await live.close()

    async def test_a_driver_may_not_watch_an_operators_stream(
        self, engine: AsyncEngine, api_server: ApiServer, station: int
    ) -> None:
        user = await make_user(engine, email="curious@example.com")
        token = (await sign_in(engine, api_server.app.state.auth.keys, user_id=user)).access_token
        live = await GraphQLWS.open(api_server.ws_url, payload={"Authorization": f"Bearer {token}"})
        await live.subscribe(EVENTS, {"s": gid("Station", station)})
        message = await live.receive()
        assert (
            message["type"] == "error" or message["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        )
        await live.close()
