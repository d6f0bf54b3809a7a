"""Commands from the bus reach the station's socket and its answer comes back."""

from __future__ import annotations

import asyncio

import pytest

from gateway.server import Gateway
from gateway.simulator import NO_ANSWER, CallError
from schema.bus import InProcessBus
from schema.commands import RemoteStart, RemoteStop, Reset, ResetKind, TriggerMessage
from schema.errors import CommandFailed, CommandTimeout, StationOffline
from tests.builders import ACCEPTED_TAGS
from tests.conftest import ChargerFactory


class TestCommandPath:
    async def test_reset_and_trigger_reach_the_charger(
        self,
        bus: InProcessBus,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")
        reply = await bus.request(
            "CP-1", TriggerMessage(message="StatusNotification", connector_id=1), timeout=5
        )
        assert reply.accepted
        reply = await bus.request("CP-1", Reset(kind=ResetKind.HARD), timeout=5)
        assert reply.accepted
        assert ("Reset", {"type": "Hard"}) in cp.received_calls
        assert (
            "TriggerMessage",
            {"requestedMessage": "StatusNotification", "connectorId": 1},
        ) in cp.received_calls

    async def test_remote_start_then_stop_runs_a_session(
        self,
        bus: InProcessBus,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1", connectors=[22_000, 22_000], speed=600, meter_interval_s=60)
        sub = bus.subscribe("transactions")
        reply = await bus.request("CP-1", RemoteStart(id_tag=ACCEPTED_TAGS[0], connector_id=2), timeout=5)
        assert reply.status == "Accepted"
        started = await sub.next(5)
        assert started.connector_id == 2  # type: ignore[attr-defined]
        tx = started.transaction_id  # type: ignore[attr-defined]
        stop = await bus.request("CP-1", RemoteStop(transaction_id=tx), timeout=5)
        assert stop.accepted
        while True:
            event = await sub.next(5)
            if event.kind == "transaction.ended":
                assert event.stop_reason == "Remote"  # type: ignore[attr-defined]
                break
        for _ in range(100):  # the charger learns of the stop when its reply arrives
            if cp.connectors[2].transaction_id is None:
                break
            await asyncio.sleep(0.01)
        assert cp.connectors[2].transaction_id is None

    async def test_rejections_come_back_as_the_station_said(
        self,
        bus: InProcessBus,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        await connect_charger("CP-1")
        reply = await bus.request("CP-1", RemoteStop(transaction_id=999), timeout=5)
        assert reply.status == "Rejected"

    async def test_offline_station_fails_at_once(self, bus: InProcessBus, gateway: Gateway) -> None:
        with pytest.raises(StationOffline):
            await bus.request("CP-404", Reset(), timeout=5)

    async def test_silent_station_times_out(
        self,
        bus: InProcessBus,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")

        cp.on_call = lambda action, payload: NO_ANSWER
        with pytest.raises(CommandTimeout):
            await bus.request("CP-1", Reset(), timeout=0.3)
        # the connection is still usable afterwards
        cp.on_call = None
        assert (await bus.request("CP-1", Reset(), timeout=5)).accepted

    async def test_callerror_from_station(
        self,
        bus: InProcessBus,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")

        def refuse(action: str, payload: dict) -> dict | None:
            raise CallError("NotSupported", "no resets here")

        cp.on_call = refuse
        with pytest.raises(CommandFailed) as err:
            await bus.request("CP-1", Reset(), timeout=5)
        assert err.value.station_code == "NotSupported"

    async def test_invalid_answer_is_a_failure_not_a_success(
        self,
        bus: InProcessBus,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")
        cp.on_call = lambda action, payload: {"status": "Maybe"}
        with pytest.raises(CommandFailed) as err:
            await bus.request("CP-1", Reset(), timeout=5)
        assert err.value.station_code == "FormationViolation"

    async def test_command_goes_to_the_newest_connection(
        self,
        bus: InProcessBus,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        old = await connect_charger("CP-1")
        new = await connect_charger("CP-1")
        assert (await bus.request("CP-1", Reset(), timeout=5)).accepted
        assert ("Reset", {"type": "Soft"}) in new.received_calls
        assert not any(a == "Reset" for a, _ in old.received_calls)

    async def test_station_disconnecting_midway_is_offline(
        self,
        bus: InProcessBus,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")
        await cp.close()
        await asyncio.sleep(0.1)
        with pytest.raises(StationOffline):
            await bus.request("CP-1", Reset(), timeout=5)
