"""The health job on real databases: every input gathered from the rows the gateway and the
worker write, a station sliding below the threshold opening one low-severity DEGRADED incident
with its inputs as evidence, and the station recovering resolving it — live on the bus after
the commit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.service import health_repository as repo
from api.service import incidents
from api.service.health import FactorKind, HealthPolicy
from api.service.health_job import degraded_key, refresh_health
from api.service.health_settings import HealthSettings
from api.worker.service import DurableWork, scheduled_jobs
from api.worker.settings import WorkerSettings
from gateway.server import Gateway
from schema.bus import InProcessBus
from schema.events import organization_incidents_topic
from schema.timeutil import utcnow
from tests.account_builders import make_user
from tests.builders import make_station
from tests.conftest import ChargerFactory
from tests.dbutil import fetch, scalar
from tests.health_builders import (
    add_boots,
    add_faults,
    add_offline_episodes,
    add_power_samples,
    add_sessions,
    troubled_station,
)
from tests.ocpp201 import eventually

POLICY = HealthPolicy()  # 7 days, threshold 60, hysteresis 10


class TestInputs:
    async def test_each_input_is_gathered_from_its_rows(self, engine: AsyncEngine) -> None:
        # given
        now = utcnow()
        sid = await troubled_station(engine, cpid="CP-H1", now=now)
        quiet = await make_station(engine, charge_point_id="CP-H2")
        # when
        async with engine.connect() as conn:
            inputs = await repo.gather_inputs(conn, POLICY, repo.Window(now - timedelta(days=7), now))
        # then
        got = inputs[sid]
        assert got.faults == 10
        # 20, 0 and 50 Wh failed, PowerLoss failed, 15 kWh fine; the refused start counts, the
        # unconfirmed payment does not
        assert (got.failed_sessions, got.session_attempts) == (5, 6)
        assert got.reboots == 5
        assert got.heartbeat_gaps == 4
        assert (got.underpowered_sessions, got.low_soc_sessions) == (1, 1)
        assert inputs[quiet] == type(got)()

    async def test_a_session_at_full_power_is_not_underpowered(self, engine: AsyncEngine) -> None:
        now = utcnow()
        sid = await make_station(engine, charge_point_id="CP-H3", power_w=11_000)
        [tx] = await add_sessions(engine, sid, started=now - timedelta(days=1), energy_wh=[20_000])
        # 10.5 kW at low SoC, then a taper above 50 % that must not count
        points = [(10_500.0, 30.0)] * 5 + [(1_000.0, 80.0)] * 5
        await add_power_samples(engine, sid, tx, start=now - timedelta(days=1), points=points)
        async with engine.connect() as conn:
            inputs = await repo.gather_inputs(conn, POLICY, repo.Window(now - timedelta(days=7), now))
        assert (inputs[sid].underpowered_sessions, inputs[sid].low_soc_sessions) == (0, 1)


class TestFromARealCharger:
    async def test_a_chargers_own_messages_feed_the_inputs(
        self, engine: AsyncEngine, gateway: Gateway, connect_charger: ChargerFactory, durable: DurableWork
    ) -> None:
        # given a 150 kW station whose simulated hardware delivers 22 kW at most
        sid = await make_station(engine, charge_point_id="CP-HS", connectors=1, power_w=150_000)
        cp = await connect_charger(
            "CP-HS", connectors=[22_000], speed=6_000, heartbeat_interval_s=3_600, id_tags=["TAG-OK-1"]
        )
        # when it faults twice, boots again, and charges one car to its target
        for _ in range(2):
            await cp.status(1, "Faulted", "GroundFailure", vendorErrorCode="E-GF-01")
            await cp.status(1, "Available")
        await cp.boot()
        tx = await asyncio.wait_for(cp.run_session(1, "TAG-OK-1"), 60)
        assert tx is not None
        await gateway.message_log.flush()
        # (the worker keeps the session's power at low SoC when it ends)
        checked = f"SELECT count(*) FROM session_power_check WHERE transaction_id = {tx}"
        await eventually(lambda: _is_one(scalar(engine, checked)), timeout=10)
        # then each input reads what it sent
        now = utcnow()
        every_boot = replace(POLICY, reboot_merge_s=0)
        async with engine.connect() as conn:
            inputs = await repo.gather_inputs(conn, every_boot, repo.Window(now - timedelta(days=7), now))
        got = inputs[sid]
        assert got.faults == 2
        assert got.reboots == 2
        assert (got.failed_sessions, got.session_attempts) == (0, 1)
        assert (got.underpowered_sessions, got.low_soc_sessions) == (1, 1)


class TestSessionPowerCheck:
    async def test_kept_once_per_session_and_only_with_low_soc_samples(self, engine: AsyncEngine) -> None:
        now = utcnow()
        sid = await make_station(engine, charge_point_id="CP-HP", power_w=50_000)
        low, high = await add_sessions(
            engine, sid, started=now - timedelta(hours=5), energy_wh=[9_000, 9_000]
        )
        # 20 kW then 30 kW below 50 %, and a taper above that must not count: average 25 kW
        await add_power_samples(
            engine,
            sid,
            low,
            start=now - timedelta(hours=5),
            points=[(20_000.0, 30.0), (30_000.0, 45.0), (5_000.0, 90.0)],
        )
        await add_power_samples(engine, sid, high, start=now - timedelta(hours=4), points=[(40_000.0, 60.0)])
        async with engine.begin() as conn:  # a redelivered TransactionEnded changes nothing
            assert await repo.check_session_power(conn, low, stopped_at=now, low_soc_percent=50.0)
        rows = await fetch(engine, "SELECT * FROM session_power_check")
        assert [
            (r["transaction_id"], r["low_soc_avg_power_w"], r["rated_power_w"], r["samples"]) for r in rows
        ] == [(low, 25_000, 50_000, 2)]


class TestEarlyWarning:
    async def test_a_degrading_station_opens_one_low_incident_and_recovery_resolves_it(
        self, engine: AsyncEngine
    ) -> None:
        # given a station with a bad week, and someone watching its organisation's incidents
        now = utcnow()
        sid = await troubled_station(engine, cpid="CP-H4", now=now)
        healthy = await make_station(engine, charge_point_id="CP-H5")
        org = await scalar(engine, f"SELECT organization_id FROM charging_station WHERE id = {sid}")
        bus = InProcessBus()
        alerts = bus.subscribe(organization_incidents_topic(org))

        # when the job runs
        run = await refresh_health(engine, POLICY, bus=bus, now=now)

        # then the station is below the threshold, with its reasons stored
        assert run.scored >= 2 and len(run.opened) == 1 and not run.resolved
        [row] = await fetch(engine, f"SELECT * FROM station_health WHERE station_id = {sid}")
        assert row["score"] < POLICY.threshold and row["degraded"]
        factors = {f["kind"]: f for f in _json(row["factors"])}
        assert factors[FactorKind.FAULTS.value]["count"] == 10
        assert factors[FactorKind.REBOOTS.value]["sub_score"] < 100
        healthy_row = (await fetch(engine, f"SELECT * FROM station_health WHERE station_id = {healthy}"))[0]
        assert (healthy_row["score"], healthy_row["degraded"]) == (100, False)
        # and one low-severity DEGRADED incident opened, with the inputs as evidence
        [incident] = await fetch(engine, "SELECT * FROM incident")
        assert (incident["kind"], incident["severity"], incident["state"]) == ("degraded", "low", "open")
        assert incident["dedup_key"] == degraded_key(sid) and incident["station_id"] == sid
        assert f"Health score {row['score']} below 60" in incident["title"]
        [entry] = await fetch(engine, f"SELECT * FROM incident_entry WHERE incident_id = {incident['id']}")
        evidence = _json(entry["detail"])
        assert evidence["score"] == row["score"] and len(evidence["factors"]) == 5
        event = await asyncio.wait_for(anext(alerts), 1)
        assert (event.change, event.incident_kind, event.station_id) == ("opened", "degraded", sid)  # type: ignore[attr-defined]

        # when it runs again on the same week: nothing new, not even a recurrence
        again = await refresh_health(engine, POLICY, bus=bus, now=now + timedelta(minutes=5))
        assert again.opened == () and again.resolved == ()
        assert await scalar(engine, "SELECT occurrences FROM incident") == 1
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(alerts), 0.2)

        # when a week later the bad days have left the window
        later = await refresh_health(engine, POLICY, bus=bus, now=now + timedelta(days=8))

        # then the incident resolved itself, by nobody, and the operator saw it live
        assert later.resolved == (incident["id"],)
        resolved = (await fetch(engine, f"SELECT * FROM incident WHERE id = {incident['id']}"))[0]
        assert resolved["state"] == "resolved" and resolved["resolved_by"] is None
        assert "recovered to 100" in resolved["resolution"]
        row = (await fetch(engine, f"SELECT * FROM station_health WHERE station_id = {sid}"))[0]
        assert (row["score"], row["degraded"], row["degraded_since"]) == (100, False, None)
        event = await asyncio.wait_for(anext(alerts), 1)
        assert (event.change, event.state) == ("resolved", "resolved")  # type: ignore[attr-defined]

    async def test_a_warning_resolved_by_hand_is_not_reopened_until_the_station_degrades_again(
        self, engine: AsyncEngine
    ) -> None:
        # given a degraded station whose warning an operator resolved by hand
        now = utcnow()
        sid = await troubled_station(engine, cpid="CP-H8", now=now)
        first = await refresh_health(engine, POLICY, now=now)
        user = await make_user(engine, email="ops@example.com")
        async with engine.begin() as conn:
            await incidents.resolve(conn, first.opened[0], at=now, user_id=user, resolution="known, on order")
        # when the job runs again while it is still degraded: nothing reopens
        still = await refresh_health(engine, POLICY, now=now + timedelta(hours=1))
        assert still.opened == () and await scalar(engine, "SELECT count(*) FROM incident") == 1
        # when it recovers (nothing to resolve) and then degrades again: a new warning
        recovered = await refresh_health(engine, POLICY, now=now + timedelta(days=8))
        assert recovered.resolved == ()
        later = now + timedelta(days=8)
        await add_faults(engine, sid, at=[later - timedelta(hours=h) for h in range(1, 15)])
        await add_boots(engine, "CP-H8", at=[later - timedelta(days=d, hours=1) for d in range(7)])
        again = await refresh_health(engine, POLICY, now=later + timedelta(minutes=1))
        assert len(again.opened) == 1 and again.opened != first.opened
        states = [r["state"] for r in await fetch(engine, "SELECT state FROM incident ORDER BY id")]
        assert states == ["resolved", "open"]

    async def test_one_run_opens_a_warning_for_every_degraded_station(self, engine: AsyncEngine) -> None:
        # given more degraded stations than PostgreSQL plans a prepared statement for before it
        # switches to a generic plan (5): the insert must still find the open-incident index
        now = utcnow()
        for n in range(8):
            sid = await make_station(engine, charge_point_id=f"CP-HF{n}")
            await add_faults(engine, sid, at=[now - timedelta(hours=h) for h in range(1, 15)])
            await add_boots(engine, f"CP-HF{n}", at=[now - timedelta(days=d, hours=1) for d in range(7)])
        run = await refresh_health(engine, POLICY, now=now)
        assert len(run.opened) == 8
        assert await scalar(engine, "SELECT count(*) FROM incident WHERE kind = 'degraded'") == 8

    async def test_replicas_running_at_once_open_one_incident(self, engine: AsyncEngine, db_url: str) -> None:
        if not db_url.startswith("postgresql"):
            pytest.skip("SQLite serialises writers; overlapping runs need PostgreSQL")
        now = utcnow()
        await troubled_station(engine, cpid="CP-H7", now=now)
        runs = await asyncio.gather(*(refresh_health(engine, POLICY, now=now) for _ in range(4)))
        assert sum(len(r.opened) for r in runs) == 1
        assert await scalar(engine, "SELECT count(*) FROM incident") == 1
        assert all(r.skipped or r.scored == 1 for r in runs)

    async def test_a_score_inside_the_hysteresis_band_keeps_the_warning_open(
        self, engine: AsyncEngine
    ) -> None:
        # given a day of 14 faults (faults sub-score 0), one offline episode (1/7 a day: 92.86)
        # and, five days ago, 7 reboots (1 a day: 0): 100 − 30 − 15 − 1.07 → 54, degraded
        now = utcnow()
        sid = await make_station(engine, charge_point_id="CP-H6")
        await add_faults(engine, sid, at=[now - timedelta(hours=h) for h in range(1, 15)])
        await add_offline_episodes(engine, sid, at=[now - timedelta(hours=2)])
        await add_boots(engine, "CP-H6", at=[now - timedelta(days=5, hours=h) for h in range(7)])
        first = await refresh_health(engine, POLICY, now=now)
        assert len(first.opened) == 1
        assert await scalar(engine, f"SELECT score FROM station_health WHERE station_id = {sid}") == 54

        # when three days later the reboots have left the window: 100 − 30 − 1.07 → 69
        later = await refresh_health(engine, POLICY, now=now + timedelta(days=3))

        # then 69 is above the threshold but inside the band: the warning stays open
        assert await scalar(engine, f"SELECT score FROM station_health WHERE station_id = {sid}") == 69
        assert later.resolved == () and later.opened == ()
        assert await scalar(engine, "SELECT state FROM incident") == "open"
        assert await scalar(engine, f"SELECT degraded FROM station_health WHERE station_id = {sid}") in (
            True,
            1,
        )


async def _is_one(value: Awaitable[Any]) -> bool:
    return bool(await value == 1)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


class TestSchedule:
    def test_the_worker_runs_the_job_at_the_configured_interval(
        self, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CHARGENET_HEALTH_INTERVAL_S", "120")
        monkeypatch.setenv("CHARGENET_HEALTH_THRESHOLD", "75")
        jobs = {job.name: job for job in scheduled_jobs(engine, WorkerSettings(), None)}
        assert jobs["station-health"].interval_s == 120
        assert HealthSettings().policy().threshold == 75
