"""Uptime through the real API on real databases: an organisation's roll-up and its flagged
stations from outages the test writes itself (tests/uptime_world.py), operators classifying
outages (audited) and withdrawing the classification, and nobody reading or classifying another
organisation's ports."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from schema.account_models import AuditEntry
from schema.db import session_factory
from schema.timeutil import utcnow
from tests.conftest import ApiServer
from tests.orgs_world import World, code, gid
from tests.uptime_world import DAY, Fleet, add_outage, build_fleet, mu

UPTIME = """
query ($o: ID!, $months: Int) {
  uptime(organizationId: $o, months: $months) {
    start end months threshold uptime ports stationsBelowThreshold
    locations { name uptime stations ports }
    stations { chargePointId uptime belowThreshold
      ports { connectorId figure { uptime periodMinutes outageMinutes excludedMinutes }
              months { month figure { uptime outageMinutes excludedMinutes } } } } } }"""
BELOW = """
query ($o: ID!) { stationsBelowUptime(organizationId: $o) { chargePointId uptime belowThreshold } }"""
OUTAGES = """
query ($s: ID!, $from: DateTime!, $to: DateTime!) {
  portOutages(stationId: $s, from: $from, to: $to) {
    connectorId cause errorCode start end durationMinutes
    exclusions { id connectorId reason note revokedAt } } }"""
EXCLUDE = """
mutation ($s: ID!, $c: Int, $start: DateTime!, $end: DateTime!, $r: ExclusionReason!, $n: String) {
  excludeOutage(stationId: $s, connectorId: $c, start: $start, end: $end, reason: $r, note: $n) {
    id connectorId reason note revokedAt } }"""
REVOKE = """
mutation ($id: ID!, $n: String) { revokeOutageExclusion(id: $id, note: $n) { id revokedAt } }"""


@pytest.fixture
async def fleet(engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient) -> Fleet:
    return await build_fleet(engine, api_server, http)


async def ok(world: World, who: str, query: str, **variables: object) -> dict:  # type: ignore[type-arg]
    result = await world.run(who, query, dict(variables))
    assert not result.get("errors"), result
    return result["data"]  # type: ignore[no-any-return]


def station(report: dict, cp: str) -> dict:  # type: ignore[type-arg]
    return next(s for s in report["stations"] if s["chargePointId"] == cp)


class TestRollUp:
    async def test_ports_stations_locations_and_the_network_from_hand_computed_minutes(
        self, fleet: Fleet
    ) -> None:
        w, p = fleet.world, fleet.window_minutes
        report = (await ok(w, "viewer", UPTIME, o=w.acme_id))["uptime"]
        assert len(report["months"]) == 12 and report["months"][-1] == f"{fleet.m:%Y-%m}"
        assert report["threshold"] == 97.0
        cp1, cp2 = station(report, "CP-1"), station(report, "CP-2")
        port1, port2 = cp1["ports"]
        assert port1["figure"] == {
            "uptime": pytest.approx(mu(p, 180)),
            "periodMinutes": p,
            "outageMinutes": 180,
            "excludedMinutes": 0,
        }
        assert port2["figure"]["uptime"] == 100.0
        m1 = port1["months"][-1]
        assert m1["month"] == f"{fleet.m:%Y-%m}"
        assert m1["figure"]["uptime"] == pytest.approx(mu(fleet.m_minutes, 180))
        cp2_port = cp2["ports"][0]
        assert [x["figure"]["outageMinutes"] for x in cp2_port["months"][-2:]] == [60, 60 + 12 * DAY]
        assert cp2_port["figure"]["uptime"] == pytest.approx(mu(p, 120 + 12 * DAY))
        # each port counts once: CP-1 is the mean of its two, the network of all three
        assert cp1["uptime"] == pytest.approx((mu(p, 180) + 100) / 2)
        assert report["uptime"] == pytest.approx((mu(p, 180) + 100 + mu(p, 120 + 12 * DAY)) / 3)
        assert report["ports"] == 3
        assert (cp1["belowThreshold"], cp2["belowThreshold"]) == (False, True)
        assert report["stationsBelowThreshold"] == 1
        assert sorted(loc["ports"] for loc in report["locations"]) == [1, 2]

    async def test_stations_below_the_threshold(self, fleet: Fleet) -> None:
        below = (await ok(fleet.world, "technician", BELOW, o=fleet.world.acme_id))["stationsBelowUptime"]
        assert [b["chargePointId"] for b in below] == ["CP-2"]
        assert below[0]["uptime"] < 97

    async def test_another_organisation_is_forbidden(self, fleet: Fleet) -> None:
        w = fleet.world
        assert code(await w.run("owner", UPTIME, {"o": w.globex_id})) == "FORBIDDEN"
        report = (await ok(w, "globex-owner", UPTIME, o=w.globex_id))["uptime"]
        assert [s["chargePointId"] for s in report["stations"]] == ["GLOBEX-1"]


class TestClassifying:
    async def test_a_station_wide_exclusion_counts_only_where_a_port_was_down_and_is_audited(
        self, engine: AsyncEngine, fleet: Fleet
    ) -> None:
        w, p, m = fleet.world, fleet.window_minutes, fleet.m
        # a utility interruption 11:30–14:00 on day 3 overlaps port 1's outage by 90 minutes
        made = await ok(
            w,
            "operator",
            EXCLUDE,
            s=gid("Station", fleet.cp1),
            start=(m + timedelta(days=2, hours=11, minutes=30)).isoformat(),
            end=(m + timedelta(days=2, hours=14)).isoformat(),
            r="UTILITY_INTERRUPTION",
            n="grid operator ticket 4711",
        )
        exclusion = made["excludeOutage"]
        assert exclusion["connectorId"] is None and exclusion["reason"] == "UTILITY_INTERRUPTION"
        port1, port2 = station((await ok(w, "viewer", UPTIME, o=w.acme_id))["uptime"], "CP-1")["ports"]
        assert port1["figure"]["excludedMinutes"] == 90
        assert port1["figure"]["uptime"] == pytest.approx(mu(p, 180, 90))
        assert port2["figure"]["excludedMinutes"] == 0
        # the review lists both overlapping outages of port 1 with the exclusion on each
        review = (
            await ok(
                w,
                "viewer",
                OUTAGES,
                s=gid("Station", fleet.cp1),
                **{"from": m.isoformat(), "to": (m + timedelta(days=28)).isoformat()},
            )
        )["portOutages"]
        assert [(o["connectorId"], o["durationMinutes"]) for o in review] == [(1, 120), (1, 120)]
        assert [[x["id"] for x in o["exclusions"]] for o in review] == [[exclusion["id"]]] * 2
        assert review[0]["cause"] == "FAULTED" and review[0]["errorCode"] == "GroundFailure"
        async with session_factory(engine)() as s:
            audit = (await s.exec(select(AuditEntry).where(AuditEntry.action == "uptime.exclude"))).all()
        assert len(audit) == 1
        assert audit[0].organization_id == w.acme
        assert "grid operator ticket 4711" in (audit[0].detail or "")

    async def test_revoking_counts_the_minutes_again_once(self, engine: AsyncEngine, fleet: Fleet) -> None:
        w, p, m = fleet.world, fleet.window_minutes, fleet.m
        made = await ok(
            w,
            "technician",
            EXCLUDE,
            s=gid("Station", fleet.cp2),
            c=1,
            start=(m + timedelta(days=9)).isoformat(),
            end=(m + timedelta(days=12)).isoformat(),
            r="VANDALISM",
        )
        xid = made["excludeOutage"]["id"]
        port = station((await ok(w, "viewer", UPTIME, o=w.acme_id))["uptime"], "CP-2")["ports"][0]
        assert port["figure"]["excludedMinutes"] == 3 * DAY
        revoked = await ok(w, "operator", REVOKE, id=xid, n="it was a firmware bug after all")
        assert revoked["revokeOutageExclusion"]["revokedAt"] is not None
        port = station((await ok(w, "viewer", UPTIME, o=w.acme_id))["uptime"], "CP-2")["ports"][0]
        assert port["figure"]["uptime"] == pytest.approx(mu(p, 120 + 12 * DAY))
        assert code(await w.run("operator", REVOKE, {"id": xid})) == "INVALID_INPUT"
        async with session_factory(engine)() as s:
            actions = (await s.exec(select(AuditEntry.action).order_by(col(AuditEntry.id)))).all()
        assert [a for a in actions if a.startswith("uptime.")] == [
            "uptime.exclude",
            "uptime.revoke_exclusion",
        ]

    async def test_readers_cannot_classify_and_nobody_touches_another_organisation(
        self, fleet: Fleet
    ) -> None:
        w, m = fleet.world, fleet.m
        args = {
            "start": m.isoformat(),
            "end": (m + timedelta(hours=1)).isoformat(),
            "r": "NATURAL_DISASTER",
        }
        assert code(await w.run("viewer", EXCLUDE, {"s": gid("Station", fleet.cp1), **args})) == "FORBIDDEN"
        assert code(await w.run("finance", EXCLUDE, {"s": gid("Station", fleet.cp1), **args})) == "FORBIDDEN"
        assert code(await w.run("owner", EXCLUDE, {"s": gid("Station", fleet.other), **args})) == "NOT_FOUND"
        assert code(await w.run("outsider", EXCLUDE, {"s": gid("Station", fleet.cp1), **args})) == "NOT_FOUND"
        period = {"from": m.isoformat(), "to": (m + timedelta(days=28)).isoformat()}
        assert (
            code(await w.run("owner", OUTAGES, {"s": gid("Station", fleet.other), **period})) == "NOT_FOUND"
        )
        theirs = await ok(w, "globex-admin", EXCLUDE, s=gid("Station", fleet.other), **args)
        xid = theirs["excludeOutage"]["id"]
        assert code(await w.run("owner", REVOKE, {"id": xid})) == "NOT_FOUND"

    async def test_bad_intervals_and_unknown_ports_are_input_errors(self, fleet: Fleet) -> None:
        w, m = fleet.world, fleet.m
        s = gid("Station", fleet.cp1)
        backwards = {"start": m.isoformat(), "end": m.isoformat(), "r": "VANDALISM"}
        assert code(await w.run("operator", EXCLUDE, {"s": s, **backwards})) == "INVALID_INPUT"
        port9 = {
            "c": 9,
            "start": m.isoformat(),
            "end": (m + timedelta(hours=1)).isoformat(),
            "r": "VANDALISM",
        }
        assert code(await w.run("operator", EXCLUDE, {"s": s, **port9})) == "NOT_FOUND"


class TestOutageReview:
    async def test_an_open_outage_lasts_until_now(self, engine: AsyncEngine, fleet: Fleet) -> None:
        now = utcnow()
        await add_outage(engine, fleet.cp2, 1, now - timedelta(hours=2), None)
        period = {"from": (now - timedelta(days=1)).isoformat(), "to": (now + timedelta(days=1)).isoformat()}
        review = (await ok(fleet.world, "viewer", OUTAGES, s=gid("Station", fleet.cp2), **period))[
            "portOutages"
        ]
        assert len(review) == 1 and review[0]["end"] is None
        assert 120 <= review[0]["durationMinutes"] < 130
