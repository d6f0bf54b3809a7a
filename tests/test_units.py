"""Plain-function rules: meter readings, timestamps, the bus, geography, the writer."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.network.geo import bounding_box, haversine_km
from gateway.meter import BadSample, latest_reading, parse_samples
from gateway.tables import OCPP_MESSAGE
from gateway.writer import Unit, Writer
from schema.bus import SUBSCRIPTION_QUEUE_LIMIT, InProcessBus
from schema.commands import Reset, ResetKind, TriggerMessage, command_from_dict
from schema.errors import StationOffline, SubscriptionLagged
from schema.events import StationReported, event_from_dict
from schema.timeutil import parse_ocpp_datetime
from tests.dbutil import scalar


def sampled(ts: str, *values: dict) -> list[dict]:
    return [{"timestamp": ts, "sampledValue": list(values)}]


class TestMeterReadings:
    def test_kwh_register_and_kw_power_are_normalised(self) -> None:
        samples = parse_samples(
            sampled(
                "2026-01-01T10:00:00Z",
                {"value": "12.345", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
                {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"},
                {"value": "81", "measurand": "SoC", "unit": "Percent"},
            )
        )
        r = latest_reading(samples)
        assert (r.register_wh, r.power_w, r.soc_percent) == (12_345, 7_200, 81)

    def test_per_phase_registers_do_not_stand_in_for_the_total(self) -> None:
        samples = parse_samples(
            sampled(
                "2026-01-01T10:00:00Z",
                {"value": "100", "measurand": "Energy.Active.Import.Register", "phase": "L1"},
                {"value": "300", "measurand": "Energy.Active.Import.Register"},
            )
        )
        assert latest_reading(samples).register_wh == 300

    def test_newest_timestamp_wins(self) -> None:
        samples = parse_samples(
            sampled("2026-01-01T10:05:00Z", {"value": "500"})
            + sampled("2026-01-01T10:00:00Z", {"value": "400"})
        )
        assert latest_reading(samples).register_wh == 500

    @pytest.mark.parametrize("value", ["", "abc", "nan", "inf"])
    def test_non_numbers_are_refused(self, value: str) -> None:
        with pytest.raises(BadSample):
            parse_samples(sampled("2026-01-01T10:00:00Z", {"value": value}))

    def test_signed_data_is_skipped_not_refused(self) -> None:
        assert (
            parse_samples(
                sampled("2026-01-01T10:00:00Z", {"value": "AP;0;3;ALCV3...", "format": "SignedData"})
            )
            == []
        )


class TestTimestamps:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2026-03-01T12:00:00Z", datetime(2026, 3, 1, 12, tzinfo=UTC)),
            ("2026-03-01T13:00:00+01:00", datetime(2026, 3, 1, 12, tzinfo=UTC)),
            ("2026-03-01T12:00:00.123Z", datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)),
            ("2026-03-01T12:00:00", datetime(2026, 3, 1, 12, tzinfo=UTC)),
        ],
    )
    def test_parsed_as_aware_utc(self, text: str, expected: datetime) -> None:
        assert parse_ocpp_datetime(text) == expected

    @pytest.mark.parametrize("text", ["yesterday", "2026-03-01", "", "12:00"])
    def test_garbage_is_refused(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse_ocpp_datetime(text)


class TestGeo:
    def test_berlin_to_potsdam(self) -> None:
        assert 26 < haversine_km(52.52, 13.405, 52.39, 13.065) < 28

    def test_box_contains_the_circle(self) -> None:
        box = bounding_box(60.0, 10.0, 50)
        assert box.min_lat < 60 - 0.44 and box.max_lon > 10 + 0.89


def _event(n: int) -> StationReported:
    return StationReported(
        station_id=1,
        charge_point_id="CP",
        location_id=None,
        at=datetime(2026, 1, 1, tzinfo=UTC),
        action="X",
        detail={"n": n},
    )


class TestBus:
    async def test_a_subscriber_on_two_matching_topics_gets_one_copy(self) -> None:
        bus = InProcessBus()
        sub = bus.subscribe("station:1", "stations")
        await bus.publish([_event(1)])
        assert (await sub.next(1)).detail == {"n": 1}  # type: ignore[attr-defined]
        with pytest.raises(TimeoutError):
            await sub.next(0.05)

    async def test_a_lagging_subscriber_is_told_to_resubscribe(self) -> None:
        bus = InProcessBus()
        sub = bus.subscribe("stations")
        await bus.publish([_event(i) for i in range(SUBSCRIPTION_QUEUE_LIMIT + 1)])
        with pytest.raises(SubscriptionLagged):
            async for _ in sub:
                pass
        assert bus.subscriber_count() == 0

    async def test_closing_stops_iteration_and_unsubscribes(self) -> None:
        bus = InProcessBus()
        sub = bus.subscribe("stations")
        sub.close()
        assert [e async for e in sub] == []
        assert bus.subscriber_count() == 0

    async def test_commands_go_to_the_registered_executor_only(self) -> None:
        bus = InProcessBus()
        with pytest.raises(StationOffline):
            await bus.request("CP", Reset(), timeout=1)

        async def old(cmd: object, timeout: float) -> object:
            raise AssertionError("replaced executor called")

        async def new(cmd: object, timeout: float) -> object:
            return "new"

        bus.serve_station("CP", old)  # type: ignore[arg-type]
        bus.serve_station("CP", new)  # type: ignore[arg-type]
        bus.release_station("CP", old)  # type: ignore[arg-type]  # the stale one leaves late
        assert await bus.request("CP", Reset(), timeout=1) == "new"

    def test_events_and_commands_survive_a_round_trip_through_dicts(self) -> None:
        event = _event(7)
        assert event_from_dict(event.to_dict()) == event
        command = TriggerMessage(message="MeterValues", connector_id=2)
        assert command_from_dict(command.to_dict()) == command


class TestWriter:
    async def test_one_bad_unit_fails_alone_and_the_rest_commit(self, engine: AsyncEngine) -> None:
        writer = Writer(engine, InProcessBus())
        writer.start()

        def row(n: int) -> dict:
            return {
                "charge_point_id": f"CP-{n}",
                "direction": "in",
                "message_type": 2,
                "message_id": str(n),
                "action": "Heartbeat",
                "payload": "[]",
                "logged_at": datetime.now(UTC),
            }

        async def boom(conn: AsyncConnection, events: list) -> None:
            raise RuntimeError("bad unit")

        good = [writer.submit(Unit(inserts=[(OCPP_MESSAGE, [row(n)])])) for n in range(20)]
        bad = writer.submit(Unit(fn=boom))
        results = await asyncio.gather(*good, bad, return_exceptions=True)
        await writer.stop()
        assert sum(isinstance(r, Exception) for r in results) == 1
        assert isinstance(results[-1], Exception)
        assert await scalar(engine, "SELECT count(*) FROM ocpp_message") == 20


class TestHeapPolicy:
    def test_tick_freezes_survivors_and_reclaim_unfreezes_first(self) -> None:
        import gc

        from schema.heap import HeapPolicy

        try:
            policy = HeapPolicy(reclaim_interval_s=3600)
            keep = [object() for _ in range(1000)]
            policy.tick()
            assert gc.get_freeze_count() > 0 and policy.freezes == 1
            # a due reclaim collects everything, then freezes again
            policy = HeapPolicy(reclaim_interval_s=0)
            policy.tick()
            assert policy.reclaims == 1 and gc.get_freeze_count() > 0
            assert keep
        finally:
            gc.unfreeze()


def test_commands_survive_json_with_their_enums() -> None:
    wire = json.loads(json.dumps(Reset(kind=ResetKind.HARD).to_dict()))
    assert command_from_dict(wire) == Reset(kind=ResetKind.HARD)
