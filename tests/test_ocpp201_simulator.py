"""The simulated 2.0.1 station behaves like a real one where ChargeNet can see it: resets that
end or wait for sessions and come back with a reason, triggered messages, charging profiles
that cap a session, refusals, and an autopilot that charges on its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.server import Gateway
from gateway.sim_v201 import SimCharger201, SimConfig
from schema.bus import InProcessBus
from schema.commands import (
    ChangeAvailability,
    ChargingProfile,
    ChargingSchedule,
    ProfilePurpose,
    RateUnit,
    RemoteStart,
    RemoteStop,
    Reset,
    ResetKind,
    SchedulePeriod,
    TriggerMessage,
    UnlockConnector,
)
from tests.builders import ACCEPTED_TAGS
from tests.dbutil import fetch, scalar
from tests.ocpp201 import eventually

TAG = ACCEPTED_TAGS[0]
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL adds nothing here

Running = Callable[..., Awaitable[SimCharger201]]


@pytest.fixture
async def running(gateway: Gateway, station: int) -> AsyncIterator[Running]:
    """A 2.0.1 station kept connected by its own run() loop (it reconnects after a reboot)."""
    chargers: list[SimCharger201] = []

    async def start(**cfg: Any) -> SimCharger201:
        config = {"connectors": [22_000, 22_000], "speed": 600.0, "meter_interval_s": 60.0, **cfg}
        charger = SimCharger201(
            SimConfig(charge_point_id="CP-1", url=f"ws://127.0.0.1:{gateway.bound_port}/ocpp", **config)
        )
        chargers.append(charger)
        charger.spawn(charger.run())
        await asyncio.wait_for(charger.online.wait(), 5)
        return charger

    yield start
    for c in chargers:
        await c.close()


def boots(cp: SimCharger201) -> list[str]:
    return [p["reason"] for a, p in cp.sent if a == "BootNotification"]


async def remote_session(engine: AsyncEngine, bus: InProcessBus, **start: Any) -> int:
    assert (await bus.request("CP-1", RemoteStart(id_tag=TAG, connector_id=1, **start), timeout=5)).accepted

    async def active() -> bool:
        return await scalar(engine, "SELECT count(*) FROM charging_transaction WHERE state = 'Active'") == 1

    await eventually(active)
    return int(await scalar(engine, "SELECT id FROM charging_transaction WHERE state = 'Active'"))


async def stop_reason(engine: AsyncEngine, tx: int) -> str | None:
    value = await scalar(engine, "SELECT stop_reason FROM charging_transaction WHERE id = :t", t=tx)
    return None if value is None else str(value)


class TestReset:
    async def test_immediate_ends_the_session_and_the_station_comes_back(
        self, engine: AsyncEngine, bus: InProcessBus, running: Running
    ) -> None:
        cp = await running()
        tx = await remote_session(engine, bus)
        assert (await bus.request("CP-1", Reset(kind=ResetKind.HARD), timeout=5)).accepted

        async def ended() -> bool:
            return await stop_reason(engine, tx) == "HardReset"  # 2.0.1 ImmediateReset

        await eventually(ended)
        await eventually(_booted(cp, 2))
        assert boots(cp) == ["PowerUp", "RemoteReset"]

    async def test_on_idle_waits_for_the_session(
        self, engine: AsyncEngine, bus: InProcessBus, running: Running
    ) -> None:
        cp = await running()
        tx = await remote_session(engine, bus)
        assert (await bus.request("CP-1", Reset(kind=ResetKind.SOFT), timeout=5)).status == "Scheduled"
        await asyncio.sleep(0.2)
        assert boots(cp) == ["PowerUp"] and await stop_reason(engine, tx) is None  # still charging
        assert (await bus.request("CP-1", RemoteStop(transaction_id=tx), timeout=5)).accepted
        await eventually(_booted(cp, 2))
        assert boots(cp) == ["PowerUp", "RemoteReset"]
        assert await stop_reason(engine, tx) == "Remote"


class TestTriggers:
    async def test_boot_meter_values_and_transaction_events_on_request(
        self, engine: AsyncEngine, bus: InProcessBus, running: Running
    ) -> None:
        cp = await running()
        assert (await bus.request("CP-1", TriggerMessage(message="BootNotification"), timeout=5)).accepted
        await eventually(_booted(cp, 2))
        assert boots(cp)[-1] == "Triggered"
        await bus.request("CP-1", TriggerMessage(message="MeterValues", connector_id=2), timeout=5)

        async def metered() -> bool:
            return await scalar(engine, "SELECT count(*) FROM meter_sample WHERE connector_id = 2") > 0

        await eventually(metered)
        await remote_session(engine, bus)
        await bus.request("CP-1", TriggerMessage(message="TransactionEvent", connector_id=1), timeout=5)

        async def triggered() -> bool:
            return any(a == "TransactionEvent" and p["triggerReason"] == "Trigger" for a, p in cp.delivered)

        await eventually(triggered)


class TestSmartCharging:
    async def test_a_tx_profile_with_the_remote_start_caps_the_session(
        self, engine: AsyncEngine, bus: InProcessBus, running: Running
    ) -> None:
        cp = await running()
        cap = ChargingProfile(
            profile_id=3,
            stack_level=0,
            purpose=ProfilePurpose.TX,
            schedule=ChargingSchedule(RateUnit.WATTS, (SchedulePeriod(0, 3_700),)),
        )
        await remote_session(engine, bus, profile=cap)
        sent = [p for a, p in cp.received_calls if a == "RequestStartTransaction"][-1]
        assert sent["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"

        async def capped() -> bool:
            return cp.evses[1].power_w > 0

        await eventually(capped)
        assert cp.evses[1].power_w <= 3_700


class TestRefusals:
    async def test_busy_unavailable_and_locked(self, bus: InProcessBus, running: Running) -> None:
        await running(jammed_lock_connectors=[2])
        assert (
            await bus.request("CP-1", UnlockConnector(connector_id=2), timeout=5)
        ).status == "UnlockFailed"
        await bus.request("CP-1", ChangeAvailability(connector_id=2, operative=False), timeout=5)
        start = await bus.request("CP-1", RemoteStart(id_tag=TAG, connector_id=2), timeout=5)
        assert start.status == "Rejected"


class TestAutopilot:
    async def test_drivers_arrive_charge_and_leave(self, engine: AsyncEngine, running: Running) -> None:
        await running(
            speed=20_000.0, meter_interval_s=600.0, auto_sessions=True, fault_probability=0.0, id_tags=[TAG]
        )

        async def charged() -> bool:
            rows = await fetch(engine, "SELECT energy_wh FROM charging_transaction WHERE state = 'Completed'")
            return bool(rows) and rows[0]["energy_wh"] > 0

        await eventually(charged, timeout=10)


def _booted(cp: SimCharger201, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(boots(cp)) >= n and cp.online.is_set()

    return check
