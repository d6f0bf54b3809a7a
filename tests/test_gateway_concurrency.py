"""Two gateway processes on one database: a station that moved mid-session (or resends through
both while its old socket lingers) still ends each session exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.server import Gateway
from gateway.simulator import SimCharger, SimConfig
from schema.bus import InProcessBus
from schema.events import TransactionEnded
from tests.builders import ACCEPTED_TAGS
from tests.dbutil import fetch
from tests.test_gateway_sessions import ts


@pytest.fixture
async def two_gateways(
    engine: AsyncEngine, station: int
) -> AsyncIterator[list[tuple[Gateway, InProcessBus]]]:
    pairs = []
    for _ in range(2):
        bus = InProcessBus()
        gw = Gateway(engine, bus, port=0)
        await gw.start()
        pairs.append((gw, bus))
    yield pairs
    for gw, _ in pairs:
        await gw.stop()


async def _charger(gw: Gateway) -> SimCharger:
    charger = SimCharger(SimConfig(charge_point_id="CP-1", url=f"ws://127.0.0.1:{gw.bound_port}/ocpp"))
    await charger.connect()
    await charger.start()
    return charger


class TestOneStationTwoGateways:
    async def test_a_stop_through_both_gateways_ends_the_session_once(
        self, engine: AsyncEngine, two_gateways: list[tuple[Gateway, InProcessBus]]
    ) -> None:
        # given a session started through gateway A, and the station also connected to B
        (gw_a, bus_a), (gw_b, bus_b) = two_gateways
        on_a, on_b = await _charger(gw_a), await _charger(gw_b)
        start = {"connectorId": 1, "idTag": ACCEPTED_TAGS[0], "meterStart": 1_000, "timestamp": ts(0)}
        tx = (await on_a.call("StartTransaction", start))["transactionId"]
        ended = [bus_a.subscribe("transactions"), bus_b.subscribe("transactions")]
        # when the same StopTransaction arrives through both at once
        stop = {"transactionId": tx, "meterStop": 6_000, "timestamp": ts(30), "reason": "Local"}
        answers = await asyncio.gather(on_a.call("StopTransaction", stop), on_b.call("StopTransaction", stop))
        # then both are answered, the session ended once, and its figures are the stop's
        assert all(isinstance(a, dict) for a in answers)
        events = []
        for sub in ended:
            with pytest.raises(TimeoutError):
                while True:
                    event = await sub.next(0.5)
                    if isinstance(event, TransactionEnded):
                        events.append(event)
        assert len(events) == 1
        [row] = await fetch(engine, "SELECT state, energy_wh FROM charging_transaction WHERE id = :id", id=tx)
        assert row == {"state": "Completed", "energy_wh": 5_000}
        # and a late meter value through the other gateway does not rewrite the final figures
        late = {
            "connectorId": 1,
            "transactionId": tx,
            "meterValue": [{"timestamp": ts(31), "sampledValue": [{"value": "9999"}]}],
        }
        await on_b.call("MeterValues", late)
        [row] = await fetch(engine, "SELECT state, energy_wh FROM charging_transaction WHERE id = :id", id=tx)
        assert row == {"state": "Completed", "energy_wh": 5_000}
        for charger in (on_a, on_b):
            await charger.close()


class TestFailover:
    async def test_a_session_survives_its_gateway_going_away(
        self, engine: AsyncEngine, two_gateways: list[tuple[Gateway, InProcessBus]]
    ) -> None:
        # given a charger that knows both gateways, charging through A
        (gw_a, _), (gw_b, _) = two_gateways
        charger = SimCharger(
            SimConfig(
                charge_point_id="CP-1",
                url=f"ws://127.0.0.1:{gw_a.bound_port}/ocpp",
                fallback_urls=[f"ws://127.0.0.1:{gw_b.bound_port}/ocpp"],
                meter_interval_s=0.1,
                heartbeat_interval_s=60,
            )
        )
        keeper = asyncio.create_task(charger.run())
        await asyncio.wait_for(charger.online.wait(), 10)
        charger.connectors[1].target_soc = 101  # charge until told to stop
        session = asyncio.create_task(charger.run_session(1, ACCEPTED_TAGS[0]))
        await asyncio.sleep(0.5)
        # when gateway A goes away mid-session
        await gw_a.stop()
        await asyncio.sleep(0.05)
        # then the charger reconnects to B (after its ~1 s backoff) and meters on
        await asyncio.wait_for(charger.online.wait(), 10)
        before = len(charger.delivered)

        for _ in range(300):  # up to 15 s: a few meter values acknowledged by gateway B
            if len(charger.delivered) >= before + 3:
                break
            await asyncio.sleep(0.05)
        charger.connectors[1].stop_requested = True
        tx_id = await asyncio.wait_for(session, 15)
        # and the session completed, with every meter value that was acknowledged
        [row] = await fetch(engine, "SELECT state FROM charging_transaction WHERE id = :id", id=tx_id)
        assert row["state"] == "Completed"
        sent = [p for a, p in charger.delivered if a == "MeterValues"]
        stored = await fetch(
            engine,
            "SELECT count(*) AS n FROM meter_sample WHERE transaction_id = :id AND measurand = 'SoC'",
            id=tx_id,
        )
        assert len(charger.delivered) >= before + 3 and stored[0]["n"] == len(sent)
        await charger.close()
        keeper.cancel()
