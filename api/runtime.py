"""Composition root: builds and runs ChargeNet's processes (API, gateway, simulators).

This module and `api/cli.py` are the only places in api/ that import gateway/: they wire the
two sides together; the sides themselves only share schema/.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import ssl
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from api.demo import (
    DEMO_ID_TAGS,
    DemoAccount,
    demo_charger_specs,
    first_location_global_id,
    reset_demo_accounts,
    seed_demo,
)
from api.worker import liveness
from api.worker.service import DurableWork
from api.worker.settings import WorkerSettings
from gateway.security import server_tls_context
from gateway.server import Gateway
from gateway.sim_v201 import SimCharger201
from gateway.simulator import SimCharger, SimConfig
from schema import heap
from schema.bus import Bus, InProcessBus
from schema.db import create_engine
from schema.migrate import upgrade_async
from schema.redis_bus import bus_from_url
from schema.settings import Settings

log = logging.getLogger("chargenet")

# Time for ended subscriptions to send `complete` to their clients before the server closes.
SUBSCRIPTIONS_COMPLETE_S = 0.1


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime owns Ctrl-C for all parts."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _gateway_tls(s: Settings) -> ssl.SSLContext | None:
    if not s.gateway_tls_cert:
        return None
    if not s.gateway_tls_key:
        raise SystemExit("CHARGENET_GATEWAY_TLS_CERT needs CHARGENET_GATEWAY_TLS_KEY")
    return server_tls_context(s.gateway_tls_cert, s.gateway_tls_key, s.gateway_tls_client_ca)


@dataclass
class Runtime:
    settings: Settings
    run_api: bool = True
    run_gateway: bool = True
    # Durable work: outbox relay, worker (stream consumer or in-process) and scheduled jobs.
    run_worker: bool = True
    engine: AsyncEngine | None = None
    bus: Bus = field(default_factory=InProcessBus)
    gateway: Gateway | None = None
    api_server: uvicorn.Server | None = None
    chargers: list[SimCharger] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _beat: asyncio.Task[None] | None = None
    example_location_id: str = "<a Location id>"
    demo_accounts: list[DemoAccount] = field(default_factory=list)
    worker_settings: WorkerSettings = field(default_factory=WorkerSettings)
    durable: DurableWork | None = None

    async def start(self) -> None:
        s = self.settings
        await upgrade_async(s.database_url)
        self.engine = create_engine(s.database_url)
        await self.bus.start()
        if s.demo:
            await seed_demo(self.engine)
            self.example_location_id = await first_location_global_id(self.engine)
            if self.run_api:
                self.demo_accounts = await reset_demo_accounts(self.engine)
        if self.run_gateway:
            self.gateway = Gateway(
                self.engine,
                self.bus,
                host=s.gateway_host,
                port=s.gateway_port,
                auto_register=s.auto_register or s.demo,
                unknown_stations=s.unknown_stations,
                tls=_gateway_tls(s),
                trust_proxy=s.trust_proxy_headers,
                heartbeat_interval_s=s.heartbeat_interval_s,
                boot_retry_interval_s=s.pending_retry_interval_s,
                command_timeout_s=s.command_timeout_s,
                message_log_retention_days=s.message_log_retention_days,
            )
            await self.gateway.start()
        if self.run_worker or self.run_gateway:
            self.durable = DurableWork(
                self.engine,
                self.worker_settings,
                bus_url=s.bus_url,
                gateway=self.run_gateway,
                worker=self.run_worker,
                bus=self.bus,
            )
            if self.gateway is not None:
                self.gateway.writer.on_outbox = self.durable.nudge
            await self.durable.start()
            alive_file = self.worker_settings.alive_file
            if not (self.run_api or self.run_gateway) and alive_file:
                durable = self.durable
                self._beat = asyncio.create_task(liveness.beat(Path(alive_file), lambda: durable.alive))
        if self.run_api:
            app = create_app(
                engine=self.engine,
                bus=self.bus,
                settings=s,
                ready=lambda: self.api_server is not None and self.api_server.started,
            )
            config = uvicorn.Config(
                app,
                host=s.api_host,
                port=s.api_port,
                lifespan="off",
                log_level="warning",
                ws="websockets-sansio",
            )
            self.api_server = _EmbeddedServer(config)
            self._tasks.append(asyncio.create_task(self.api_server.serve()))
            while not self.api_server.started:
                if self._tasks[-1].done():
                    self._tasks[-1].result()  # surfaces "address already in use" and the like
                await asyncio.sleep(0.02)
        heap.install()
        if s.demo and self.run_gateway and s.simulated_chargers > 0:
            await self.start_simulators(s.simulated_chargers)

    async def start_simulators(self, count: int) -> None:
        assert self.gateway is not None
        url = f"ws://{self.settings.gateway_host}:{self.gateway.bound_port}/ocpp"
        for spec in demo_charger_specs(count):
            simulator = SimCharger201 if spec.ocpp_version == SimCharger201.SUBPROTOCOL else SimCharger
            charger = simulator(
                SimConfig(
                    charge_point_id=spec.charge_point_id,
                    url=url,
                    connectors=spec.connector_powers,
                    model=spec.model,
                    id_tags=list(DEMO_ID_TAGS),
                    speed=60.0,
                    meter_interval_s=30.0,
                    heartbeat_interval_s=60.0,
                    auto_sessions=True,
                    fault_probability=0.05,
                )
            )
            self.chargers.append(charger)
            self._tasks.append(asyncio.create_task(charger.run()))

    async def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        for charger in self.chargers:
            await charger.close()
        if self.api_server is not None:
            # Subscriptions end first, so each client gets `complete` before its socket closes.
            self.bus.end_subscriptions()
            await asyncio.sleep(SUBSCRIPTIONS_COMPLETE_S)
            self.api_server.should_exit = True
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        if self.gateway is not None:
            await self.gateway.stop()
        if self.durable is not None:
            await self.durable.stop()
        await self.bus.aclose()
        if self.engine is not None:
            await self.engine.dispose()
        await heap.uninstall()

    async def run_until_stopped(self) -> None:
        stop = asyncio.Event()
        with _stop_on_signals(stop):
            await self.start()
            self.print_banner()
            await stop.wait()
            log.info("stopping…")
            await self.stop()

    def print_banner(self) -> None:
        s = self.settings
        lines = ["", "ChargeNet is running."]
        if self.run_api:
            lines += [f"  GraphQL + GraphiQL: http://{s.api_host}:{s.api_port}/graphql"]
        if self.gateway is not None:
            lines += [
                f"  OCPP gateway:       ws://{s.gateway_host}:{self.gateway.bound_port}"
                "/ocpp/{chargePointId}  (subprotocol ocpp2.0.1 or ocpp1.6)"
            ]
        if self.run_worker and self.durable is not None:
            w = self.worker_settings
            parts = ", ".join(self.durable.parts)
            lines += [f"  Jobs worker:        group {w.group}, consumer {w.consumer} ({parts})"]
        if self.chargers:
            lines += [f"  Simulated chargers: {len(self.chargers)} (1 simulated minute per second)"]
        if self.run_api:
            lines += [
                "",
                "Try in GraphiQL:",
                "  { stations(first: 10) { totalCount edges { node { id chargePointId online",
                "      status connectors { connectorId status maxPowerW } } } } }",
                f'  subscription {{ stationStatusChanged(locationId: "{self.example_location_id}") {{',
                "      chargePointId online connectors { connectorId status } reason } }",
            ]
            if self.demo_accounts:
                lines += ["", "Sign in as (passwords are new on every start):"]
                lines += [f"  {a.email}  {a.password}   {a.what}" for a in self.demo_accounts]
                example = self.demo_accounts[0]
                lines += [
                    "  then in GraphiQL:",
                    f'  mutation {{ logIn(input: {{email: "{example.email}",',
                    f'      password: "{example.password}"}}) {{ accessToken refreshToken }} }}',
                    '  and add the header  {"Authorization": "Bearer <accessToken>"}  (Headers tab).',
                ]
            if s.admin_token:
                lines += [
                    "",
                    "Platform admin (every organisation) with the header",
                    f"  Authorization: Bearer {s.admin_token}",
                ]
        lines += ["", "Ctrl-C stops."]
        print("\n".join(lines), flush=True)


def ensure_admin_token(settings: Settings) -> Settings:
    """The demo gets a fresh operator token per run when none is configured."""
    if settings.admin_token:
        return settings
    return settings.model_copy(update={"admin_token": secrets.token_urlsafe(24)})


def use_fast_event_loop() -> str:
    """uvloop when available (Linux, macOS): same asyncio API, a faster loop for thousands of
    sockets. Falls back to the standard loop elsewhere."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def run(settings: Settings, *, api: bool = True, gateway: bool = True, worker: bool = True) -> None:
    if api and settings.demo:
        settings = ensure_admin_token(settings)
    use_fast_event_loop()
    bus = bus_from_url(settings.bus_url, prefix=settings.bus_prefix)
    asyncio.run(
        Runtime(settings, run_api=api, run_gateway=gateway, run_worker=worker, bus=bus).run_until_stopped()
    )
