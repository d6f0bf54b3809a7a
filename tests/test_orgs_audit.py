"""The audit log: who did what, when, from where and with what result, including refusals,
readable only inside the organisation and only with audit:read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.builders import make_station
from tests.conftest import OPERATOR_TOKEN, ApiServer
from tests.graphql_client import data, gql
from tests.orgs_world import World, build_world, code, gid

LOG = """query($org: ID, $first: Int, $after: String, $action: String, $actor: ID,
  $since: DateTime, $until: DateTime) {
  auditLog(organizationId: $org, first: $first, after: $after, action: $action, actorUserId: $actor,
    since: $since, until: $until) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { action result targetType targetId ipAddress detail createdAt
      actor { kind label userId } } } } }"""
START = """mutation($station: ID!) { startCharging(input: {stationId: $station, idTag: "TAG-OK-1",
  connectorId: 1}) { outcome } }"""
CHANGE_ROLE = """mutation($org: ID!, $user: ID!, $role: Role!) {
  changeMemberRole(organizationId: $org, userId: $user, role: $role) { role } }"""
REMOVE = "mutation($org: ID!, $user: ID!) { removeMember(organizationId: $org, userId: $user) }"


@pytest.fixture
async def world(engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient) -> World:
    return await build_world(engine, api_server.app.state.auth.keys, http)


def entries(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["node"] for e in data(result)["auditLog"]["edges"]]


class TestRemoteCommandsInTheLog:
    async def test_an_operators_remote_start_shows_for_the_admin_with_the_clients_address(
        self, world: World, engine: AsyncEngine
    ) -> None:
        # given an operator of acme asks a station of acme to start (it is offline)
        station = await make_station(engine, charge_point_id="CP-A")
        started = await world.run("operator", START, {"station": gid("Station", station)})
        assert data(started)["startCharging"]["outcome"] == "STATION_OFFLINE"
        # then the admin reads who tried, from where, and what came of it
        log = entries(await world.run("admin", LOG, {"org": world.acme_id, "action": "station.remote_start"}))
        assert len(log) == 1
        entry = log[0]
        assert entry["actor"] == {
            "kind": "user",
            "label": f"user:{world.users['operator']}",
            "userId": world.account("operator"),
        }
        assert (entry["targetType"], entry["targetId"]) == ("station", str(station))
        assert entry["ipAddress"] == "127.0.0.1"
        assert entry["result"] == "STATION_OFFLINE"
        assert json.loads(str(entry["detail"]))["connector_id"] == 1
        # while the operator, without audit:read, may not read the log
        assert code(await world.run("operator", LOG, {"org": world.acme_id})) == "FORBIDDEN"


class TestChangesAndRefusals:
    async def test_recorded_newest_first_and_filtered(self, world: World) -> None:
        # given a role change, a refused removal and a refused probe of another organisation
        await world.run(
            "admin", CHANGE_ROLE, {"org": world.acme_id, "user": world.account("viewer"), "role": "FINANCE"}
        )
        await world.run("viewer", REMOVE, {"org": world.acme_id, "user": world.account("operator")})
        probe = await world.run(
            "globex-admin", REMOVE, {"org": world.acme_id, "user": world.account("viewer")}
        )
        assert code(probe) == "NOT_FOUND"
        # then acme's log pages through its own two, newest first
        first = data(await world.run("owner", LOG, {"org": world.acme_id, "first": 1}))["auditLog"]
        assert first["totalCount"] == 2 and first["pageInfo"]["hasNextPage"]
        refused = first["edges"][0]["node"]
        assert (refused["action"], refused["result"]) == ("member.remove", "FORBIDDEN")
        assert refused["actor"]["userId"] == world.account("viewer")
        cursor = first["pageInfo"]["endCursor"]
        (change,) = entries(await world.run("owner", LOG, {"org": world.acme_id, "after": cursor}))
        assert (change["action"], change["result"], change["targetId"]) == (
            "member.change_role",
            "OK",
            str(world.users["viewer"]),
        )
        assert json.loads(str(change["detail"])) == {"role": "finance", "previous_role": "viewer"}
        # and filters narrow it
        by_viewer = {"org": world.acme_id, "actor": world.account("viewer")}
        assert [e["action"] for e in entries(await world.run("owner", LOG, by_viewer))] == ["member.remove"]
        now = datetime.now(UTC)
        later = {"org": world.acme_id, "since": (now + timedelta(minutes=1)).isoformat()}
        earlier = {"org": world.acme_id, "until": (now - timedelta(minutes=1)).isoformat()}
        assert entries(await world.run("owner", LOG, later)) == []
        assert entries(await world.run("owner", LOG, earlier)) == []
        # the probe is kept out of acme's log; the platform sees it in the deployment's log
        platform = entries(await gql(world.http, LOG, {"action": "member.remove"}, token=OPERATOR_TOKEN))
        assert [(e["result"], e["actor"]["userId"]) for e in platform] == [
            ("NOT_FOUND", world.account("globex-admin")),
            ("FORBIDDEN", world.account("viewer")),
        ]
        assert code(await world.run("owner", LOG, {})) == "FORBIDDEN"  # members name their organisation
