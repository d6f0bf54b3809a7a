"""Serviceability detection latency, seen where an operator sees it: `fleetAlerts`.

Why: issue #7's figures — a station going silent is marked offline within heartbeat x 2 +
10 s, and a Faulted status opens an incident visible in `fleetAlerts` in < 1 s.

What it does: `chargenet serve`'s composition (gateway + API + worker, in-process bus, demo
off) in a child process on a fresh database with the default detection settings and
`--heartbeat` seconds as every station's heartbeat interval; an operator's graphql-transport-ws
subscription to `fleetAlerts` in this process. Then:

(a) `--silent` lean OCPP 1.6 chargers connect, boot and send one Heartbeat each, spread over a
    few seconds, and then say nothing while their sockets stay open. Latency: from the answer
    to each station's last message to its "opened" OFFLINE alert on the subscription.
(b) `--faults` other chargers, one after another, each report StatusNotification Faulted
    (HighTemperature) on connector 1. Latency: from sending the frame to its "opened" FAULT
    alert on the subscription (one fault per station, so every alert is an opening).
(c) the cost of one run of each detection job over a `--fleet` of stations (the rest of the
    network online and healthy), timed in this process after the server stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib as bl

PREFIX = "DL"
FLEET_ALERTS = """subscription ($org: ID!) { fleetAlerts(organizationId: $org) {
  change kind chargePointId } }"""
# What the worker runs by default (api/worker/settings.py): the figures hold for these.
DEFAULT_OFFLINE_GRACE_S = 5.0
DEFAULT_DETECTION_INTERVAL_S = 3.0


class Alerts:
    """The subscription, read in the background: (change, kind, charge point) → arrival time."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: dict[tuple[str, str, str], float] = {}
        self.arrived = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            message = await self.ws.receive(timeout=600)
            if message["type"] != "next":
                raise RuntimeError(f"fleetAlerts: {message}")
            alert = message["payload"]["data"]["fleetAlerts"]
            key = (alert["change"], alert["kind"], alert["chargePointId"])
            self.seen.setdefault(key, time.perf_counter())
            self.arrived.set()

    async def wait(self, key: tuple[str, str, str], timeout: float) -> float | None:
        deadline = time.perf_counter() + timeout
        while key not in self.seen:
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                return None
        return self.seen[key]


async def silence(args: argparse.Namespace, port: int, alerts: Alerts) -> tuple[list[float], int]:
    rng = random.Random(7)
    last_heard: dict[str, float] = {}
    chargers = []

    async def one(i: int) -> None:
        cpid = f"{PREFIX}{i:06d}"
        conn = await bl.open_charger("127.0.0.1", port, cpid)
        chargers.append(conn)
        assert (await conn.call("BootNotification", bl.BOOT_PAYLOAD))["status"] == "Accepted"
        # spread the moments of silence over the detection interval and then some
        await asyncio.sleep(rng.uniform(0, 2 * DEFAULT_DETECTION_INTERVAL_S))
        await conn.call("Heartbeat", {})
        last_heard[cpid] = time.perf_counter()

    await asyncio.gather(*(one(i) for i in range(args.silent)))
    bound = 2 * args.heartbeat + 10
    latencies = []
    for cpid, heard in last_heard.items():
        arrived = await alerts.wait(("opened", "OFFLINE", cpid), timeout=bound + 30)
        if arrived is not None:
            latencies.append(arrived - heard)
    for c in chargers:
        c.abort()
    return latencies, len(last_heard) - len(latencies)


