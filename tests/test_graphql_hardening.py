"""Production switches and abuse limits of the GraphQL endpoint."""

from __future__ import annotations

import httpx

from tests.conftest import ApiServerFactory
from tests.graphql_client import data, gql

INTROSPECT = "{ __schema { queryType { name } } }"
FAN_OUT = """
{ stations(first: 100) { edges { node { id location {
    stations { id connectors { connectorId status } }
} } } } }
"""
DASHBOARD = """
query Dashboard($n: Int) { stations(first: $n) { totalCount edges { node {
    id chargePointId status online lastSeenAt
    location { id name city }
    connectors { connectorId status errorCode maxPowerW }
} } } }
"""


class TestQueryCost:
    async def test_fan_out_is_refused_before_it_runs(self, http: httpx.AsyncClient) -> None:
        result = await gql(http, FAN_OUT)
        error = result["errors"][0]
        assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
        assert error["extensions"]["cost"] > error["extensions"]["limit"]
        assert "data" not in result or result["data"] is None

    async def test_a_full_dashboard_page_fits(self, http: httpx.AsyncClient) -> None:
        # A variable page size counts as the maximum (100): the busiest real screen still fits.
        assert data(await gql(http, DASHBOARD, {"n": 100}))["stations"]["totalCount"] == 0


class TestProductionSwitches:
    async def test_introspection_on_by_default(self, http: httpx.AsyncClient) -> None:
        assert data(await gql(http, INTROSPECT))["__schema"]["queryType"]["name"] == "Query"

    async def test_introspection_and_graphiql_off(self, api_server_factory: ApiServerFactory) -> None:
        server = await api_server_factory(CHARGENET_GRAPHQL_INTROSPECTION=False, CHARGENET_GRAPHIQL=False)
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            refused = await gql(client, INTROSPECT)
            assert "introspection" in refused["errors"][0]["message"].lower()
            # ordinary queries still work
            assert data(await gql(client, "{ locations(first: 1) { totalCount } }"))
            page = await client.get("/graphql", headers={"Accept": "text/html"})
            assert page.status_code != 200 or "graphiql" not in page.text.lower()
