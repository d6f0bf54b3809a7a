"""GraphQL queries over real HTTP: network data is public, sessions are for operators."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.builders import ACCEPTED_TAGS, make_location, make_station
from tests.conftest import OPERATOR_TOKEN, ChargerFactory
from tests.graphql_client import data, gql
from tests.test_gateway_sessions import meter, ts

STATIONS = """
query Stations($first: Int, $after: String, $locationId: ID, $status: ConnectorStatus,
               $online: Boolean, $near: GeoRadius) {
  stations(first: $first, after: $after, locationId: $locationId, status: $status,
           online: $online, near: $near) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id chargePointId online status distanceKm
                          connectors { connectorId status maxPowerW }
                          location { id name timeZone } } }
  }
}
"""

STATION = """
query Station($id: ID, $cp: String) {
  station(id: $id, chargePointId: $cp) { id chargePointId vendor connectors { connectorId } }
}
"""

TRANSACTIONS = """
query Tx($stationId: ID, $state: TransactionState, $first: Int, $after: String) {
  transactions(stationId: $stationId, state: $state, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id state energyWh idTag station { chargePointId }
                   meterSamples(first: 3, measurand: "Energy.Active.Import.Register") { value unit } } }
  }
}
"""


def chargepoints(result: dict) -> list[str]:
    return [e["node"]["chargePointId"] for e in data(result)["stations"]["edges"]]


@pytest.fixture
async def network(engine: AsyncEngine) -> dict[str, int]:
    """Berlin with three stations, Potsdam (27 km away) with one, Munich far away with one."""
    berlin = await make_location(engine, name="Berlin", latitude=52.52, longitude=13.405)
    potsdam = await make_location(engine, name="Potsdam", latitude=52.39, longitude=13.065)
    munich = await make_location(engine, name="Munich", latitude=48.137, longitude=11.575)
    for i in range(3):
        await make_station(
            engine,
            charge_point_id=f"BER-{i}",
            location_id=berlin,
            status="Charging" if i == 0 else "Available",
            online=i != 2,
        )
    await make_station(engine, charge_point_id="POT-0", location_id=potsdam, connectors=1)
    await make_station(engine, charge_point_id="MUC-0", location_id=munich, status="Faulted")
    return {"berlin": berlin, "potsdam": potsdam, "munich": munich}


def gid(kind: str, pk: int) -> str:
    import base64

    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


class TestStations:
    async def test_anonymous_reads_the_network_with_connectors_and_locations(
        self,
        http: httpx.AsyncClient,
        network: dict[str, int],
    ) -> None:
        result = await gql(http, STATIONS, {"first": 10})
        page = data(result)["stations"]
        assert page["totalCount"] == 5
        first = page["edges"][0]["node"]
        assert first["chargePointId"] == "BER-0"
        assert first["location"]["timeZone"] == "Europe/Berlin"
        assert [c["connectorId"] for c in first["connectors"]] == [1, 2]
        assert first["connectors"][0]["status"] == "CHARGING"

    async def test_pagination_walks_every_station_once(
        self,
        http: httpx.AsyncClient,
        network: dict[str, int],
    ) -> None:
        seen: list[str] = []
        after = None
        while True:
            page = data(await gql(http, STATIONS, {"first": 2, "after": after}))["stations"]
            seen += [e["node"]["chargePointId"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert seen == ["BER-0", "BER-1", "BER-2", "POT-0", "MUC-0"]

    async def test_filters_by_location_status_and_online(
        self,
        http: httpx.AsyncClient,
        network: dict[str, int],
    ) -> None:
        by_loc = await gql(http, STATIONS, {"locationId": gid("Location", network["berlin"])})
        assert chargepoints(by_loc) == ["BER-0", "BER-1", "BER-2"]
        assert chargepoints(await gql(http, STATIONS, {"status": "FAULTED"})) == ["MUC-0"]
        assert chargepoints(await gql(http, STATIONS, {"online": True})) == ["BER-0", "BER-1"]

    async def test_nearby_search_is_nearest_first_within_radius(
        self,
        http: httpx.AsyncClient,
        network: dict[str, int],
    ) -> None:
        near_potsdam = {"latitude": 52.40, "longitude": 13.07, "radiusKm": 40}
        result = data(await gql(http, STATIONS, {"near": near_potsdam}))["stations"]
        nodes = [e["node"] for e in result["edges"]]
        assert [n["chargePointId"] for n in nodes] == ["POT-0", "BER-0", "BER-1", "BER-2"]
        assert nodes[0]["distanceKm"] < 2 < 20 < nodes[1]["distanceKm"] < 40
        # paging through a nearby search keeps the order
        page1 = data(await gql(http, STATIONS, {"near": near_potsdam, "first": 2}))["stations"]
        page2 = data(
            await gql(
                http, STATIONS, {"near": near_potsdam, "first": 2, "after": page1["pageInfo"]["endCursor"]}
            )
        )["stations"]
        assert [e["node"]["chargePointId"] for e in page1["edges"] + page2["edges"]] == [
            "POT-0",
            "BER-0",
            "BER-1",
            "BER-2",
        ]

    async def test_station_by_id_by_charge_point_id_and_node(
        self,
        http: httpx.AsyncClient,
        network: dict[str, int],
    ) -> None:
        by_cp = data(await gql(http, STATION, {"cp": "POT-0"}))["station"]
        by_id = data(await gql(http, STATION, {"id": by_cp["id"]}))["station"]
        assert by_id == by_cp
        node = data(
            await gql(
                http,
                "query($id: ID!) { node(id: $id) { ... on Station { chargePointId } } }",
                {"id": by_cp["id"]},
            )
        )["node"]
        assert node == {"chargePointId": "POT-0"}
        assert data(await gql(http, STATION, {"cp": "NOPE"}))["station"] is None

    @pytest.mark.parametrize(
        ("variables", "code"),
        [
            ({"id": "garbage"}, "INVALID_INPUT"),
            ({"id": gid("Transaction", 1)}, "INVALID_INPUT"),
            ({}, "INVALID_INPUT"),
        ],
    )
    async def test_bad_ids_are_typed_errors(
        self,
        http: httpx.AsyncClient,
        network: dict[str, int],
        variables: dict,
        code: str,
    ) -> None:
        result = await gql(http, STATION, variables)
        assert result["errors"][0]["extensions"]["code"] == code

    async def test_operator_only_fields_are_hidden_from_anonymous(
        self,
        http: httpx.AsyncClient,
        network: dict[str, int],
    ) -> None:
        q = '{ station(chargePointId: "POT-0") { chargePointId serialNumber } }'
        anonymous = await gql(http, q)
        assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        operator = await gql(http, q, token=OPERATOR_TOKEN)
        assert data(operator)["station"]["chargePointId"] == "POT-0"

    async def test_limits_reject_abusive_queries(self, http: httpx.AsyncClient) -> None:
        nested = "location { stations { " * 5
        deep = "{ stations { edges { node { " + nested + "id" + " }" * 14
        result = await gql(http, deep)
        assert "exceeds maximum operation depth" in result["errors"][0]["message"]
        aliases = "{ " + " ".join(f"a{i}: locations {{ totalCount }}" for i in range(40)) + " }"
        assert "aliases" in (await gql(http, aliases))["errors"][0]["message"].lower()

    async def test_page_size_is_capped(self, http: httpx.AsyncClient, engine: AsyncEngine) -> None:
        loc = await make_location(engine)
        for i in range(105):
            await make_station(engine, charge_point_id=f"BULK-{i:03d}", location_id=loc, connectors=0)
        too_many = await gql(http, STATIONS, {"first": 101})
        assert too_many["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
        page = data(await gql(http, STATIONS, {"first": 100}))["stations"]
        assert len(page["edges"]) == 100 and page["pageInfo"]["hasNextPage"]


class TestTransactions:
    @pytest.fixture
    async def sessions(self, station: int, connect_charger: ChargerFactory) -> list[int]:
        cp = await connect_charger("CP-1")
        ids = []
        for n in range(3):
            tx = (
                await cp.call(
                    "StartTransaction",
                    {
                        "connectorId": 1,
                        "idTag": ACCEPTED_TAGS[0],
                        "meterStart": n * 10_000,
                        "timestamp": ts(n * 60),
                    },
                )
            )["transactionId"]
            await cp.call("MeterValues", meter(tx, n * 10_000 + 1_000, ts(n * 60 + 10)))
            if n < 2:
                await cp.call(
                    "StopTransaction",
                    {"transactionId": tx, "meterStop": n * 10_000 + 2_000, "timestamp": ts(n * 60 + 20)},
                )
            ids.append(tx)
        return ids

    async def test_anonymous_sees_no_sessions(self, http: httpx.AsyncClient, sessions: list[int]) -> None:
        result = await gql(http, TRANSACTIONS)
        assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert result["data"] is None

    async def test_a_wrong_token_is_a_401_not_anonymous(
        self, http: httpx.AsyncClient, sessions: list[int]
    ) -> None:
        # RFC 6750: the app must learn its token is bad (and refresh), not see public data only.
        result = await gql(http, TRANSACTIONS, token="not-the-token", status=401)
        assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    async def test_operator_lists_newest_first_with_filters_and_samples(
        self,
        http: httpx.AsyncClient,
        sessions: list[int],
    ) -> None:
        page = data(await gql(http, TRANSACTIONS, token=OPERATOR_TOKEN))["transactions"]
        assert page["totalCount"] == 3
        nodes = [e["node"] for e in page["edges"]]
        assert [n["id"] for n in nodes] == [gid("Transaction", i) for i in reversed(sessions)]
        assert nodes[0]["state"] == "ACTIVE" and nodes[0]["energyWh"] == 1_000
        assert nodes[1]["state"] == "COMPLETED" and nodes[1]["energyWh"] == 2_000
        assert nodes[0]["station"]["chargePointId"] == "CP-1"
        assert nodes[0]["meterSamples"] == [{"value": 21_000.0, "unit": "Wh"}]
        active = data(await gql(http, TRANSACTIONS, {"state": "ACTIVE"}, token=OPERATOR_TOKEN))
        assert active["transactions"]["totalCount"] == 1
        first = data(await gql(http, TRANSACTIONS, {"first": 2}, token=OPERATOR_TOKEN))["transactions"]
        rest = data(
            await gql(
                http,
                TRANSACTIONS,
                {"first": 2, "after": first["pageInfo"]["endCursor"]},
                token=OPERATOR_TOKEN,
            )
        )["transactions"]
        assert len(first["edges"]) == 2 and len(rest["edges"]) == 1

    async def test_transaction_by_id_with_bounded_samples(
        self,
        http: httpx.AsyncClient,
        sessions: list[int],
    ) -> None:
        q = "query($id: ID!) { transaction(id: $id) { energyWh meterSamples(first: 2) { measurand } } }"
        tx = data(await gql(http, q, {"id": gid("Transaction", sessions[0])}, token=OPERATOR_TOKEN))
        assert tx["transaction"]["energyWh"] == 2_000
        assert len(tx["transaction"]["meterSamples"]) == 2


class TestHealth:
    async def test_health_and_readiness(self, http: httpx.AsyncClient) -> None:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz")).json() == {"status": "ready"}

    async def test_graphiql_in_a_browser(self, http: httpx.AsyncClient) -> None:
        page = await http.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "graphiql" in page.text.lower()
