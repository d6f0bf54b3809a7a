"""Many chargers connecting at once: handshake reads are shared, every reply still exact."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.server import Gateway
from gateway.simulator import SimCharger, SimConfig
from gateway.station_loader import StationLoader
from tests.builders import make_station
from tests.conftest import ChargerFactory
from tests.dbutil import fetch, scalar

CHARGERS = 60


class TestStationLoader:
    async def test_concurrent_reads_share_batches_and_each_gets_its_own_station(
        self, engine: AsyncEngine
    ) -> None:
        # given
        ids = {f"LD-{i:03d}": await make_station(engine, charge_point_id=f"LD-{i:03d}") for i in range(40)}
        loader = StationLoader(engine)
        try:
            # when
            loaded = await asyncio.gather(*(loader.load(cpid) for cpid in [*ids, "LD-MISSING"]))
        finally:
            await loader.aclose()
        # then
        *found, missing = loaded
        assert missing is None
        assert [(s.record.charge_point_id, s.context.station_id) for s in found if s] == list(ids.items())
        assert all(s is not None and sorted(s.context.connectors) == [1, 2] for s in found)
        assert loader.batches == 1  # queued in one loop turn, read together

    async def test_two_sockets_of_one_station_get_separate_views(self, engine: AsyncEngine) -> None:
        await make_station(engine, charge_point_id="TWIN-1")
        loader = StationLoader(engine)
        try:
            first, second = await asyncio.gather(loader.load("TWIN-1"), loader.load("TWIN-1"))
        finally:
            await loader.aclose()
        assert first is not None and second is not None
        assert first.context is not second.context
        assert first.context.connectors[1] is not second.context.connectors[1]


class TestReconnectStorm:
    async def test_every_charger_booted_and_its_statuses_stored_once(
        self, engine: AsyncEngine, gateway: Gateway
    ) -> None:
        # given: stations whose connectors the database holds as Available
        cpids = [f"STORM-{i:03d}" for i in range(CHARGERS)]
        for cpid in cpids:
            await make_station(engine, charge_point_id=cpid)
        chargers = [
            SimCharger(SimConfig(charge_point_id=c, url=f"ws://127.0.0.1:{gateway.bound_port}/ocpp"))
            for c in cpids
        ]
        before = await scalar(engine, "SELECT count(*) FROM connector_status_event")

        async def back(charger: SimCharger, n: int) -> dict[str, object]:
            await charger.connect()
            reply = await charger.boot()
            await charger.status(0, "Available")
            await charger.status(1, "Available")
            await charger.status(
                2, "Faulted" if n % 3 == 0 else "Available", "GroundFailure" if n % 3 == 0 else "NoError"
            )
            return reply

        try:
            # when: all of them come back at once
            replies = await asyncio.gather(*(back(c, n) for n, c in enumerate(chargers)))
        finally:
            for c in chargers:
                await c.close()
        # then: each Boot accepted, only real changes in the history
        assert all(r["status"] == "Accepted" for r in replies)
        faulted = await fetch(
            engine,
            "SELECT s.charge_point_id, c.error_code FROM connector c JOIN charging_station s "
            "ON s.id = c.station_id WHERE c.status = 'Faulted'",
        )
        assert sorted(r["charge_point_id"] for r in faulted) == [cpids[n] for n in range(0, CHARGERS, 3)]
        assert {r["error_code"] for r in faulted} == {"GroundFailure"}
        added = await scalar(engine, "SELECT count(*) FROM connector_status_event") - before
        # connector 0 changes from Unknown to Available for every station; one in three faulted
        assert added == CHARGERS + CHARGERS // 3
        booted = await scalar(
            engine,
            "SELECT count(*) FROM charging_station WHERE last_boot_at IS NOT NULL AND model IS NOT NULL "
            "AND charge_point_id LIKE 'STORM-%'",
        )
        assert booted == CHARGERS


class TestRegistrationChangedWhileConnected:
    async def test_a_pending_station_accepted_meanwhile_is_accepted_on_its_next_boot(
        self, engine: AsyncEngine, gateway: Gateway, connect_charger: ChargerFactory
    ) -> None:
        await make_station(engine, charge_point_id="PEND-2", registration_status="Pending")
        charger = await connect_charger("PEND-2", boot=False)
        assert (await charger.boot())["status"] == "Pending"
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE charging_station SET registration_status = 'Accepted' "
                    "WHERE charge_point_id = 'PEND-2'"
                )
            )
        assert (await charger.boot())["status"] == "Accepted"
