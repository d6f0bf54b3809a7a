"""Station health in GraphQL: operators of the station's organisation read the score and why
(`stationHealth`, `Station.health`) and their worst stations (`unhealthyStations`); other
organisations and drivers never do."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from api.service import health_repository as repo
from api.service.health import HealthPolicy
from api.service.health_job import refresh_health
from schema.timeutil import utcnow
from tests.builders import make_station
from tests.conftest import ApiServer
from tests.health_builders import troubled_station
from tests.orgs_world import World, build_world, code, gid

STATION_HEALTH = """
query ($id: ID!) {
  stationHealth(stationId: $id) {
    score degraded degradedSince threshold windowStart computedAt
    factors { kind count outOf value zeroAt subScore weight }
    station { chargePointId }
  }
}"""
STATION_WITH_HEALTH = "query ($id: ID!) { station(id: $id) { chargePointId health { score degraded } } }"
UNHEALTHY = """
query ($org: ID!, $below: Int) {
  unhealthyStations(organizationId: $org, below: $below) { score stationId station { chargePointId } }
}"""


@pytest.fixture
async def world(engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient) -> World:
    return await build_world(engine, api_server.app.state.auth.keys, http)


@pytest.fixture
async def scored(engine: AsyncEngine, world: World) -> dict[str, int]:
    """Acme: a troubled and a quiet station; Globex: a troubled one. Scored once."""
    now = utcnow()
    stations = {
        "troubled": await troubled_station(engine, cpid="CP-HA1", now=now),
        "quiet": await make_station(engine, charge_point_id="CP-HA2"),
        "globex": await troubled_station(engine, cpid="CP-HG1", now=now),
    }
    async with engine.begin() as conn:
        await conn.execute(
            update(repo.STATION)
            .where(repo.STATION.c.id == stations["globex"])
            .values(organization_id=world.globex)
        )
    await refresh_health(engine, HealthPolicy(), now=now)
    return stations


class TestReadingHealth:
    async def test_an_operator_sees_the_score_and_why(self, world: World, scored: dict[str, int]) -> None:
        result = await world.run("viewer", STATION_HEALTH, {"id": gid("Station", scored["troubled"])})
        health = result["data"]["stationHealth"]
        assert health["score"] < 60 and health["degraded"] and health["degradedSince"] is not None
        assert health["threshold"] == 60 and health["station"]["chargePointId"] == "CP-HA1"
        factors = {f["kind"]: f for f in health["factors"]}
        assert set(factors) == {"FAULTS", "FAILED_SESSIONS", "REBOOTS", "HEARTBEAT_GAPS", "LOW_POWER"}
        assert (factors["FAULTS"]["count"], factors["FAULTS"]["weight"]) == (10, 30)
        assert (factors["FAILED_SESSIONS"]["count"], factors["FAILED_SESSIONS"]["outOf"]) == (5, 6)
        assert factors["REBOOTS"]["outOf"] is None and factors["REBOOTS"]["subScore"] < 100

    async def test_the_station_carries_its_health_for_its_operators_only(
        self, world: World, scored: dict[str, int]
    ) -> None:
        variables = {"id": gid("Station", scored["quiet"])}
        mine = await world.run("technician", STATION_WITH_HEALTH, variables)
        assert mine["data"]["station"]["health"] == {"score": 100, "degraded": False}
        for stranger in ("globex-owner", "outsider"):
            theirs = await world.run(stranger, STATION_WITH_HEALTH, variables)
            assert code(theirs) == "FORBIDDEN"
            assert theirs["data"]["station"] is None or theirs["data"]["station"]["health"] is None

    async def test_another_organisations_station_has_no_health_to_read(
        self, world: World, scored: dict[str, int]
    ) -> None:
        result = await world.run("owner", STATION_HEALTH, {"id": gid("Station", scored["globex"])})
        assert result["data"]["stationHealth"] is None
        driver = await world.run("outsider", STATION_HEALTH, {"id": gid("Station", scored["troubled"])})
        assert code(driver) == "FORBIDDEN"


class TestUnhealthyStations:
    async def test_degraded_stations_by_default_and_worst_first_below_a_score(
        self, world: World, scored: dict[str, int]
    ) -> None:
        degraded = await world.run("operator", UNHEALTHY, {"org": world.acme_id})
        rows = degraded["data"]["unhealthyStations"]
        assert [r["station"]["chargePointId"] for r in rows] == ["CP-HA1"]
        everything = await world.run("operator", UNHEALTHY, {"org": world.acme_id, "below": 101})
        rows = everything["data"]["unhealthyStations"]
        assert [r["stationId"] for r in rows] == [
            gid("Station", scored["troubled"]),
            gid("Station", scored["quiet"]),
        ]
        assert rows[0]["score"] < rows[1]["score"] == 100

    async def test_other_organisations_and_drivers_are_refused(
        self, world: World, scored: dict[str, int]
    ) -> None:
        assert code(await world.run("globex-owner", UNHEALTHY, {"org": world.acme_id})) == "NOT_FOUND"
        assert code(await world.run("outsider", UNHEALTHY, {"org": world.acme_id})) == "FORBIDDEN"
        bad = await world.run("owner", UNHEALTHY, {"org": world.acme_id, "below": 500})
        assert code(bad) == "INVALID_INPUT"
