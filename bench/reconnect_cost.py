"""What one charger reconnect costs the gateway and PostgreSQL.

Why: after a gateway restart its chargers all come back within seconds (issue #4's storm:
10,000 within 10 s). Whether that fits on a machine is a matter of CPU per reconnect, which
the storm itself hides behind queueing; this isolates it.

What it does: a fresh PostgreSQL database with `--chargers` stations, one `chargenet gateway`
process on a redis-server of its own, then `--rounds` rounds in which every charger connects
(`--concurrency` handshakes in flight), sends BootNotification and three StatusNotifications
(station and both connectors Available, as after a reboot) and is dropped. Round 1 writes
every status change (the seeded connectors were mixed); later rounds are pure repeats. Reports
reconnects per second and CPU seconds per reconnect of the gateway, PostgreSQL and the load
generator (this process), measured from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib as bl

PREFIX = "RC"


def _statuses() -> list[dict[str, Any]]:
    now = bl.ocpp_now()
    return [
        {"connectorId": c, "errorCode": "NoError", "status": "Available", "timestamp": now} for c in (0, 1, 2)
    ]


async def _round(port: int, chargers: int, concurrency: int) -> tuple[float, int, str]:
    gate = asyncio.Semaphore(concurrency)
    opened: list[bl.OcppConn] = []
    failed = 0
    first_error = ""

    async def one(i: int) -> None:
        nonlocal failed, first_error
        async with gate:
            try:
                c = await bl.open_charger("127.0.0.1", port, f"{PREFIX}{i:06d}", timeout=60)
                opened.append(c)
                result = await c.call("BootNotification", bl.BOOT_PAYLOAD)
                if result.get("status") != "Accepted":
                    raise RuntimeError(f"BootNotification {result.get('status')}")
                for payload in _statuses():
                    await c.call("StatusNotification", payload)
            except Exception as exc:
                failed += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"[:200]

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(chargers)))
    elapsed = time.perf_counter() - t0
    for c in opened:
        c.abort()
    return elapsed, failed, first_error


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--database-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/chargenet_bench_reconnect",
        help="PostgreSQL server to create the bench database on",
    )
    p.add_argument("--pg-name", default="chargenet_bench_reconnect")
    p.add_argument("--chargers", type=int, default=5_000)
    p.add_argument("--concurrency", type=int, default=200, help="handshakes in flight")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--gen-loop", choices=("asyncio", "uvloop"), default="uvloop", help="load event loop")
    p.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    args = p.parse_args()
    bl.raise_nofile()
    bl.install_loop(args.gen_loop)
    report = bl.Report("Reconnect cost (one gateway process, PostgreSQL + Redis)")
    with tempfile.TemporaryDirectory() as tmp:
        db = bl.fresh_database(args.database_url, Path(tmp), args.pg_name)
        redis = bl.BenchRedis.start(None, Path(tmp))
        cluster = bl.chargenet_cluster(db.url, redis.url)
        try:
            asyncio.run(bl.seed_stations(db.url, args.chargers, prefix=PREFIX))
            gateway = asyncio.run(cluster.gateway("gw"))
            pid = int(cluster.processes["gw"].popen.pid)
            for n in range(1, args.rounds + 1):
                cpu = bl.CpuMeter({"gateway": pid, "postgres": bl.postgres_cpu_seconds, "load": os.getpid()})
                elapsed, failed, error = asyncio.run(_round(gateway.port, args.chargers, args.concurrency))
                use = cpu.stop()
                per = {k: v * elapsed / args.chargers * 1000 for k, v in use.items()}
                report.add(
                    f"round {n}{' (status changes written)' if n == 1 else ' (repeats)'}: "
                    "reconnects/s; CPU per reconnect gateway / PostgreSQL / load generator",
                    f"{args.chargers / elapsed:,.0f}/s; {per['gateway']:.2f} / {per['postgres']:.2f} / "
                    f"{per['load']:.2f} ms",
                    detail=f"{args.chargers} chargers in {elapsed:.1f} s, {args.concurrency} in flight; "
                    f"failed {failed}{' (' + error + ')' if error else ''}; CPU {bl.fmt_cpu(use)}",
                )
                time.sleep(2)
        finally:
            asyncio.run(cluster.aclose())
            redis.stop()
            db.drop()
    report.emit(args.write)


if __name__ == "__main__":
    main()
