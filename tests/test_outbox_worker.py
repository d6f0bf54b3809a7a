"""Durable work: the outbox written with the facts, the relay to the durable stream, workers
in a consumer group handling each event once, take-over from a dead worker, dead letters,
the in-process mode of the embedded default, and the stuck-session check."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.runtime import Runtime
from api.worker import runner
from api.worker.jobs import check_stuck_sessions, default_registry
from api.worker.processor import HandlerRegistry, Processor
from api.worker.relay import InProcessChannel, OutboxRelay, RedisStreamChannel
from api.worker.runner import RedisJobLock, ScheduledJob, Scheduler, StreamWorker
from api.worker.service import DurableWork
from api.worker.settings import WorkerSettings
from gateway.server import Gateway
from gateway.simulator import SimCharger, SimConfig
from gateway.tables import STATION, TRANSACTION
from gateway.writer import Unit
from schema.events import Event, TransactionEnded, event_from_dict
from schema.outbox import OUTBOX, OutboxMessage, event_payload, fetch_pending
from schema.settings import Settings
from schema.timeutil import to_ocpp, utcnow
from tests.builders import ACCEPTED_TAGS, make_station
from tests.conftest import ChargerFactory
from tests.dbutil import fetch, scalar
from tests.redis_server import RedisServer, shared_redis_url, unique_prefix

TAG = ACCEPTED_TAGS[0]
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def ts(minutes: float) -> str:
    return to_ocpp(T0 + timedelta(minutes=minutes))


async def charge(cp: SimCharger, *, at: float = 0, energy_wh: int = 7_250, connector: int = 1) -> int:
    """A whole session: start, two meter readings (11 and 7.4 kW), stop. Returns its id."""
    start = await cp.call(
        "StartTransaction",
        {"connectorId": connector, "idTag": TAG, "meterStart": 1_000_000, "timestamp": ts(at)},
    )
    tx = int(start["transactionId"])
    for minute, wh, kw in ((at + 15, 1_002_500, "11.0"), (at + 30, 1_005_000, "7.4")):
        await cp.call(
            "MeterValues",
            {
                "connectorId": connector,
                "transactionId": tx,
                "meterValue": [
                    {
                        "timestamp": ts(minute),
                        "sampledValue": [
                            {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                            {"value": kw, "measurand": "Power.Active.Import", "unit": "kW"},
                        ],
                    }
                ],
            },
        )
    await cp.call(
        "StopTransaction",
        {
            "transactionId": tx,
            "meterStop": 1_000_000 + energy_wh,
            "timestamp": ts(at + 40),
            "reason": "Local",
        },
    )
    return tx


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def poisoned_sessions(charger: SimCharger) -> tuple[int, int, HandlerRegistry]:
    """Two finished sessions and the default jobs plus a handler that always fails on the first."""
    poisoned = await charge(charger)
    healthy = await charge(charger, at=60)

    async def fragile(conn: AsyncConnection, event: Event) -> None:
        if isinstance(event, TransactionEnded) and event.transaction_id == poisoned:
            raise ValueError("cannot bill this session")

    registry = default_registry()
    registry.register(TransactionEnded, fragile)
    return poisoned, healthy, registry


async def summaries(engine: AsyncEngine) -> list[dict[str, Any]]:
    return await fetch(engine, "SELECT * FROM session_summary ORDER BY transaction_id")


@pytest.fixture
async def charger(station: int, connect_charger: ChargerFactory) -> SimCharger:
    return await connect_charger("CP-1")


# -- Redis ------------------------------------------------------------------------------------


@dataclass
class Names:
    stream: str
    group: str
    prefix: str


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(shared_redis_url())
    yield client
    await client.aclose()


@pytest.fixture
async def names(redis: Redis) -> AsyncIterator[Names]:
    prefix = unique_prefix()
    yield Names(stream=f"{prefix}:durable", group=f"{prefix}-jobs", prefix=prefix)
    keys = [k async for k in redis.scan_iter(f"{prefix}*")]
    if keys:
        await redis.delete(*keys)


def stream_worker(
    redis: Redis,
    engine: AsyncEngine,
    names: Names,
    consumer: str,
    *,
    registry: HandlerRegistry | None = None,
    claim_idle_s: float = 30.0,
    max_attempts: int = 5,
) -> StreamWorker:
    processor = Processor(engine, registry or default_registry(), consumer=names.group)
    return StreamWorker(
        redis,
        processor,
        stream=names.stream,
        group=names.group,
        consumer=consumer,
        claim_idle_s=claim_idle_s,
        max_attempts=max_attempts,
        block_s=0.1,
    )


def redis_relay(engine: AsyncEngine, redis: Redis, names: Names, **kw: Any) -> OutboxRelay:
    return OutboxRelay(engine, RedisStreamChannel(redis, stream=names.stream, maxlen=10_000), **kw)


@contextlib.asynccontextmanager
async def running(*loops: Any) -> AsyncIterator[None]:
    for loop in loops:
        loop.start()
    try:
        yield
    finally:
        for loop in loops:
            await loop.stop()


# -- the outbox -------------------------------------------------------------------------------


class TestOutboxIsWrittenWithTheFacts:
    async def test_start_and_stop_are_in_the_outbox_meter_ticks_are_not(
        self, engine: AsyncEngine, charger: SimCharger
    ) -> None:
        # when a session starts, meters twice and stops
        tx = await charge(charger)
        # then (answered after commit) the outbox holds its start and end, unpublished
        rows = await fetch(engine, "SELECT event_type, published_at FROM outbox_event ORDER BY id")
        assert [r["event_type"] for r in rows] == ["transaction.started", "transaction.ended"]
        assert all(r["published_at"] is None for r in rows)
        async with engine.connect() as conn:
            [started, ended] = [m.event() for m in await fetch_pending(conn, 10)]
        assert isinstance(ended, TransactionEnded)
        assert (started.transaction_id, ended.transaction_id, ended.energy_wh) == (tx, tx, 7_250)  # type: ignore[attr-defined]

    async def test_a_fault_is_durable_a_plain_status_change_is_not(
        self, engine: AsyncEngine, charger: SimCharger
    ) -> None:
        await charger.status(1, "Charging")
        await charger.status(2, "Faulted", "GroundFailure")
        await charger.status(1, "Available", "HighTemperature")
        async with engine.connect() as conn:
            rows = await fetch_pending(conn, 10)
        changed = [(m.payload["changed_connector_id"], m.payload["reason"]) for m in rows]
        assert changed == [(2, "status"), (1, "status")]

    async def test_a_failed_write_leaves_no_outbox_row(self, engine: AsyncEngine, gateway: Gateway) -> None:
        # given a unit whose fact insert breaks after its durable event was produced
        async def fn(conn: AsyncConnection, events: list[Event]) -> None:
            events.append(_ended_event(transaction_id=999))

        broken = Unit(fn=fn, inserts=[(TRANSACTION, [{"station_id": 12345}])])
        # when the writer commits it, it fails
        with pytest.raises(RuntimeError):
            await gateway.writer.submit(broken)
        # then the event was rolled back together with the facts
        assert await scalar(engine, "SELECT count(*) FROM outbox_event") == 0


def _ended_event(*, transaction_id: int) -> TransactionEnded:
    return TransactionEnded(
        station_id=1,
        charge_point_id="CP-1",
        location_id=None,
        at=utcnow(),
        transaction_id=transaction_id,
        connector_id=1,
        state="Completed",
        id_tag=TAG,
        started_at=T0,
        stopped_at=T0 + timedelta(minutes=40),
        meter_start_wh=0,
        energy_wh=1,
        power_w=0,
        soc_percent=None,
        last_sample_at=None,
        stop_reason="Local",
    )


# -- relay and workers on Redis -----------------------------------------------------------------


class TestRelayToTheStream:
    async def test_the_relay_moves_rows_in_order_and_marks_them_published(
        self, engine: AsyncEngine, charger: SimCharger, gateway: Gateway, redis: Redis, names: Names
    ) -> None:
        # given a relay polling rarely, nudged by the writer
        relay = redis_relay(engine, redis, names, poll_s=30.0)
        gateway.writer.on_outbox = relay.nudge
        async with running(relay):
            await asyncio.sleep(0.05)  # its first pass finds nothing and starts its long wait
            # when a session runs
            tx = await charge(charger)
            # then both events reach the stream at once, in order
            await eventually(lambda: _stream_len(redis, names.stream, 2), timeout=3)
        entries = await redis.xrange(names.stream)
        messages = [OutboxMessage.from_fields(fields) for _id, fields in entries]
        assert [m.event_type for m in messages] == ["transaction.started", "transaction.ended"]
        assert messages[0].id < messages[1].id
        assert messages[1].event().transaction_id == tx  # type: ignore[attr-defined]
        assert await scalar(engine, "SELECT count(*) FROM outbox_event WHERE published_at IS NULL") == 0

    async def test_two_relays_on_postgresql_never_send_a_row_twice(
        self, engine: AsyncEngine, redis: Redis, names: Names
    ) -> None:
        if engine.dialect.name != "postgresql":
            pytest.skip("SQLite has no row locks; one relay per database file (duplicates are idempotent)")
        await _insert_outbox(engine, 600)
        relays = [redis_relay(engine, redis, names, batch_size=50) for _ in range(2)]

        async def drain(relay: OutboxRelay) -> None:
            moved = 1
            while moved:
                moved = await relay.relay_once()

        await asyncio.gather(*(drain(r) for r in relays))
        ids = [OutboxMessage.from_fields(f).id for _id, f in await redis.xrange(names.stream)]
        assert sorted(ids) == sorted(set(ids)) and len(ids) == 600
        assert all(r.relayed > 0 for r in relays)

    async def test_published_rows_are_purged_after_the_retention(
        self, engine: AsyncEngine, redis: Redis, names: Names
    ) -> None:
        await _insert_outbox(engine, 3)
        relay = redis_relay(engine, redis, names, retention_s=0.0)
        assert await relay.relay_once() == 3
        assert await relay.purge() == 3
        assert await scalar(engine, "SELECT count(*) FROM outbox_event") == 0


class TestWorkersInAGroup:
    async def test_two_workers_handle_each_session_end_exactly_once(
        self, engine: AsyncEngine, charger: SimCharger, redis: Redis, names: Names
    ) -> None:
        # given three finished sessions relayed to the stream, one of them twice (a relay that
        # crashed between XADD and marking the rows published)
        txs = [await charge(charger, at=60 * i) for i in range(3)]
        relay = redis_relay(engine, redis, names)
        async with engine.connect() as conn:
            pending = await fetch_pending(conn, 100)
        await relay.channel.send(pending[-2:])  # type: ignore[attr-defined]
        assert await relay.relay_once() == 6
        # when two workers of one group consume the stream
        a = stream_worker(redis, engine, names, "worker-a")
        b = stream_worker(redis, engine, names, "worker-b")
        async with running(a, b):
            await eventually(lambda: _all_acked(redis, names, 8))
        # then each session has one summary, computed from the register and the samples
        rows = await summaries(engine)
        assert [r["transaction_id"] for r in rows] == txs
        first = rows[0]
        assert (first["energy_wh"], first["duration_s"], first["max_power_w"], first["sample_count"]) == (
            7_250,
            2_400,
            11_000,
            4,
        )
        assert first["stop_reason"] == "Local" and first["connector_id"] == 1
        # (each session's start and end: starts link charging requests)
        assert a.processor.processed + b.processor.processed == 6
        assert a.processor.duplicates + b.processor.duplicates == 2
        assert await scalar(engine, "SELECT count(*) FROM processed_event") == 6

    async def test_a_dead_workers_message_is_taken_over_and_processed_once(
        self, engine: AsyncEngine, charger: SimCharger, redis: Redis, names: Names
    ) -> None:
        # given the session end read by a worker that died before acknowledging it
        tx = await charge(charger)
        assert await redis_relay(engine, redis, names).relay_once() == 2
        await redis.xgroup_create(names.stream, names.group, id="0", mkstream=True)
        read = await redis.xreadgroup(names.group, "dead-worker", {names.stream: ">"}, count=10)
        assert len(read[0][1]) == 2
        # when another worker runs with a short idle threshold
        survivor = stream_worker(redis, engine, names, "survivor", claim_idle_s=0.5)
        async with running(survivor):
            await eventually(lambda: _all_acked(redis, names, 2))
        # then it took the messages over and the session was summarised once
        assert [r["transaction_id"] for r in await summaries(engine)] == [tx]
        assert survivor.processor.processed == 2 and survivor.acked == 2
        consumers = {c["name"]: c["pending"] for c in await redis.xinfo_consumers(names.stream, names.group)}
        assert consumers[b"dead-worker"] == 0

    async def test_departed_consumers_are_forgotten_only_when_they_hold_nothing(
        self, engine: AsyncEngine, redis: Redis, names: Names, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # given a consumer that left with nothing pending and one that left holding an entry
        await redis.xgroup_create(names.stream, names.group, id="0", mkstream=True)
        for n in range(2):
            await redis.xadd(names.stream, {"n": str(n)})
        (_, [(done_id, _)]), *_ = await redis.xreadgroup(names.group, "gone", {names.stream: ">"}, count=1)
        await redis.xack(names.stream, names.group, done_id)
        await redis.xreadgroup(names.group, "holding", {names.stream: ">"}, count=1)
        survivor = stream_worker(redis, engine, names, "survivor")
        await redis.xgroup_createconsumer(names.stream, names.group, "survivor")
        monkeypatch.setattr(runner, "FORGET_CONSUMER_MS", 0)
        await asyncio.sleep(0.01)
        # when the survivor tidies the group
        forgotten = await survivor.forget_departed()
        # then only the one without pending entries is gone; the other waits to be claimed
        assert forgotten == ["gone"]
        consumers = {c["name"] for c in await redis.xinfo_consumers(names.stream, names.group)}
        assert consumers == {b"holding", b"survivor"}

    async def test_a_handler_that_keeps_failing_goes_to_the_dead_letter_stream(
        self, engine: AsyncEngine, charger: SimCharger, redis: Redis, names: Names
    ) -> None:
        # given a handler that always fails for the first session only
        poisoned, healthy, registry = await poisoned_sessions(charger)
        assert await redis_relay(engine, redis, names).relay_once() == 4
        # when a worker allows three deliveries, retrying after 0.3 s idle
        worker = stream_worker(redis, engine, names, "w", registry=registry, claim_idle_s=0.3, max_attempts=3)
        async with running(worker):
            await eventually(lambda: _all_acked(redis, names, 4))
        # then the poisoned event is dead-lettered with its error, the other one processed
        [(_id, dead)] = await redis.xrange(f"{names.stream}:dead")
        assert OutboxMessage.from_fields(dead).event().transaction_id == poisoned  # type: ignore[attr-defined]
        assert b"cannot bill this session" in dead[b"error"] and dead[b"deliveries"] == b"3"
        assert [r["transaction_id"] for r in await summaries(engine)] == [healthy]
        assert worker.dead_lettered == 1


class TestRedisGoesAway:
    async def test_a_worker_resumes_after_redis_restarts_empty(
        self, engine: AsyncEngine, charger: SimCharger, tmp_path: Path
    ) -> None:
        # given a worker and a relay on a Redis of the test's own
        server = RedisServer(tmp_path)
        server.start()
        client = Redis.from_url(server.url)
        names = Names(stream="durable", group="jobs", prefix="t")
        worker = stream_worker(client, engine, names, "w")
        relay = redis_relay(engine, client, names, poll_s=0.05)
        try:
            async with running(worker, relay):
                first = await charge(charger)
                await eventually(lambda: _summary_count(engine, 1))
                # when Redis restarts without its data, while a session ends
                server.stop()
                second = await charge(charger, at=60)
                await asyncio.sleep(0.3)
                server.start()
                # then the relay sends the new events and the worker recreates its group
                await eventually(lambda: _summary_count(engine, 2))
        finally:
            await client.aclose()
            server.stop()
        assert [r["transaction_id"] for r in await summaries(engine)] == [first, second]
        assert relay.failures > 0


class TestScheduledJobsAcrossReplicas:
    async def test_a_job_runs_once_per_interval_whatever_the_number_of_replicas(
        self, redis: Redis, names: Names
    ) -> None:
        calls: list[str] = []

        def scheduler(name: str) -> Scheduler:
            async def job() -> None:
                calls.append(name)

            return Scheduler([ScheduledJob("tick", 60.0, job)], RedisJobLock(redis, prefix=names.prefix))

        replicas = [scheduler("a"), scheduler("b")]
        for replica in replicas:
            await replica.run_due()
        assert len(calls) == 1


# -- idempotence, the embedded default, stuck sessions --------------------------------------------


class TestRedelivery:
    async def test_a_processed_event_delivered_again_changes_nothing(
        self, engine: AsyncEngine, charger: SimCharger
    ) -> None:
        tx = await charge(charger)
        async with engine.connect() as conn:
            ended = (await fetch_pending(conn, 10))[-1]
        processor = Processor(engine, default_registry(), consumer="jobs")
        assert await processor.process(ended) is True
        before = await summaries(engine)
        # when the same event arrives again
        assert await processor.process(ended) is False
        # then nothing changed
        assert await summaries(engine) == before and [r["transaction_id"] for r in before] == [tx]
        assert await scalar(engine, "SELECT count(*) FROM processed_event") == 1


class TestInProcessMode:
    async def test_the_in_process_bus_runs_the_same_jobs_without_redis(
        self, engine: AsyncEngine, charger: SimCharger, gateway: Gateway
    ) -> None:
        settings = WorkerSettings(CHARGENET_WORKER_GROUP="jobs", CHARGENET_OUTBOX_POLL=30.0)
        durable = DurableWork(engine, settings, bus_url="memory", gateway=True, worker=True)
        assert durable.parts == ["relay", "scheduler"]
        assert durable.relay is not None and isinstance(durable.relay.channel, InProcessChannel)
        gateway.writer.on_outbox = durable.nudge
        await durable.start()
        try:
            tx = await charge(charger)
            await eventually(lambda: _has_summary(engine), timeout=5)
        finally:
            await durable.stop()
        assert [r["transaction_id"] for r in await summaries(engine)] == [tx]
        assert await scalar(engine, "SELECT count(*) FROM outbox_event WHERE published_at IS NULL") == 0

    async def test_a_failing_handler_is_given_up_without_blocking_the_others(
        self, engine: AsyncEngine, charger: SimCharger
    ) -> None:
        poisoned, healthy, registry = await poisoned_sessions(charger)
        channel = InProcessChannel(Processor(engine, registry, consumer="jobs"), retry_delay_s=0.01)
        assert await OutboxRelay(engine, channel).relay_once() == 4
        [(dead, error)] = channel.dead_letters
        assert dead.event().transaction_id == poisoned and "cannot bill" in error  # type: ignore[attr-defined]
        assert [r["transaction_id"] for r in await summaries(engine)] == [healthy]

    async def test_chargenet_serve_runs_the_worker(self, tmp_path: Path) -> None:
        # given the all-in-one runtime on its own SQLite file, no demo
        url = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
        settings = Settings(
            DATABASE_URL=url, CHARGENET_DEMO=False, CHARGENET_GATEWAY_PORT=0, BUS_URL="memory"
        )
        runtime = Runtime(settings, run_api=False)
        await runtime.start()
        assert runtime.engine is not None and runtime.gateway is not None
        await make_station(runtime.engine, charge_point_id="CP-9")
        cp = SimCharger(
            SimConfig(charge_point_id="CP-9", url=f"ws://127.0.0.1:{runtime.gateway.bound_port}/ocpp")
        )
        try:
            await cp.connect()
            await cp.start()
            tx = await charge(cp)
            await eventually(lambda: _has_summary(runtime.engine), timeout=5)  # type: ignore[arg-type]
            assert [r["transaction_id"] for r in await summaries(runtime.engine)] == [tx]
        finally:
            await cp.close()
            await runtime.stop()


class TestStuckSessions:
    async def test_abandoned_sessions_are_flagged_once_and_resolved_when_they_end(
        self, engine: AsyncEngine
    ) -> None:
        now = utcnow()
        offline_station = await make_station(engine, charge_point_id="CP-OFF", online=False)
        online_station = await make_station(engine, charge_point_id="CP-ON", online=True)
        await _set_last_seen(engine, offline_station, now - timedelta(hours=3))
        await _set_last_seen(engine, online_station, now)
        gone = await _active_tx(engine, offline_station, started=now - timedelta(hours=4), sample=now)
        silent = await _active_tx(engine, online_station, started=now - timedelta(hours=8), sample=None)
        fine = await _active_tx(
            engine, online_station, started=now - timedelta(hours=8), sample=now, connector=2
        )
        # when the check runs
        result = await check_stuck_sessions(engine, offline_grace_s=7_200, meter_silence_s=21_600)
        # then the two abandoned sessions are flagged with their reason
        flags = await fetch(
            engine, "SELECT transaction_id, reason, resolved_at FROM stuck_session ORDER BY id"
        )
        assert [(f["transaction_id"], f["reason"]) for f in flags] == [
            (gone, "station_offline"),
            (silent, "no_meter_values"),
        ]
        assert result.flagged == 2 and fine not in {f["transaction_id"] for f in flags}
        # and each flag is a durable event for incidents and notifications, with its reason
        durable = await fetch(
            engine, "SELECT payload FROM outbox_event WHERE event_type = 'session.flagged' ORDER BY id"
        )
        events = [event_from_dict(_json(r["payload"])) for r in durable]
        assert [(e.transaction_id, e.reason, e.charge_point_id) for e in events] == [  # type: ignore[attr-defined]
            (gone, "station_offline", "CP-OFF"),
            (silent, "no_meter_values", "CP-ON"),
        ]
        # and a second run flags nothing again, nor announces anything again
        assert (
            await check_stuck_sessions(engine, offline_grace_s=7_200, meter_silence_s=21_600)
        ).flagged == 0
        assert (
            await scalar(engine, "SELECT count(*) FROM outbox_event WHERE event_type = 'session.flagged'")
            == 2
        )
        # when one session's end is processed, and the other is closed in the database
        processor = Processor(engine, default_registry(), consumer="jobs")
        await processor.process(OutboxMessage(1, "transaction.ended", _payload(gone)))
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE charging_transaction SET state = 'Completed' WHERE id = :i"), {"i": silent}
            )
        result = await check_stuck_sessions(engine, offline_grace_s=7_200, meter_silence_s=21_600)
        # then both flags are resolved
        assert result.resolved == 1
        assert await scalar(engine, "SELECT count(*) FROM stuck_session WHERE resolved_at IS NULL") == 0


# -- helpers ------------------------------------------------------------------------------------


def _json(value: Any) -> dict[str, Any]:
    """A JSON column as read by the raw helper: a dict on PostgreSQL, text on SQLite."""
    return json.loads(value) if isinstance(value, str) else value  # type: ignore[no-any-return]


def _payload(transaction_id: int) -> dict[str, Any]:
    return event_payload(_ended_event(transaction_id=transaction_id))


async def _stream_len(redis: Redis, stream: str, n: int) -> bool:
    return bool(await redis.exists(stream)) and await redis.xlen(stream) >= n


async def _all_acked(redis: Redis, names: Names, delivered: int) -> bool:
    groups = {g["name"]: g for g in await redis.xinfo_groups(names.stream)}
    group = groups.get(names.group.encode())
    return group is not None and group["pending"] == 0 and group["entries-read"] >= delivered


async def _has_summary(engine: AsyncEngine) -> bool:
    return await _summary_count(engine, 1)


async def _summary_count(engine: AsyncEngine, n: int) -> bool:
    return bool(await scalar(engine, "SELECT count(*) FROM session_summary") >= n)


async def _insert_outbox(engine: AsyncEngine, n: int) -> None:
    now = utcnow()
    rows = [{"event_type": "transaction.ended", "payload": _payload(i), "created_at": now} for i in range(n)]
    async with engine.begin() as conn:
        await conn.execute(OUTBOX.insert(), rows)


async def _set_last_seen(engine: AsyncEngine, station_id: int, at: datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(STATION.update().where(STATION.c.id == station_id).values(last_seen_at=at))


async def _active_tx(
    engine: AsyncEngine, station_id: int, *, started: datetime, sample: datetime | None, connector: int = 1
) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(
            TRANSACTION.insert().values(
                station_id=station_id,
                connector_id=connector,
                id_tag=TAG,
                start_key=f"{connector}:{started.isoformat()}",
                state="Active",
                started_at=started,
                meter_start_wh=0,
                energy_wh=0,
                last_sample_at=sample,
                start_missing=False,
                created_at=started,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]
