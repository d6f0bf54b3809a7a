"""ChargeNet as deployed at scale: gateways, APIs and workers as separate processes on one
PostgreSQL database and one Redis (a private redis-server per test, so it can be restarted).

Chargers are the simulator in this test process, knowing both gateways' addresses the way a
real charger knows a load-balanced host name.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.simulator import SimCharger, SimConfig
from schema.events import TransactionEnded
from tests.builders import ACCEPTED_TAGS, make_station
from tests.cluster import ADMIN_TOKEN, ROOT, Cluster
from tests.dbutil import fetch, scalar
from tests.graphql_client import GraphQLWS, data, gql
from tests.redis_server import RedisServer

# Processes share the database: PostgreSQL only (SQLite is the single-process default).
pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

T = TypeVar("T")
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
START = """
mutation ($s: ID!) { startCharging(input: {stationId: $s, idTag: "TAG-OK-1", connectorId: 1}) {
  outcome message transaction { id state } } }
"""
STOP = "mutation ($t: ID!) { stopCharging(input: {transactionId: $t}) { outcome message } }"
STATION = "query ($cp: String!) { station(chargePointId: $cp) { id online status } }"
TX_UPDATED = """
subscription ($id: ID!) { transactionUpdated(transactionId: $id) { energyWh state } }
"""
STATUS_CHANGED = """
subscription ($id: ID!) { stationStatusChanged(stationId: $id) {
  chargePointId online connectors { connectorId status } reason } }
