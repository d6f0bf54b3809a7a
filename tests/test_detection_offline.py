"""A station that stops talking — silent on an open socket, or disconnected and not back
within the grace — is an offline incident with an outage on every connector from the moment
it was last heard; when it is heard again both end, and the outage lengths are recorded."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.service import incidents, offline
from api.service.incidents import ENTRY, INCIDENT, STATION
from api.service.offline import OUTAGE
from api.worker.service import DurableWork
from api.worker.settings import WorkerSettings
from gateway.server import Gateway
from schema.bus import InProcessBus
from schema.timeutil import utcnow
from tests.account_builders import make_user
from tests.conftest import ChargerFactory
from tests.detection_world import (
    FAST_DETECTION,
    HEARTBEAT_S,
    detector,
    gateway,
    kind_is,
    make_watched_station,
    rows,
    wait_for,
)
from tests.redis_server import shared_redis_url, unique_prefix

__all__ = ["detector", "gateway"]  # fixtures, imported for pytest

OFFLINE_GRACE_S = FAST_DETECTION["CHARGENET_OFFLINE_GRACE"]
INTERVAL_S = FAST_DETECTION["CHARGENET_DETECTION_INTERVAL"]
OFFLINE = kind_is("offline")


async def gone_station(engine: AsyncEngine, cpid: str, *, connectors: int, ago: timedelta) -> int:
    """A station last heard `ago`, its socket closed."""
    sid = await make_watched_station(engine, charge_point_id=cpid, connectors=connectors)
    async with engine.begin() as conn:
        await conn.execute(
            STATION.update().where(STATION.c.id == sid).values(online=False, last_seen_at=utcnow() - ago)
        )
    return sid


class TestSilentStation:
    async def test_silence_on_an_open_socket_opens_an_incident_and_outages_then_resolves(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        # given a station that booted and then says nothing, its socket still open
        await make_watched_station(engine, charge_point_id="CP-S1", connectors=2)
        charger = await connect_charger("CP-S1")
        # when heartbeat x 2 + the grace pass
        [incident] = await wait_for(engine, INCIDENT, lambda rows: len(rows) == 1, OFFLINE)
        # then it is offline, detected within the latency bound, with an outage per connector
        # that starts when the station was last heard, not when it was noticed
        [station] = await rows(engine, STATION)
        assert station["online"]  # the socket never closed: detection did not need it to
        assert incident["severity"] == "high" and incident["state"] == "open"
        last_heard = station["last_seen_at"]
        latency = (incident["opened_at"] - last_heard).total_seconds()
        assert 2 * HEARTBEAT_S + OFFLINE_GRACE_S <= latency <= 2 * HEARTBEAT_S + OFFLINE_GRACE_S + 2
        outages = await rows(engine, OUTAGE)
        assert [(o["connector_id"], o["started_at"], o["ended_at"]) for o in outages] == [
            (1, last_heard, None),
            (2, last_heard, None),
        ]
        assert all(o["incident_id"] == incident["id"] for o in outages)
        # when it talks again
        await charger.call("Heartbeat", {})
        [resolved] = await wait_for(engine, INCIDENT, lambda rows: rows[0]["state"] == "resolved", OFFLINE)
        # then the incident resolved itself and the outages end when it was heard
        assert resolved["resolved_by"] is None
        outages = await rows(engine, OUTAGE)
        assert all(o["ended_at"] is not None and o["ended_at"] > o["started_at"] for o in outages)
        [entry] = await rows(engine, ENTRY, ENTRY.c.kind == "resolved")
        seconds = [round((o["ended_at"] - o["started_at"]).total_seconds()) for o in outages]
        assert [d["seconds"] for d in entry["detail"]["outages"]] == seconds
        assert [d["connector_id"] for d in entry["detail"]["outages"]] == [1, 2]

    async def test_a_station_that_keeps_its_heartbeat_is_never_offline(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        # given a station heartbeating every 2 s (last-seen is written every second)
        await make_watched_station(engine, charge_point_id="CP-S2", heartbeat_s=2)
        charger = await connect_charger("CP-S2")
        beating = charger.spawn(charger._heartbeats())
        # when two silence thresholds pass
        await asyncio.sleep(2 * (2 * 2 + OFFLINE_GRACE_S))
        beating.cancel()
        # then nothing was opened
        assert await rows(engine, INCIDENT) == []


class TestDisconnectedStation:
    async def test_a_closed_socket_not_back_within_the_grace_is_offline_until_it_reconnects(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        # given a station whose socket closes
        await make_watched_station(engine, charge_point_id="CP-D1", connectors=1)
        charger = await connect_charger("CP-D1")
        await charger.close()
        # then after the reconnect grace it is offline, its reason recorded
        [incident] = await wait_for(engine, INCIDENT, lambda rows: len(rows) == 1, OFFLINE)
        [opened] = await rows(engine, ENTRY, ENTRY.c.kind == "opened")
        assert opened["detail"]["reason"] == "disconnected"
        # when it reconnects
        await connect_charger("CP-D1")
        [resolved] = await wait_for(engine, INCIDENT, lambda rows: rows[0]["state"] == "resolved", OFFLINE)
        assert resolved["id"] == incident["id"]
        [outage] = await rows(engine, OUTAGE)
        assert outage["ended_at"] is not None


class TestDedupAndReplicas:
    # Replicas share PostgreSQL; a SQLite deployment is one process whose jobs run in turn.
    @pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
    async def test_concurrent_scans_open_one_incident_and_one_outage_per_connector(
        self, engine: AsyncEngine
    ) -> None:
        # given a station last heard long ago with its socket closed
        await gone_station(engine, "CP-R1", connectors=2, ago=timedelta(minutes=10))
        # when two replicas scan at once, and again later
        scan = {"offline_grace_s": 1.0, "reconnect_grace_s": 1.0}
        await asyncio.gather(
            offline.detect_offline(engine, None, **scan), offline.detect_offline(engine, None, **scan)
        )
        await offline.detect_offline(engine, None, **scan)
        # then one incident, seen once (no recurrence per scan), and one outage per connector
        [incident] = await rows(engine, INCIDENT, OFFLINE)
        assert incident["occurrences"] == 1
        assert len(await rows(engine, OUTAGE)) == 2

    async def test_an_incident_a_person_resolved_is_not_reopened_until_the_station_is_heard(
        self, engine: AsyncEngine
    ) -> None:
        await gone_station(engine, "CP-R2", connectors=1, ago=timedelta(days=3))
        scan = {"offline_grace_s": 1.0, "reconnect_grace_s": 1.0}
        await offline.detect_offline(engine, None, **scan)
        [incident] = await rows(engine, INCIDENT, OFFLINE)
        # when an operator resolves it (the station was decommissioned, say)
        user = await make_user(engine, email="ops@example.com")
        async with engine.begin() as conn:
            await incidents.resolve(conn, incident["id"], at=utcnow(), user_id=user, resolution="retired")
        await offline.detect_offline(engine, None, **scan)
        # then the next scan leaves it alone
        assert len(await rows(engine, INCIDENT, OFFLINE)) == 1


class TestWorkerReplicas:
    @pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
    async def test_two_replicas_open_one_incident_for_a_silent_station(
        self, engine: AsyncEngine, gateway: Gateway, bus: InProcessBus, connect_charger: ChargerFactory
    ) -> None:
        # given two `chargenet worker` replicas sharing PostgreSQL and Redis (job locks there)
        prefix = unique_prefix()
        settings = {
            **FAST_DETECTION,
            "CHARGENET_DURABLE_STREAM": f"{prefix}:durable",
            "CHARGENET_JOB_LOCK_PREFIX": f"{prefix}:jobs",
        }
        replicas = [
            DurableWork(
                engine,
                WorkerSettings(**settings, CHARGENET_WORKER_NAME=f"w{n}"),
                bus_url=shared_redis_url(),
                gateway=False,
                worker=True,
                bus=bus,
            )
            for n in range(2)
        ]
        for replica in replicas:
            await replica.start()
        try:
            # when a station goes silent with its socket open
            await make_watched_station(engine, charge_point_id="CP-W1", connectors=2)
            await connect_charger("CP-W1")
            [incident] = await wait_for(engine, INCIDENT, lambda r: len(r) == 1, OFFLINE)
            await asyncio.sleep(5 * INTERVAL_S)  # both replicas keep scanning
        finally:
            for replica in replicas:
                await replica.stop()
        # then one incident, seen once, one outage per connector; both replicas took turns
        [incident] = await rows(engine, INCIDENT, OFFLINE)
        assert incident["occurrences"] == 1
        assert len(await rows(engine, OUTAGE)) == 2
        turns = [r.scheduler.runs["detect-offline"] for r in replicas if r.scheduler is not None]
        assert sum(turns) >= 3
