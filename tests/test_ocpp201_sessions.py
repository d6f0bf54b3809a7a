"""2.0.1 sessions: TransactionEvent Started / Updated / Ended become ChargeNet sessions with the
right energy and stop reason; resends and offline replays change nothing twice."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from schema.bus import InProcessBus
from schema.events import ALL_TRANSACTIONS_TOPIC, TransactionEnded, TransactionStarted
from tests.builders import ACCEPTED_TAGS, BLOCKED_TAG
from tests.dbutil import fetch, scalar
from tests.ocpp201 import Charger201Factory, connect201, eventually, register, tx_event

__all__ = ["connect201"]  # the fixture, imported for pytest

TAG = ACCEPTED_TAGS[0]
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def session(tx: str = "TX-1", *, offline: bool = False) -> list[dict]:
    """A whole session as the station reports it: 1 000 Wh at the start, 12 500 at the end."""
    return [
        tx_event(
            "Started",
            tx,
            0,
            0,
            trigger="Authorized",
            token=TAG,
            meter=[register(1_000, 0, "Transaction.Begin")],
            chargingState="EVConnected",
            offline=offline,
        ),
        tx_event(
            "Updated", tx, 1, 1, trigger="ChargingStateChanged", chargingState="Charging", offline=offline
        ),
        tx_event("Updated", tx, 2, 15, meter=[register(4_000, 15)], offline=offline),
        tx_event("Updated", tx, 3, 30, meter=[register(8.2, 30, unit="kWh")], offline=offline),
        tx_event(
            "Ended",
            tx,
            4,
            45,
            trigger="EVDeparted",
            meter=[register(12_500, 45, "Transaction.End")],
            chargingState="EVConnected",
            stoppedReason="EVDisconnected",
            offline=offline,
        ),
    ]


async def transactions(engine: AsyncEngine) -> list[dict]:
    return await fetch(engine, "SELECT * FROM charging_transaction ORDER BY id")


class TestFullSession:
    async def test_events_make_one_session_with_its_energy_and_reason(
        self, engine: AsyncEngine, bus: InProcessBus, station: int, connect201: Charger201Factory
    ) -> None:
        cp = await connect201("CP-1")
        sub = bus.subscribe(ALL_TRANSACTIONS_TOPIC)
        started, *updates, ended = session()
        answer = await cp.call("TransactionEvent", started)
        assert answer["idTokenInfo"]["status"] == "Accepted"
        for update in updates:
            assert await cp.call("TransactionEvent", update) == {}
        assert await scalar(engine, "SELECT status FROM connector WHERE connector_id = 1") == "Charging"
        await cp.call("TransactionEvent", ended)
        [tx] = await transactions(engine)
        assert (tx["station_transaction_id"], tx["connector_id"], tx["id_tag"]) == ("TX-1", 1, TAG)
        assert (tx["meter_start_wh"], tx["meter_stop_wh"], tx["energy_wh"]) == (1_000, 12_500, 11_500)
        assert (tx["state"], tx["stop_reason"], tx["start_missing"]) == ("Completed", "EVDisconnected", False)
        samples = await fetch(
            engine,
            "SELECT value, context FROM meter_sample WHERE transaction_id = :t ORDER BY sampled_at",
            t=tx["id"],
        )
        assert [(s["value"], s["context"]) for s in samples] == [
            (1_000, "Transaction.Begin"),
            (4_000, "Sample.Periodic"),
            (8.2, "Sample.Periodic"),  # stored as sent; the live view read it as 8 200 Wh
            (12_500, "Transaction.End"),
        ]
        assert await scalar(engine, "SELECT status FROM connector WHERE connector_id = 1") == "Finishing"
        kinds = []
        while "transaction.ended" not in kinds:
            kinds.append((await sub.next(5)).kind)
        assert kinds[0] == "transaction.started" and kinds.count("transaction.ended") == 1

    async def test_plug_in_first_then_authorize(
        self, engine: AsyncEngine, station: int, connect201: Charger201Factory
    ) -> None:
        cp = await connect201("CP-1")
        await cp.call("TransactionEvent", tx_event("Started", "TX-P", 0, 0, trigger="CablePluggedIn"))
        answer = await cp.call(
            "TransactionEvent",
            tx_event("Updated", "TX-P", 1, 1, trigger="Authorized", token=TAG, meter=[register(2_000, 1)]),
        )
        assert answer["idTokenInfo"]["status"] == "Accepted"
        await cp.call("TransactionEvent", tx_event("Ended", "TX-P", 2, 30, meter=[register(5_000, 30)]))
        [tx] = await transactions(engine)
        # the token became the session's; the first reading is its start (Started had none)
        assert (tx["id_tag"], tx["meter_start_wh"], tx["energy_wh"]) == (TAG, 2_000, 3_000)
        assert tx["stop_reason"] == "Local"  # 2.0.1: no stoppedReason means Local

    async def test_a_blocked_token_is_answered_and_the_session_recorded(
        self, engine: AsyncEngine, station: int, connect201: Charger201Factory
    ) -> None:
        cp = await connect201("CP-1")
        started = tx_event("Started", "TX-B", 0, 0, token=BLOCKED_TAG, meter=[register(10, 0)])
        assert (await cp.call("TransactionEvent", started))["idTokenInfo"]["status"] == "Blocked"
        assert len(await transactions(engine)) == 1  # the station decides whether it goes on

    @SQLITE_ONLY
    @pytest.mark.parametrize(
        ("stopped", "trigger", "recorded"),
        [
            (None, "RemoteStop", "Remote"),
            (None, "StopAuthorized", "Local"),
            ("ImmediateReset", "ResetCommand", "HardReset"),
            ("SOCLimitReached", "ChargingStateChanged", "SOCLimitReached"),
            ("DeAuthorized", "Deauthorized", "DeAuthorized"),
        ],
    )
    async def test_stop_reasons_in_chargenet_words(
        self,
        engine: AsyncEngine,
        station: int,
        connect201: Charger201Factory,
        stopped: str | None,
        trigger: str,
        recorded: str,
    ) -> None:
        cp = await connect201("CP-1")
        await cp.call("TransactionEvent", tx_event("Started", "TX-R", 0, 0, meter=[register(0, 0)]))
        info = {"stoppedReason": stopped} if stopped else {}
        await cp.call("TransactionEvent", tx_event("Ended", "TX-R", 1, 5, trigger=trigger, **info))
        assert await scalar(engine, "SELECT stop_reason FROM charging_transaction") == recorded


class TestRepeats:
    async def test_every_event_sent_twice_changes_nothing_the_second_time(
        self, engine: AsyncEngine, bus: InProcessBus, station: int, connect201: Charger201Factory
    ) -> None:
        cp = await connect201("CP-1")
        sub = bus.subscribe(ALL_TRANSACTIONS_TOPIC)
        for event in session():
            await cp.call("TransactionEvent", event)
            await cp.call("TransactionEvent", event)  # the reply was lost: the same message again
        before = await transactions(engine)
        samples = await scalar(engine, "SELECT count(*) FROM meter_sample")
        # and the whole session once more, after a reconnect
        await cp.close()
        again = await connect201("CP-1")
        for event in session():
            await again.call("TransactionEvent", event)
        assert await transactions(engine) == before
        assert before[0]["energy_wh"] == 11_500
        assert await scalar(engine, "SELECT count(*) FROM meter_sample") == samples == 4
        announced = []
        while True:
            try:
                event = await sub.next(0.3)
            except TimeoutError:
                break
            if isinstance(event, TransactionStarted | TransactionEnded):
                announced.append(event.kind)
        assert announced == ["transaction.started", "transaction.ended"]

    async def test_offline_replay_keeps_its_times_and_an_ended_session_stays_ended(
        self, engine: AsyncEngine, station: int, connect201: Charger201Factory
    ) -> None:
        cp = await connect201("CP-1")
        events = session("TX-OFF", offline=True)
        for event in events:  # queued for hours, sent in order after the reconnect
            await cp.call("TransactionEvent", event)
        [tx] = await transactions(engine)
        assert _second(tx["started_at"]) == _second(events[0]["timestamp"])
        assert _second(tx["stopped_at"]) == _second(events[-1]["timestamp"])
        assert (tx["state"], tx["energy_wh"]) == ("Completed", 11_500)
        # a replayed Started and Updated (a confused queue) do not bring it back to life
        await cp.call("TransactionEvent", events[0])
        await cp.call("TransactionEvent", tx_event("Updated", "TX-OFF", 5, 50, meter=[register(20_000, 50)]))
        [after] = await transactions(engine)
        assert (after["state"], after["energy_wh"], after["meter_stop_wh"]) == ("Completed", 11_500, 12_500)

    async def test_an_ended_without_its_started_is_recorded_and_flagged(
        self, engine: AsyncEngine, station: int, connect201: Charger201Factory
    ) -> None:
        cp = await connect201("CP-1")
        *_, ended = session("TX-LOST")
        await cp.call("TransactionEvent", ended)
        await cp.call("TransactionEvent", session("TX-LOST")[0])  # its Started, late
        [tx] = await transactions(engine)
        assert (tx["station_transaction_id"], tx["start_missing"], tx["state"]) == (
            "TX-LOST",
            True,
            "Completed",
        )
        assert tx["connector_id"] == 1

    @SQLITE_ONLY
    async def test_a_sequence_gap_is_logged(
        self, station: int, connect201: Charger201Factory, caplog: pytest.LogCaptureFixture
    ) -> None:
        cp = await connect201("CP-1")
        started, _, _, third, _ = session("TX-GAP")
        with caplog.at_level(logging.WARNING, logger="gateway.v201.transaction_events"):
            await cp.call("TransactionEvent", started)
            await cp.call("TransactionEvent", third)  # seqNo 3 after 0
        assert "2 message(s) lost" in caplog.text


class TestSimulatedStation:
    @SQLITE_ONLY
    async def test_a_simulated_session_is_metered_to_the_watt_hour(
        self, engine: AsyncEngine, station: int, connect201: Charger201Factory
    ) -> None:
        cp = await connect201("CP-1", speed=60_000, meter_interval_s=600)
        start = cp.register_wh
        tx_id = await cp.charge(1, TAG)
        [tx] = await transactions(engine)
        assert (tx["station_transaction_id"], tx["state"]) == (tx_id, "Completed")
        assert (tx["meter_start_wh"], tx["energy_wh"]) == (start, cp.register_wh - start)
        assert tx["stop_reason"] == "EVDisconnected"

    @SQLITE_ONLY
    async def test_events_of_an_outage_are_replayed_offline_in_order(
        self, engine: AsyncEngine, station: int, connect201: Charger201Factory
    ) -> None:
        cp = await connect201("CP-1", speed=600, meter_interval_s=60)
        running = asyncio.create_task(cp.charge(1, TAG))

        async def started() -> bool:  # and the station has the answer
            return cp.evses[1].tx_started_at is not None

        await eventually(started)
        assert cp.ws is not None
        await cp.ws.close()  # the connection drops; the session goes on
        await eventually(lambda: _queued(cp, 2))
        cp.request_stop(cp.evses[1], "Local")
        await eventually(lambda: _queued(cp, 3))
        await cp.start()  # back: boot, statuses, then the queue
        tx_id = await asyncio.wait_for(running, 5)
        await eventually(lambda: _empty(cp))
        replayed = [p for a, p in cp.delivered if a == "TransactionEvent" and p.get("offline")]
        assert replayed and replayed[-1]["eventType"] == "Ended"
        seq = [p["seqNo"] for a, p in cp.delivered if a == "TransactionEvent"]
        assert seq == sorted(seq) == list(range(len(seq)))
        [tx] = await transactions(engine)
        assert (tx["station_transaction_id"], tx["state"], tx["stop_reason"]) == (tx_id, "Completed", "Local")


def _second(value: object) -> str:
    """A timestamp to the second, whichever way the database hands it back."""
    return str(value).replace("T", " ")[:19]


async def _queued(cp: object, n: int) -> bool:
    return len(cp.tx_queue) >= n  # type: ignore[attr-defined]


async def _empty(cp: object) -> bool:
    return len(cp.tx_queue) == 0  # type: ignore[attr-defined]
