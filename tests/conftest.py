"""Shared fixtures: real databases (SQLite file and PostgreSQL), a real gateway on a free port,
a real API server, and builders for stations and chargers.

Every database test runs on both backends. PostgreSQL variants are skipped with a visible
reason when the server is unreachable, unless CHARGENET_REQUIRE_SERVICES=1 (set by CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from api.app import create_app
from api.worker.service import DurableWork
from api.worker.settings import WorkerSettings
from gateway.server import Gateway
from gateway.simulator import SimCharger, SimConfig
from schema import models as _models  # noqa: F401  (registers every table on the metadata)
from schema.bus import InProcessBus
from schema.db import create_engine
from schema.migrate import upgrade
from schema.secrets import hash_secret
from schema.settings import Settings
from tests.builders import make_station

PG_HOST = os.environ.get("CHARGENET_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("CHARGENET_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("CHARGENET_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("CHARGENET_TEST_PG_DB", "test")
REQUIRE_SERVICES = os.environ.get("CHARGENET_REQUIRE_SERVICES") == "1"

# Every table of the models, emptied between PostgreSQL tests (TRUNCATE … CASCADE).
TABLES = tuple(t.name for t in reversed(SQLModel.metadata.sorted_tables))


def _pg_dsn(db: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}"


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(_pg_dsn(PG_ADMIN_DB), timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test run, dropped at the end."""
    name = f"chargenet_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        reason = f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT} ({exc.__class__.__name__})"
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason}; CHARGENET_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(f"{reason}; PostgreSQL variants skipped")
    url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    upgrade(url)
    yield url
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated once; each test gets a copy, so every test still runs on migrated tables."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "chargenet.db"
        shutil.copy(template, path)
        return f"sqlite+aiosqlite:///{path}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    if eng.dialect.name == "postgresql":
        async with eng.begin() as conn:
            await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    yield eng
    await eng.dispose()


@pytest.fixture
def bus() -> InProcessBus:
    return InProcessBus()


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def start_gateway(engine: AsyncEngine, bus: InProcessBus) -> AsyncIterator[GatewayFactory]:
    started: list[Gateway] = []

    async def factory(**kwargs: Any) -> Gateway:
        kwargs.setdefault("port", 0)
        gw = Gateway(engine, bus, **kwargs)
        await gw.start()
        started.append(gw)
        return gw

    yield factory
    for gw in started:
        await gw.stop()


@pytest.fixture
async def gateway(start_gateway: GatewayFactory) -> Gateway:
    return await start_gateway()


ChargerFactory = Callable[..., Awaitable[SimCharger]]


@pytest.fixture
async def connect_charger(gateway: Gateway) -> AsyncIterator[ChargerFactory]:
    """Connect a simulated charger (not booted unless boot=True)."""
    chargers: list[SimCharger] = []

    async def factory(cpid: str, *, boot: bool = True, **cfg: Any) -> SimCharger:
        cfg.setdefault("url", f"ws://127.0.0.1:{gateway.bound_port}/ocpp")
        charger = SimCharger(SimConfig(charge_point_id=cpid, **cfg))
        await charger.connect()
        chargers.append(charger)
        if boot:
            await charger.start()
        return charger

    yield factory
    for c in chargers:
        await c.close()


@pytest.fixture
async def station(engine: AsyncEngine) -> int:
    """One registered station CP-1 with two connectors and accepted tags."""
    return await make_station(engine, charge_point_id="CP-1", connectors=2)


@pytest.fixture
def hashed_password() -> Callable[[str], str]:
    return hash_secret


OPERATOR_TOKEN = "test-operator-token-0123456789"


@dataclass
class ApiServer:
    base_url: str
    ws_url: str
    app: Any


ApiServerFactory = Callable[..., Awaitable[ApiServer]]


@pytest.fixture
async def api_server_factory(engine: AsyncEngine, bus: InProcessBus) -> AsyncIterator[ApiServerFactory]:
    """Start real API servers with extra settings (`CHARGENET_…=value` keywords)."""
    servers: list[tuple[_QuietServer, asyncio.Task[None]]] = []

    async def start(**overrides: Any) -> ApiServer:
        settings = Settings(
            **{
                "CHARGENET_ADMIN_TOKEN": OPERATOR_TOKEN,
                "CHARGENET_START_WAIT": 5.0,
                "CHARGENET_COMMAND_TIMEOUT": 5.0,
                **overrides,
            }
        )
        app = create_app(engine=engine, bus=bus, settings=settings)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", ws="websockets-sansio"
        )
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve())
        servers.append((server, task))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        return ApiServer(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/graphql", app)

    yield start
    for server, _task in servers:
        server.should_exit = True
    for _, task in servers:
        await task


@pytest.fixture
async def api_server(api_server_factory: ApiServerFactory) -> ApiServer:
    """The real Starlette app behind a real uvicorn socket, sharing the test's bus."""
    return await api_server_factory()


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@pytest.fixture
async def http(api_server: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_server.base_url, timeout=20) as client:
        yield client


@pytest.fixture
async def durable(engine: AsyncEngine, gateway: Gateway) -> AsyncIterator[DurableWork]:
    """The worker in-process, as `chargenet serve` runs it: durable events reach its handlers
    (charging requests linked, tariffs frozen on sessions) within tens of milliseconds."""
    work = DurableWork(
        engine, WorkerSettings(CHARGENET_OUTBOX_POLL=0.05), bus_url="memory", gateway=True, worker=True
    )
    gateway.writer.on_outbox = work.nudge
    await work.start()
    yield work
    await work.stop()
