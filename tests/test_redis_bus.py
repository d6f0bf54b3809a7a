"""The Redis bus between processes: events fan out, commands reach the owning gateway, Redis
restarts are survived, and a real gateway and a real API on two buses work as one system.

Each bus here is a separate "process" (its own connections and node id) on a shared Redis,
under a key prefix of its own test. Outage tests run their own redis-server.
"""

from __future__ import annotations

import asyncio
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
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from api.control.service import CommandOutcome, send
from gateway.server import Gateway
from schema.bus import BUS_RESUMED, Subscription
from schema.commands import Command, CommandReply, Reset, ResetKind, TriggerMessage
from schema.db import create_engine
from schema.errors import BusUnavailable, CommandFailed, CommandTimeout, StationOffline
from schema.events import ConnectorState, Event, StationStatusChanged, TransactionUpdated
from schema.migrate import upgrade
from schema.models import ChargingStation, Transaction
from schema.redis_bus import RedisBus, bus_from_url
from schema.timeutil import utcnow
from tests.builders import ACCEPTED_TAGS, make_station
from tests.conftest import OPERATOR_TOKEN, ApiServer, ChargerFactory
from tests.graphql_client import GraphQLWS, data, gql
from tests.redis_server import RedisServer, shared_redis_url, unique_prefix
from tests.test_cli_serve import free_port
from tests.test_graphql_live import START, STATION_STATUS, TX_UPDATED, gid

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
BusFactory = Callable[..., Awaitable[RedisBus]]


@pytest.fixture
def redis_url() -> str:
    return shared_redis_url()


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture
async def make_bus(redis_url: str, prefix: str) -> AsyncIterator[BusFactory]:
    """Start a RedisBus: one per simulated process, all under this test's prefix by default."""
    buses: list[RedisBus] = []

    async def factory(url: str = redis_url, *, start: bool = True, **options: Any) -> RedisBus:
        options.setdefault("prefix", prefix)
        bus = RedisBus(url, **options)
        buses.append(bus)
        if start:
            await bus.start()
        return bus

    yield factory
    for bus in buses:
        await bus.aclose()


def status_event(station_id: int = 1, *, status: str = "Available") -> StationStatusChanged:
    return StationStatusChanged(
        station_id=station_id,
        charge_point_id=f"CP-{station_id}",
        location_id=7,
        at=utcnow(),
        online=True,
        station_status=status,
        station_error_code="NoError",
        connectors=(ConnectorState(1, status, "NoError", utcnow()),),
        changed_connector_id=1,
    )


def answering(status: str = "Accepted", seen: list[Command] | None = None) -> Any:
    async def executor(command: Command, timeout: float) -> CommandReply:
        if seen is not None:
            seen.append(command)
        return CommandReply(status, {"by": status})

    return executor


async def joined(sub: Subscription) -> Subscription:
    """The first subscription of a process waits for the events channel to be joined."""
    assert await sub.next(2) is BUS_RESUMED
    return sub