async def faults(args: argparse.Namespace, port: int, alerts: Alerts) -> tuple[list[float], int]:
    chargers = []
    for i in range(args.silent, args.silent + args.faults):
        conn = await bl.open_charger("127.0.0.1", port, f"{PREFIX}{i:06d}")
        assert (await conn.call("BootNotification", bl.BOOT_PAYLOAD))["status"] == "Accepted"
        chargers.append((f"{PREFIX}{i:06d}", conn))
    await asyncio.sleep(1.0)  # the configuration reads ChargeNet makes after boot
    latencies, missing = [], 0
    for cpid, conn in chargers:
        t0 = time.perf_counter()
        await conn.call(
            "StatusNotification",
            {
                "connectorId": 1,
                "status": "Faulted",
                "errorCode": "HighTemperature",
                "timestamp": bl.ocpp_now(),
            },
        )
        arrived = await alerts.wait(("opened", "FAULT", cpid), timeout=10)
        if arrived is None:
            missing += 1
        else:
            latencies.append(arrived - t0)
        await asyncio.sleep(0.1)
    for _, c in chargers:
        c.abort()
    return latencies, missing


async def measure(args: argparse.Namespace, gateway_port: int, api_port: int, token: str) -> dict[str, Any]:
    from strawberry import relay

    from tests.graphql_client import GraphQLWS

    ws = await GraphQLWS.open(
        f"ws://127.0.0.1:{api_port}/graphql", payload={"Authorization": f"Bearer {token}"}
    )
    await ws.subscribe(FLEET_ALERTS, {"org": str(relay.GlobalID("Organization", "1"))})
    alerts = Alerts(ws)
    fault_latencies, fault_missing = await faults(args, gateway_port, alerts)
    silent_latencies, silent_missing = await silence(args, gateway_port, alerts)
    alerts.task.cancel()
    await ws.close()
    return {
        "faults": fault_latencies,
        "faults_missing": fault_missing,
        "silent": silent_latencies,
        "silent_missing": silent_missing,
    }


async def quiet_seed(url: str, measured: int) -> None:
    """The stations this benchmark connects start never seen; the rest of the fleet is online
    and heard from with an hour's heartbeat, so the scans walk a whole network that is fine."""
    from sqlalchemy import text

    from schema.db import create_engine
    from schema.timeutil import utcnow

    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE charging_station SET online = false, last_seen_at = NULL"))
        await conn.execute(
            text(
                "UPDATE charging_station SET online = true, last_seen_at = :now, heartbeat_interval_s = 3600 "
                "WHERE id > :measured"
            ),
            {"now": utcnow(), "measured": measured},
        )
    await engine.dispose()