"""


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.1)


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def cluster(
    engine: AsyncEngine, postgres_url: str, redis_server: RedisServer
) -> AsyncIterator[Cluster]:
    for cpid in ("CP-1", "CP-2"):
        await make_station(engine, charge_point_id=cpid, connectors=1)
    c = Cluster(
        database_url=postgres_url,
        bus_url=redis_server.url,
        extra_env={
            "CHARGENET_WORKER_CLAIM_IDLE": "1",
            "CHARGENET_COMMAND_TIMEOUT": "5",
            "CHARGENET_START_WAIT": "10",
            "CHARGENET_OUTBOX_POLL": "0.05",
        },
    )
    try:
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        await c.aclose()


class Chargers:
    def __init__(self) -> None:
        self.running: list[tuple[SimCharger, asyncio.Task[None]]] = []

    async def start(self, cpid: str, *urls: str) -> SimCharger:
        charger = SimCharger(
            SimConfig(
                charge_point_id=cpid,
                url=urls[0],
                fallback_urls=list(urls[1:]),
                meter_interval_s=0.2,
                heartbeat_interval_s=60,
            )
        )
        self.running.append((charger, asyncio.create_task(charger.run())))
        await asyncio.wait_for(charger.online.wait(), 20)
        return charger

    async def close(self) -> None:
        for charger, task in self.running:
            await charger.close()
            task.cancel()


@pytest.fixture
async def chargers() -> AsyncIterator[Chargers]:
    c = Chargers()
    yield c
    await c.close()


def ocpp(cluster: Cluster, gateway: str) -> str:
    return cluster.ws_url(gateway, "/ocpp")


async def station_id(http: httpx.AsyncClient, cpid: str) -> str:
    async def online() -> str | None:
        station = data(await gql(http, STATION, {"cp": cpid}, token=ADMIN_TOKEN))["station"]
        return station["id"] if station and station["online"] else None

    return await eventually(online)


async def summaries(engine: AsyncEngine, tx_pk: int) -> int:
    return int(
        await scalar(engine, "SELECT count(*) FROM session_summary WHERE transaction_id = :t", t=tx_pk)
    )


def pk(global_id: str) -> int:
    return int(base64.b64decode(global_id).decode().split(":")[1])


class TestAcrossProcesses:
    async def test_commands_events_and_jobs_cross_process_boundaries(
        self, engine: AsyncEngine, cluster: Cluster, chargers: Chargers
    ) -> None:
        # given two gateways, two APIs and two workers, CP-1 on gateway A and CP-2 on gateway B
        for start in (
            cluster.gateway("gw-a"),
            cluster.gateway("gw-b"),
            cluster.api("api-a"),
            cluster.api("api-b"),
            cluster.worker("worker-1"),
            cluster.worker("worker-2"),
        ):
            await start
        cp1 = await chargers.start("CP-1", ocpp(cluster, "gw-a"))
        cp2 = await chargers.start("CP-2", ocpp(cluster, "gw-b"))
        async with (
            httpx.AsyncClient(base_url=cluster.url("api-a"), timeout=30) as api_a,
            httpx.AsyncClient(base_url=cluster.url("api-b"), timeout=30) as api_b,
        ):
            s1, s2 = await station_id(api_b, "CP-1"), await station_id(api_a, "CP-2")
            # when API B starts charging on CP-1, held by gateway A
            started = data(await gql(api_b, START, {"s": s1}, token=ADMIN_TOKEN))["startCharging"]
            # then the command reached the charger and the session came back to API B
            assert started["outcome"] == "ACCEPTED" and started["transaction"], started
            assert cp1.connectors[1].transaction_id == pk(started["transaction"]["id"])
            # when a session on CP-2 (gateway B) runs, a subscriber on API A sees it metered
            other = data(await gql(api_a, START, {"s": s2}, token=ADMIN_TOKEN))["startCharging"]
            tx2 = other["transaction"]["id"]
            live = await GraphQLWS.open(cluster.ws_url("api-a", "/graphql"), payload=AUTH)
            await live.subscribe(TX_UPDATED, {"id": tx2})
            first = (await live.next_payload(10))["transactionUpdated"]["energyWh"]
            assert (await live.next_payload(10))["transactionUpdated"]["energyWh"] > first
            # and stopping both through the other API ends them
            for api, tx in ((api_a, started["transaction"]["id"]), (api_b, tx2)):
                stopped = data(await gql(api, STOP, {"t": tx}, token=ADMIN_TOKEN))["stopCharging"]
                assert stopped["outcome"] == "ACCEPTED", stopped
            await live.close()
        assert cp2.connectors[1].transaction_id is None
        # then one of the two workers recorded each ended session exactly once
        for tx in (started["transaction"]["id"], tx2):
            await eventually(lambda tx=tx: summaries(engine, pk(tx)))
        await asyncio.sleep(1.5)  # time for a duplicate to show up, if there were one
        for tx in (started["transaction"]["id"], tx2):
            assert await summaries(engine, pk(tx)) == 1
        # and both workers told their orchestrator they are alive, through the image's check
        for name in ("worker-1", "worker-2"):
            env = {**os.environ, "CHARGENET_WORKER_ALIVE_FILE": str(cluster.alive_file(name))}
            check = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, str(ROOT / "infra" / "healthcheck.py"), "worker"],
                env=env,
                capture_output=True,
                timeout=30,
            )
            assert check.returncode == 0, check.stdout


class TestFailures:
    async def test_a_gateway_killed_mid_session_loses_nothing(
        self, engine: AsyncEngine, cluster: Cluster, chargers: Chargers
    ) -> None:
        # given a session metering through gateway A, the charger knowing gateway B too
        await cluster.gateway("gw-a")
        await cluster.gateway("gw-b")
        await cluster.worker("worker-1")
        charger = await chargers.start("CP-1", ocpp(cluster, "gw-a"), ocpp(cluster, "gw-b"))
        charger.connectors[1].target_soc = 101
        session = asyncio.create_task(charger.run_session(1, ACCEPTED_TAGS[0]))
        await eventually(lambda: asyncio.sleep(0, result=len(charger.delivered) >= 5))
        # when gateway A dies (kill -9: no goodbye to chargers, no flush)
        cluster.kill("gw-a")
        # then the charger moves to B and the session goes on and completes there
        await eventually(lambda: asyncio.sleep(0, result=charger.online.is_set()))
        delivered_before = len(charger.delivered)
        await eventually(lambda: asyncio.sleep(0, result=len(charger.delivered) >= delivered_before + 5))
        charger.connectors[1].stop_requested = True
        tx = await asyncio.wait_for(session, 30)
        [row] = await fetch(engine, "SELECT state FROM charging_transaction WHERE id = :t", t=tx)
        assert row["state"] == "Completed"
        # and every acknowledged meter value is stored exactly once (SoC: one per MeterValues)
        meter_values = sum(1 for action, _ in charger.delivered if action == "MeterValues")
        soc = await scalar(
            engine, "SELECT count(*) FROM meter_sample WHERE transaction_id = :t AND measurand = 'SoC'", t=tx
        )
        assert soc == meter_values
        # and the durable events were neither lost nor doubled
        await eventually(lambda: summaries(engine, tx))
        ended = await scalar(
            engine, "SELECT count(*) FROM outbox_event WHERE event_type = :k", k=TransactionEnded.kind
        )
        assert ended == 1 and await summaries(engine, tx) == 1

    async def test_a_worker_killed_with_claimed_work_is_replaced(
        self, engine: AsyncEngine, cluster: Cluster, chargers: Chargers
    ) -> None:
        # given two workers, one of them frozen so that work is delivered to it and never acked
        await cluster.gateway("gw-a")
        frozen = await cluster.worker("worker-1")
        await cluster.worker("worker-2")
        frozen.popen.send_signal(signal.SIGSTOP)
        # when sessions end, and then the frozen worker dies
        charger = await chargers.start("CP-1", ocpp(cluster, "gw-a"))
        ended = []
        for minute in range(6):
            tx = (
                await charger.call(
                    "StartTransaction",
                    {"connectorId": 1, "idTag": ACCEPTED_TAGS[0], "meterStart": 0, "timestamp": _ts(minute)},
                )
            )["transactionId"]
            await charger.call(
                "StopTransaction", {"transactionId": tx, "meterStop": 100, "timestamp": _ts(minute, 30)}
            )
            ended.append(tx)
        await asyncio.sleep(1.0)
        cluster.kill("worker-1")
        # then the other worker takes over what it held: every session recorded exactly once
        for tx in ended:
            await eventually(lambda tx=tx: summaries(engine, tx), timeout=30)
        await asyncio.sleep(1.5)
        assert [await summaries(engine, tx) for tx in ended] == [1] * len(ended)

    async def test_redis_restart(
        self, engine: AsyncEngine, cluster: Cluster, chargers: Chargers, redis_server: RedisServer
    ) -> None:
        # given a charger on a gateway and a status subscription on an API
        await cluster.gateway("gw-a")
        await cluster.api("api-a")
        charger = await chargers.start("CP-1", ocpp(cluster, "gw-a"))
        async with httpx.AsyncClient(base_url=cluster.url("api-a"), timeout=30) as api:
            sid = await station_id(api, "CP-1")
            live = await GraphQLWS.open(cluster.ws_url("api-a", "/graphql"), payload=AUTH)
            await live.subscribe(STATUS_CHANGED, {"id": sid})
            await live.next_payload(10)  # the snapshot
            # when Redis goes down
            redis_server.stop()
            # then commands fail at once instead of hanging
            t0 = time.monotonic()
            failed = data(await gql(api, START, {"s": sid}, token=ADMIN_TOKEN))["startCharging"]
            assert failed["outcome"] == "FAILED" and time.monotonic() - t0 < 3, failed
            # and a change made meanwhile reaches the subscriber as a fresh snapshot once Redis is back
            await charger.status(1, "Faulted", "GroundFailure")
            redis_server.start()

            async def faulted() -> bool:
                update = (await live.next_payload(15))["stationStatusChanged"]
                return update["connectors"][0]["status"] == "FAULTED"

            assert await eventually(faulted, timeout=30)
            await charger.status(1, "Available")

            # and commands work again
            async def started() -> dict[str, Any] | None:
                result = data(await gql(api, START, {"s": sid}, token=ADMIN_TOKEN))["startCharging"]
                return result if result["outcome"] == "ACCEPTED" else None

            assert await eventually(started, timeout=30)
            await live.close()


def _ts(minute: int, second: int = 0) -> str:
    return f"2026-01-01T10:{minute:02d}:{second:02d}Z"
