"""Remote commands end to end: GraphQL mutation → API → Redis → gateway → charger → back.

Why: issue #5's figures — `resetStation` answered within 50 ms at p99 with 1,000 connected
stations (the station answering at once), and a bulk command to 1,000 stations complete with
every result within 5 s.

What it does: a fresh PostgreSQL database with `--stations` stations, a redis-server of its
own, one `chargenet gateway` and one `chargenet api` process (the deployed shape); in this
process `--stations` lean OCPP 1.6 chargers connect, boot, answer the configuration read
ChargeNet makes after boot, and answer every Reset with Accepted at once. Then one GraphQL
client sends `--requests` `resetStation` mutations one after another to random stations
(latency measured at the client, over a keep-alive connection), and `--bulk-rounds`
`bulkResetStations` naming every station. Every answer is checked: an outcome other than
ACCEPTED counts as an error. The command log is checked to hold one entry per command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib as bl

PREFIX = "CL"
RESET = """mutation ($s: ID!) { resetStation(input: {stationId: $s}) { outcome stationStatus } }"""
BULK = """mutation ($ids: [ID!]!) { bulkResetStations(input: {stationIds: $ids}) {
  accepted results { outcome message } } }"""
CONFIGURATION = {
    "configurationKey": [
        {"key": "SupportedFeatureProfiles", "readonly": True, "value": "Core,RemoteTrigger,SmartCharging"},
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
    ]
}


def answer_calls(conn: bl.OcppConn) -> None:
    """The charger answers the central system at once: Reset Accepted, its configuration."""

    def on_text(text: str) -> None:
        frame = json.loads(text)
        if frame[0] == 2:
            result: dict[str, Any] = (
                CONFIGURATION if frame[2] == "GetConfiguration" else {"status": "Accepted"}
            )
            conn.send_text(json.dumps([3, frame[1], result]))
            return
        entry = conn.pending.pop(frame[1], None)
        if entry is not None and entry[1] is not None and not entry[1].done():
            entry[1].set_result(frame)

    conn.on_text = on_text


async def connect(port: int, count: int) -> list[bl.OcppConn]:
    gate = asyncio.Semaphore(100)
    chargers: list[bl.OcppConn] = []

    async def one(i: int) -> None:
        async with gate:
            c = await bl.open_charger("127.0.0.1", port, f"{PREFIX}{i:06d}", timeout=60)
            answer_calls(c)
            result = await c.call("BootNotification", bl.BOOT_PAYLOAD)
            assert result["status"] == "Accepted", result
            chargers.append(c)

    await asyncio.gather(*(one(i) for i in range(count)))
    return chargers


async def station_ids(url: str) -> list[str]:
    from sqlalchemy import text
    from strawberry import relay

    from schema.db import create_engine

    engine = create_engine(url)
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id FROM charging_station ORDER BY id"))).all()
    await engine.dispose()
    return [str(relay.GlobalID("Station", str(r.id))) for r in rows]


async def measure(
    args: argparse.Namespace, db_url: str, gateway_port: int, api_url: str, token: str
) -> dict[str, Any]:
    import httpx

    chargers = await connect(gateway_port, args.stations)
    await asyncio.sleep(args.settle)  # the configuration reads after boot finish
    ids = await station_ids(db_url)
    rng = random.Random(5)
    headers = {"Authorization": f"Bearer {token}"}
    out: dict[str, Any] = {"single": [], "errors": [], "bulk": []}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=60) as client:
        for n in range(args.warmup + args.requests):
            t0 = time.perf_counter()
            r = await client.post("/graphql", json={"query": RESET, "variables": {"s": rng.choice(ids)}})
            elapsed = time.perf_counter() - t0
            body = r.json()
            outcome = ((body.get("data") or {}).get("resetStation") or {}).get("outcome")
            if outcome != "ACCEPTED":
                out["errors"].append(json.dumps(body)[:200])
            if n >= args.warmup:
                out["single"].append(elapsed)
        for _ in range(args.bulk_rounds):
            t0 = time.perf_counter()
            r = await client.post("/graphql", json={"query": BULK, "variables": {"ids": ids}})
            elapsed = time.perf_counter() - t0
            bulk = (r.json().get("data") or {}).get("bulkResetStations") or {}
            out["bulk"].append((elapsed, bulk.get("accepted", 0), len(bulk.get("results", []))))
            for result in bulk.get("results", []):
                if result["outcome"] != "ACCEPTED":
                    out["errors"].append(f"bulk: {result['outcome']} {result['message']}"[:200])
    for c in chargers:
        c.abort()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--database-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/chargenet_bench_commands",
        help="PostgreSQL server to create the bench database on",
    )
    p.add_argument("--pg-name", default="chargenet_bench_commands")
    p.add_argument("--stations", type=int, default=1_000)
    p.add_argument("--requests", type=int, default=1_000, help="resetStation mutations measured")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--bulk-rounds", type=int, default=3)
    p.add_argument("--settle", type=float, default=3.0, help="seconds after connecting, before measuring")
    p.add_argument("--gen-loop", choices=("asyncio", "uvloop"), default="uvloop", help="load event loop")
    p.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    args = p.parse_args()
    bl.raise_nofile()
    bl.install_loop(args.gen_loop)
    report = bl.Report("Remote commands (GraphQL → API → Redis → gateway → charger), PostgreSQL")
    with tempfile.TemporaryDirectory() as tmp:
        db = bl.fresh_database(args.database_url, Path(tmp), args.pg_name)
        redis = bl.BenchRedis.start(None, Path(tmp))
        cluster = bl.chargenet_cluster(db.url, redis.url)
        try:
            asyncio.run(bl.seed_stations(db.url, args.stations, prefix=PREFIX))
            gateway = asyncio.run(cluster.gateway("gateway"))
            asyncio.run(cluster.api("api"))
            from tests.cluster import ADMIN_TOKEN

            pids = {
                "gateway": int(cluster.processes["gateway"].popen.pid),
                "api": int(cluster.processes["api"].popen.pid),
                "load": os.getpid(),
                "postgres": bl.postgres_cpu_seconds,
                "redis": redis.pid,
            }
            cpu = bl.CpuMeter(pids)
            r = asyncio.run(measure(args, db.url, gateway.port, cluster.url("api"), ADMIN_TOKEN))
            usage = cpu.stop()
            logged = asyncio.run(bl.count_rows(db.url, "station_command"))
        finally:
            asyncio.run(cluster.aclose())
            redis.stop()
            db.drop()
    single = bl.latency_summary(r["single"])
    report.add(
        f"resetStation → Reset → answer, {args.stations} connected stations, p50 / p99 (max)",
        f"{single['p50']:.1f} / {single['p99']:.1f} ms ({single['max']:.1f} ms)",
        "p99 < 50 ms",
        single["p99"] < 50 and not any(not e.startswith("bulk:") for e in r["errors"]),
        f"{args.requests} sequential requests over one keep-alive connection after {args.warmup} unmeasured; "
        f"errors (single and bulk) {len(r['errors'])}{': ' + r['errors'][0] if r['errors'] else ''}",
    )
    worst = max(b[0] for b in r["bulk"])
    complete = all(accepted == total == args.stations for _, accepted, total in r["bulk"])
    report.add(
        f"bulkResetStations to {args.stations} stations, all results back: each round (worst)",
        ", ".join(f"{b[0]:.2f} s" for b in r["bulk"]) + f" ({worst:.2f} s)",
        "< 5 s, every station ACCEPTED",
        worst < 5 and complete,
        "accepted per round: " + ", ".join(f"{a}/{t}" for _, a, t in r["bulk"]),
    )
    expected = args.warmup + args.requests + args.bulk_rounds * args.stations
    report.add(
        "command log entries (one per command sent)",
        f"{logged} / {expected}",
        "all",
        logged == expected,
        f"CPU over the whole measurement: {bl.fmt_cpu(usage)}",
    )
    report.emit(args.write)


if __name__ == "__main__":
    main()