async def time_scans(url: str, rounds: int) -> dict[str, list[float]]:
    """One run of each detection job over the whole fleet, as the scheduler makes it."""
    from api.service import faults, offline
    from schema.db import create_engine

    engine = create_engine(url)
    out: dict[str, list[float]] = {"offline": [], "faults": [], "catch_up": []}
    try:
        # The seeded fleet has Faulted and Unavailable connectors nobody recorded outages for:
        # the first runs open them (MAX_PER_RUN at a time), as after a deployment of detection.
        t0 = time.perf_counter()
        changed = 1
        while changed and len(out["catch_up"]) < 100:
            changed = await faults.reconcile_faults(engine, None)
            out["catch_up"].append(float(changed))
        out["catch_up_s"] = [time.perf_counter() - t0]
        for _ in range(rounds):
            t0 = time.perf_counter()
            await offline.detect_offline(
                engine, None, offline_grace_s=DEFAULT_OFFLINE_GRACE_S, reconnect_grace_s=30.0
            )
            out["offline"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await faults.reconcile_faults(engine, None)
            out["faults"].append(time.perf_counter() - t0)
    finally:
        await engine.dispose()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bl.add_server_args(p, pg_name="chargenet_bench_detection", subject="server")
    p.add_argument("--heartbeat", type=int, default=5, help="every station's heartbeat interval, s")
    p.add_argument("--silent", type=int, default=20, help="stations that go silent")
    p.add_argument("--faults", type=int, default=50, help="Faulted statuses (one station each)")
    p.add_argument("--fleet", type=int, default=10_000, help="stations in the database (scan cost)")
    p.add_argument("--scan-rounds", type=int, default=20)
    p.add_argument("--gen-loop", choices=("asyncio", "uvloop"), default="uvloop", help="load event loop")
    args = p.parse_args()
    bl.raise_nofile()
    bl.install_loop(args.gen_loop)
    store = "PostgreSQL" if args.database_url else "SQLite"
    report = bl.Report(f"Detection latency: silence → offline incident, Faulted → fleetAlerts ({store})")
    # The child reads these at start: the stations' heartbeat; detection as deployed by default.
    os.environ["CHARGENET_HEARTBEAT_INTERVAL"] = str(args.heartbeat)
    os.environ["CHARGENET_DETECTION_INTERVAL"] = str(DEFAULT_DETECTION_INTERVAL_S)
    os.environ["CHARGENET_OFFLINE_GRACE"] = str(DEFAULT_OFFLINE_GRACE_S)
    token = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory() as tmp:
        db = bl.fresh_database(args.database_url, Path(tmp), args.pg_name)
        child = None
        try:
            measured = args.silent + args.faults
            stations = max(measured, args.fleet)
            asyncio.run(
                bl.seed_stations(db.url, stations, prefix=PREFIX, heartbeat_interval_s=args.heartbeat)
            )
            asyncio.run(quiet_seed(db.url, measured))
            child = bl.spawn("server", bl.runtime_child, db.url, args.loop, True, True, token, None)
            cpu = bl.CpuMeter({"server": child.pid, "load": os.getpid()})
            r = asyncio.run(
                measure(args, int(child.info["gateway_port"]), int(child.info["api_port"]), token)
            )
            usage = cpu.stop()
            child.stop()
            child = None
            scans = asyncio.run(time_scans(db.url, args.scan_rounds))
        finally:
            if child is not None:
                child.stop()
            db.drop()
    bound = 2 * args.heartbeat + 10
    silent = bl.latency_summary(r["silent"])
    report.add(
        f"silent station (socket open) → offline incident on fleetAlerts, heartbeat {args.heartbeat} s: "
        "p50 / max",
        f"{silent['p50'] / 1000:.1f} / {silent['max'] / 1000:.1f} s",
        f"max ≤ heartbeat x 2 + 10 s = {bound} s",
        silent["max"] / 1000 <= bound and r["silent_missing"] == 0,
        f"{len(r['silent'])} stations silent at spread moments, {r['silent_missing']} never alerted; "
        f"detection every {DEFAULT_DETECTION_INTERVAL_S:.0f} s, grace {DEFAULT_OFFLINE_GRACE_S:.0f} s "
        f"(floor heartbeat x 2 + grace = {2 * args.heartbeat + DEFAULT_OFFLINE_GRACE_S:.0f} s)",
    )
    fault = bl.latency_summary(r["faults"])
    report.add(
        "StatusNotification Faulted → incident opened on fleetAlerts: p50 / p99 (max)",
        f"{fault['p50']:.1f} / {fault['p99']:.1f} ms ({fault['max']:.1f} ms)",
        "< 1 s",
        fault["max"] < 1000 and r["faults_missing"] == 0,
        f"{len(r['faults'])} faults, one per station, sequential; {r['faults_missing']} never alerted; "
        f"CPU: {bl.fmt_cpu(usage)}",
    )
    for job, name in (
        ("offline", "offline scan (detect-offline)"),
        ("faults", "fault reconcile (reconcile-faults)"),
    ):
        took = bl.latency_summary(scans[job])
        report.add(
            f"{name}: one run over {stations:,} stations, p50 / max",
            f"{took['p50']:.1f} / {took['max']:.1f} ms",
            f"≪ the {DEFAULT_DETECTION_INTERVAL_S:.0f} s interval",
            took["max"] < 1000 * DEFAULT_DETECTION_INTERVAL_S / 10,
            f"{args.scan_rounds} runs after the measurement, the rest of the fleet online and healthy",
        )
    report.note(
        f"catch-up before timing: the seeded fleet's {int(sum(scans['catch_up'])):,} Faulted/Unavailable "
        f"connectors got their outages in {len(scans['catch_up']) - 1} runs, {scans['catch_up_s'][0]:.1f} s"
    )
    report.emit(args.write)


if __name__ == "__main__":
    main()