async def owned_by(bus: RedisBus, cpid: str, node: str | None, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while (owner := await bus.owner_of(cpid)) != node:
        assert time.monotonic() < deadline, f"{cpid} owned by {owner}, expected {node}"
        await asyncio.sleep(0.01)


async def eventually(attempt: Callable[[], Awaitable[T]], timeout: float = 5.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await attempt()
        except (BusUnavailable, StationOffline):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


class TestEvents:
    async def test_events_reach_subscribers_of_their_topics_in_another_process(
        self, make_bus: BusFactory
    ) -> None:
        # given an API process watching station 1 and station 2
        publisher, api = await make_bus(), await make_bus()
        one = await joined(api.subscribe("station:1"))
        two = api.subscribe("station:2")
        # when the gateway process publishes a batch about station 1
        batch: list[Event] = [status_event(1, status="Charging"), status_event(1, status="Finishing")]
        await publisher.publish(batch)
        # then the watcher of station 1 gets both, equal to what was published, in order
        assert [await one.next(2), await one.next(2)] == batch
        # and the watcher of station 2 nothing
        with pytest.raises(TimeoutError):
            await two.next(0.2)

    async def test_every_process_fans_out_to_its_own_subscribers(self, make_bus: BusFactory) -> None:
        gateway, api_a, api_b = await make_bus(), await make_bus(), await make_bus()
        subs = [
            await joined(api_a.subscribe("transactions")),
            api_a.subscribe("transaction:5"),
            await joined(api_b.subscribe("station:3")),
        ]
        event = TransactionUpdated(
            station_id=3,
            charge_point_id="CP-3",
            location_id=None,
            at=utcnow(),
            transaction_id=5,
            connector_id=1,
            state="Active",
            id_tag="TAG",
            started_at=utcnow(),
            stopped_at=None,
            meter_start_wh=0,
            energy_wh=1200,
            power_w=11_000,
            soc_percent=40,
            last_sample_at=utcnow(),
            stop_reason=None,
        )
        await gateway.publish([event])
        assert [await sub.next(2) for sub in subs] == [event, event, event]


class TestCommands:
    async def test_a_command_reaches_the_owning_gateway_and_its_reply_comes_back(
        self, make_bus: BusFactory
    ) -> None:
        # given CP-1 connected to gateway A
        gateway, api = await make_bus(), await make_bus()
        seen: list[Command] = []
        gateway.serve_station("CP-1", answering(seen=seen))
        await owned_by(api, "CP-1", gateway.node_id)
        # when the API process resets it
        reply = await api.request("CP-1", Reset(kind=ResetKind.HARD), timeout=2)
        # then A's executor got the command, typed as it was sent, and the reply came back
        assert reply == CommandReply("Accepted", {"by": "Accepted"})
        assert seen == [Reset(kind=ResetKind.HARD)] and isinstance(seen[0].kind, ResetKind)  # type: ignore[attr-defined]

    async def test_the_owner_runs_its_own_commands_directly(self, make_bus: BusFactory) -> None:
        gateway = await make_bus()
        gateway.serve_station("CP-1", answering("Rejected"))
        await owned_by(gateway, "CP-1", gateway.node_id)
        assert (await gateway.request("CP-1", Reset(), timeout=2)).status == "Rejected"

    async def test_station_errors_and_timeouts_arrive_as_the_same_errors(self, make_bus: BusFactory) -> None:
        gateway, api = await make_bus(), await make_bus()

        async def refuses(command: Command, timeout: float) -> CommandReply:
            raise CommandFailed("no resets here", station_code="NotSupported")

        async def never_answers(command: Command, timeout: float) -> CommandReply:
            await asyncio.sleep(30)
            raise AssertionError("unreachable")

        gateway.serve_station("CP-1", refuses)
        gateway.serve_station("CP-2", never_answers)
        await owned_by(api, "CP-2", gateway.node_id)
        with pytest.raises(CommandFailed) as failed:
            await api.request("CP-1", Reset(), timeout=2)
        assert (failed.value.station_code, failed.value.message) == ("NotSupported", "no resets here")
        started = time.monotonic()
        with pytest.raises(CommandTimeout):
            await api.request("CP-2", Reset(), timeout=0.2)
        assert time.monotonic() - started < 2.5
        outcome, message, _ = await send(api, "CP-1", Reset(), 2)
        assert (outcome, message) == (CommandOutcome.NOT_SUPPORTED, "no resets here")

    async def test_hundreds_of_commands_in_flight_from_one_process_are_all_answered(
        self, make_bus: BusFactory
    ) -> None:
        # given a gateway holding 300 stations (a bulk command's worth, beyond any one pool)
        gateway, api = await make_bus(), await make_bus()
        stations = [f"CP-{n}" for n in range(300)]
        for cpid in stations:
            gateway.serve_station(cpid, answering())
        await owned_by(gateway, stations[-1], gateway.node_id)
        # when the API sends to all of them at once
        replies = await asyncio.gather(*(api.request(cpid, Reset(), timeout=5) for cpid in stations))
        # then every one is answered, none refused for want of a connection
        assert [r.status for r in replies] == ["Accepted"] * len(stations)

    async def test_an_unknown_station_is_offline_at_once(self, make_bus: BusFactory) -> None:
        api = await make_bus()
        started = time.monotonic()
        with pytest.raises(StationOffline, match="station CP-404 is not connected"):
            await api.request("CP-404", Reset(), timeout=5)
        assert time.monotonic() - started < 0.5

    async def test_a_station_that_moved_keeps_its_new_gateway(self, make_bus: BusFactory) -> None:
        # given CP-1 first on gateway A
        a, b, api = await make_bus(), await make_bus(), await make_bus()
        on_a, on_b = answering("Accepted"), answering("Rejected")
        a.serve_station("CP-1", on_a)
        await owned_by(api, "CP-1", a.node_id)
        # when it reconnects to gateway B, and only then A notices its old socket is gone
        b.serve_station("CP-1", on_b)
        await owned_by(api, "CP-1", b.node_id)
        a.release_station("CP-1", on_a)
        await a.settled()
        # then commands from anywhere go to B, whose renewal keeps it
        await owned_by(api, "CP-1", b.node_id)
        assert (await api.request("CP-1", Reset(), timeout=2)).status == "Rejected"
        assert (await a.request("CP-1", Reset(), timeout=2)).status == "Rejected"
        await b._ownership._renew()
        await owned_by(api, "CP-1", b.node_id)

    async def test_a_gateway_renewing_does_not_take_back_a_moved_station(self, make_bus: BusFactory) -> None:
        a, b = await make_bus(), await make_bus()
        a.serve_station("CP-1", answering())
        await owned_by(a, "CP-1", a.node_id)
        b.serve_station("CP-1", answering())
        await owned_by(a, "CP-1", b.node_id)
        # A still has its (dead) socket and renews everything it holds
        await a._ownership._renew()
        await owned_by(a, "CP-1", b.node_id)

    async def test_a_dead_gateway_loses_its_stations(
        self, make_bus: BusFactory, redis_url: str, prefix: str
    ) -> None:
        # given a gateway process holding CP-DIES with a 1 s ownership expiry
        script = (
            "import asyncio, sys\n"
            "from schema.commands import CommandReply\n"
            "from schema.redis_bus import RedisBus\n"
            "async def main(url, prefix):\n"
            "    bus = RedisBus(url, prefix=prefix, ownership_ttl_s=1.0)\n"
            "    await bus.start()\n"
            "    async def executor(command, timeout):\n"
            "        return CommandReply('Accepted')\n"
            "    bus.serve_station('CP-DIES', executor)\n"
            "    while await bus.owner_of('CP-DIES') != bus.node_id:\n"
            "        await asyncio.sleep(0.01)\n"
            "    print(bus.node_id, flush=True)\n"
            "    await asyncio.sleep(60)\n"
            "asyncio.run(main(*sys.argv[1:]))\n"
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, redis_url, prefix, cwd=ROOT, stdout=subprocess.PIPE
        )
        try:
            assert proc.stdout is not None
            node = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
            api = await make_bus()
            assert (await api.request("CP-DIES", Reset(), timeout=2)).accepted
        finally:
            # when it dies without releasing anything
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        # then a command fails at once, and the ownership expires by itself
        started = time.monotonic()
        with pytest.raises(StationOffline):
            await api.request("CP-DIES", Reset(), timeout=5)
        assert time.monotonic() - started < 0.5
        assert await api.owner_of("CP-DIES") in (node, None)
        await owned_by(api, "CP-DIES", None, timeout=3)


class TestRedisRestart:
    async def test_commands_fail_fast_while_redis_is_down_and_everything_resumes_after(
        self, make_bus: BusFactory, tmp_path: Path
    ) -> None:
        # given a gateway and an API on a Redis of this test's own, a station and a watcher
        server = RedisServer(tmp_path)
        await asyncio.to_thread(server.start)
        try:
            gateway, api = await make_bus(server.url), await make_bus(server.url)
            gateway.serve_station("CP-1", answering())
            await owned_by(api, "CP-1", gateway.node_id)
            watcher = await joined(api.subscribe("station:1"))

            async def slow(command: Command, timeout: float) -> CommandReply:
                await asyncio.sleep(10)
                return CommandReply("Accepted")

            gateway.serve_station("CP-SLOW", slow)
            await owned_by(api, "CP-SLOW", gateway.node_id)
            in_flight = asyncio.create_task(api.request("CP-SLOW", Reset(), timeout=10))
            await asyncio.sleep(0.1)
            # when Redis stops
            await asyncio.to_thread(server.stop)
            # then a command in flight and new commands fail fast with "bus unavailable"
            started = time.monotonic()
            with pytest.raises(BusUnavailable):
                await in_flight
            with pytest.raises(BusUnavailable):
                await api.request("CP-1", Reset(), timeout=5)
            assert time.monotonic() - started < 1.0
            outcome, message, _ = await send(api, "CP-1", Reset(), 5)
            assert outcome is CommandOutcome.FAILED and "try again" in message
            await gateway.publish([status_event(1)])  # dropped, never blocks the publisher
            # when Redis is back (empty: it kept nothing)
            await asyncio.to_thread(server.start)
            # then the watcher is told to re-read its snapshot
            assert await watcher.next(5) is BUS_RESUMED
            # and the gateway has registered its stations again, so commands work
            reply = await eventually(lambda: api.request("CP-1", Reset(), timeout=2))
            assert reply.accepted
            # and events flow again
            event = status_event(1, status="Charging")
            await gateway.publish([event])
            assert await watcher.next(2) == event
        finally:
            await asyncio.to_thread(server.stop)

    async def test_the_bus_starts_before_redis_and_connects_when_it_comes(
        self, make_bus: BusFactory, tmp_path: Path
    ) -> None:
        server = RedisServer(tmp_path)
        bus = await make_bus(server.url, start=False)
        assert not bus.connected
        with pytest.raises(BusUnavailable):
            await bus.request("CP-1", Reset(), timeout=1)
        await asyncio.to_thread(server.start)
        try:
            other = await make_bus(server.url)
            bus.serve_station("CP-1", answering())
            reply = await eventually(lambda: other.request("CP-1", Reset(), timeout=2))
            assert reply.accepted and bus.connected
        finally:
            await asyncio.to_thread(server.stop)


class TestShutdown:
    async def test_closing_releases_stations_and_ends_subscriptions(self, make_bus: BusFactory) -> None:
        gateway, api = await make_bus(), await make_bus()
        gateway.serve_station("CP-1", answering())
        await owned_by(api, "CP-1", gateway.node_id)
        sub = await joined(gateway.subscribe("stations"))
        await gateway.aclose()
        assert [e async for e in sub] == []
        assert [e async for e in gateway.subscribe("stations")] == []
        assert await api.owner_of("CP-1") is None
        with pytest.raises(StationOffline):
            await api.request("CP-1", Reset(), timeout=1)

    def test_bus_url_chooses_the_bus(self) -> None:
        assert type(bus_from_url("memory")).__name__ == "InProcessBus"
        assert isinstance(bus_from_url("redis://127.0.0.1:6379/0"), RedisBus)
        with pytest.raises(ValueError, match="BUS_URL"):
            bus_from_url("amqp://elsewhere")

    async def test_networks_with_their_own_prefix_share_one_redis_unseen(
        self, make_bus: BusFactory, prefix: str
    ) -> None:
        # given two gateways on one Redis, the second under another deployment's prefix
        ours, theirs = await make_bus(), await make_bus(prefix=f"{prefix}-staging")
        ours.serve_station("CP-1", answering())
        await owned_by(ours, "CP-1", ours.node_id)
        mine, other = await joined(ours.subscribe("stations")), await joined(theirs.subscribe("stations"))
        # when our network publishes
        await ours.publish([status_event(1)])
        # then only our subscribers get it, and the other network does not know our station
        assert isinstance(await mine.next(2), StationStatusChanged)
        with pytest.raises(TimeoutError):
            await other.next(0.3)
        assert await theirs.owner_of("CP-1") is None
        with pytest.raises(StationOffline):
            await theirs.request("CP-1", Reset(), timeout=1)

    def test_a_stopping_api_completes_its_subscriptions(self, redis_url: str, tmp_path: Path) -> None:
        """`chargenet api` on Redis: SIGTERM ends live subscriptions with `complete`."""
        db_url = f"sqlite+aiosqlite:///{tmp_path / 'api.db'}"
        upgrade(db_url)
        station = asyncio.run(_one_station(db_url))
        port = free_port()
        env = {**os.environ, "DATABASE_URL": db_url, "BUS_URL": redis_url}
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "api", "--api-port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            messages = asyncio.run(_watch_until_stopped(proc, port, station))
        finally:
            try:
                _, stderr = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, stderr = proc.communicate()
        assert messages[0]["type"] == "next", messages
        assert messages[-1] == {"type": "complete", "id": "1"}, (messages, stderr.decode()[-2000:])
        assert proc.returncode == 0, stderr.decode()[-2000:]


async def _one_station(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        return await make_station(engine, charge_point_id="CP-1")
    finally:
        await engine.dispose()


async def _watch_until_stopped(
    proc: subprocess.Popen[bytes], port: int, station: int
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        while True:
            try:
                if (await http.get("/readyz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the API did not start"
            await asyncio.sleep(0.1)
    client = await GraphQLWS.open(f"ws://127.0.0.1:{port}/graphql")
    await client.subscribe(STATION_STATUS, {"stationId": gid("Station", station)})
    messages = [await client.receive(10)]
    proc.send_signal(signal.SIGTERM)
    while messages[-1]["type"] == "next":
        try:
            messages.append(await client.receive(10))
        except Exception as exc:  # the socket closing without `complete` is the failure shown
            messages.append({"type": f"closed: {exc!r}"})
    return messages


# --- one system: a real gateway on bus A, a real API on bus B ---


@pytest.fixture
async def gateway_bus(make_bus: BusFactory) -> RedisBus:
    return await make_bus()


@pytest.fixture
async def bus(make_bus: BusFactory) -> RedisBus:
    """The API's bus (conftest's `api_server` uses `bus`), its events channel already joined."""
    api_bus = await make_bus()
    (await joined(api_bus.subscribe("warm-up"))).close()
    return api_bus


@pytest.fixture
async def gateway(engine: AsyncEngine, gateway_bus: RedisBus) -> AsyncIterator[Gateway]:
    """The gateway conftest's `connect_charger` connects to, on its own bus."""
    gw = Gateway(engine, gateway_bus, port=0)
    await gw.start()
    yield gw
    await gw.stop()


class TestGatewayAndApiOnTwoProcesses:
    async def test_a_charger_on_gateway_a_is_watched_and_commanded_through_api_b(
        self,
        api_server: ApiServer,
        http: httpx.AsyncClient,
        bus: RedisBus,
        gateway_bus: RedisBus,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        # given an app watching CP-1 through API B
        client = await GraphQLWS.open(api_server.ws_url)
        await client.subscribe(STATION_STATUS, {"stationId": gid("Station", station)})
        snapshot = (await client.next_payload())["stationStatusChanged"]
        assert snapshot["online"] is False
        # when CP-1 connects to gateway A and reports a fault
        cp = await connect_charger("CP-1", connectors=[22_000, 22_000], speed=600, meter_interval_s=60)
        await cp.status(2, "Faulted", "GroundFailure")
        # then API B's subscriber sees it come online and the fault
        updates = [(await client.next_payload())["stationStatusChanged"]]
        while updates[-1]["connectors"][1]["status"] != "FAULTED":
            updates.append((await client.next_payload())["stationStatusChanged"])
        assert updates[0]["online"] is True and updates[-1]["connectors"][1]["errorCode"] == "GroundFailure"
        await client.close()
        # and commands sent through bus B reach the charger on gateway A
        await owned_by(bus, "CP-1", gateway_bus.node_id)
        assert (await bus.request("CP-1", Reset(kind=ResetKind.HARD), timeout=5)).accepted
        assert ("Reset", {"type": "Hard"}) in cp.received_calls
        trigger = TriggerMessage(message="StatusNotification", connector_id=1)
        assert (await bus.request("CP-1", trigger, timeout=5)).accepted
        # and a remote start through API B runs a session on gateway A
        # (the charger is still rebooting from the reset: under a loaded test run its session
        # may take longer than the fixture's 5 s start wait)
        start = {
            "stationId": gid("Station", station),
            "idTag": ACCEPTED_TAGS[0],
            "connectorId": 1,
            "waitSeconds": 20,
        }
        started = data(await gql(http, START, {"input": start}, token=OPERATOR_TOKEN))["startCharging"]
        assert started["outcome"] == "ACCEPTED" and started["message"] == "session started", started
        assert started["transaction"]["state"] == "ACTIVE"


class TestLiveSubscriptionsAcrossARedisRestart:
    """The API's bus runs on a Redis of the test's own; what changes while it is down reaches
    the app as a fresh snapshot once it is back."""

    @pytest.fixture
    async def redis_server(self, tmp_path: Path) -> AsyncIterator[RedisServer]:
        server = RedisServer(tmp_path)
        await asyncio.to_thread(server.start)
        yield server
        await asyncio.to_thread(server.stop)

    @pytest.fixture
    async def bus(self, make_bus: BusFactory, redis_server: RedisServer) -> RedisBus:
        api_bus = await make_bus(redis_server.url)
        (await joined(api_bus.subscribe("warm-up"))).close()
        return api_bus

    async def test_station_status_and_session_watchers_get_a_fresh_snapshot(
        self, api_server: ApiServer, engine: AsyncEngine, redis_server: RedisServer, station: int
    ) -> None:
        # given an app watching the station and a session on it
        async with AsyncSession(engine) as session:
            row = Transaction(station_id=station, connector_id=1, start_key="k", started_at=utcnow())
            session.add(row)
            await session.flush()
            tx = row.id or 0
            await session.commit()
        auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        client = await GraphQLWS.open(api_server.ws_url, payload=auth)
        await client.subscribe(STATION_STATUS, {"stationId": gid("Station", station)})
        assert (await client.next_payload())["stationStatusChanged"]["online"] is False
        await client.subscribe(TX_UPDATED, {"id": gid("Transaction", tx)})
        assert (await client.next_payload())["transactionUpdated"]["energyWh"] == 0
        # when Redis goes down, the station comes online and meters while nobody hears of it
        await asyncio.to_thread(redis_server.stop)
        async with engine.begin() as conn:
            await conn.execute(update(ChargingStation).values(online=True, status="Charging"))
            await conn.execute(update(Transaction).values(energy_wh=4_200, last_sample_at=utcnow()))
        # and Redis comes back
        await asyncio.to_thread(redis_server.start)
        # then both watchers get the stored state again, and nothing else
        fresh = [await client.next_payload(10), await client.next_payload(10)]
        status = next(p["stationStatusChanged"] for p in fresh if "stationStatusChanged" in p)
        session = next(p["transactionUpdated"] for p in fresh if "transactionUpdated" in p)
        assert (status["reason"], status["online"], status["status"]) == ("snapshot", True, "CHARGING")
        assert (session["state"], session["energyWh"]) == ("ACTIVE", 4_200)
        with pytest.raises(TimeoutError):
            await client.receive(0.3)
        await client.close()
