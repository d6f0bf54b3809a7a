"""Fixtures for the detection tests: a gateway that asks for one-second heartbeats and the
worker in-process with detection running every 0.2 s, its live events on the test's bus.

Import `gateway` and `detector` into a test module to use them (the `gateway` here replaces
the default one, so `connect_charger` and `connect201` connect to it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import Table, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.service.incidents import INCIDENT
from api.worker.service import DurableWork
from api.worker.settings import WorkerSettings
from gateway.server import Gateway
from schema.bus import InProcessBus
from tests.builders import make_station
from tests.conftest import GatewayFactory

HEARTBEAT_S = 1
FAST_DETECTION: dict[str, Any] = {
    "CHARGENET_OUTBOX_POLL": 0.05,
    "CHARGENET_DETECTION_INTERVAL": 0.2,
    "CHARGENET_OFFLINE_GRACE": 0.5,
    "CHARGENET_RECONNECT_GRACE": 0.5,
}


@pytest.fixture
async def gateway(start_gateway: GatewayFactory) -> Gateway:
    return await start_gateway(heartbeat_interval_s=HEARTBEAT_S)


@pytest.fixture
async def detector(engine: AsyncEngine, gateway: Gateway, bus: InProcessBus) -> AsyncIterator[DurableWork]:
    work = DurableWork(
        engine, WorkerSettings(**FAST_DETECTION), bus_url="memory", gateway=True, worker=True, bus=bus
    )
    gateway.writer.on_outbox = work.nudge
    await work.start()
    yield work
    await work.stop()


async def make_watched_station(
    engine: AsyncEngine, *, charge_point_id: str, connectors: int = 2, heartbeat_s: int = HEARTBEAT_S
) -> int:
    """A registered station whose BootNotification answer asks for `heartbeat_s`."""
    sid = await make_station(engine, charge_point_id=charge_point_id, connectors=connectors)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE charging_station SET heartbeat_interval_s = :hb WHERE id = :id"),
            {"hb": heartbeat_s, "id": sid},
        )
    return sid


async def rows(engine: AsyncEngine, table: Table, *where: Any) -> list[dict[str, Any]]:
    """Typed rows (aware datetimes, JSON as dicts) of `table`, in id order where it has one."""
    stmt = select(table).where(*where)
    if "id" in table.c:
        stmt = stmt.order_by(table.c.id)
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(stmt)).mappings().all()]


async def wait_for(
    engine: AsyncEngine,
    table: Table,
    check: Callable[[list[dict[str, Any]]], bool],
    *where: Any,
    timeout: float = 8.0,
) -> list[dict[str, Any]]:
    """Poll `table` until `check(rows)` holds; the rows that satisfied it."""
    async with asyncio.timeout(timeout):
        while True:
            found = await rows(engine, table, *where)
            if check(found):
                return found
            await asyncio.sleep(0.05)


def kind_is(kind: str) -> Any:
    return INCIDENT.c.kind == kind
