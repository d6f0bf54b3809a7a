"""Time the GraphQL query a map or operator console runs most: one page of stations.

Why: the station list with connector availability is the API's hottest read. It exercises
keyset pagination, the connectors DataLoader (one query for the whole page, not one per
station) and strawberry's resolution of a few hundred objects. The target (p99 ≤ 30 ms for
a 100-station page) keeps a console snappy with one API process.

What it does: seeds N stations (2 connectors each, stations spread over N/10 locations)
straight into a fresh database, starts the API as `chargenet api` composes it (api/runtime.py,
uvicorn, in a child process), and sends the query K times in sequence over one HTTP
keep-alive connection with httpx, timing each round trip in the client.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib as bl

QUERY = (
    "{ stations(first: 100) { edges { node { id chargePointId online status "
    "connectors { connectorId status maxPowerW } } } } }"
)


def measure(port: int, count: int, warmup: int) -> tuple[list[float], dict[str, Any]]:
    import httpx

    url = f"http://127.0.0.1:{port}/graphql"
    body = {"query": QUERY}
    times: list[float] = []
    with httpx.Client(timeout=30.0) as client:  # one keep-alive connection, reused
        first = client.post(url, json=body)
        first.raise_for_status()
        sample = first.json()
        if "errors" in sample:
            raise RuntimeError(f"query failed: {sample['errors']}")
        for _ in range(warmup):
            client.post(url, json=body).raise_for_status()
        for _ in range(count):
            t0 = time.perf_counter()
            response = client.post(url, json=body)
            response.read()
            times.append(time.perf_counter() - t0)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    return times, sample


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", type=int, default=1000, help="stations to seed (2 connectors each)")
    p.add_argument("--requests", type=int, default=500, help="timed sequential requests (K)")
    p.add_argument("--warmup", type=int, default=50, help="untimed requests first")
    bl.add_server_args(p, pg_name="chargenet_bench_gql", subject="API")
    return p


def main() -> None:
    args = build_parser().parse_args()
    bl.raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="chargenet-bench-gql-"))
    db = bl.fresh_database(args.database_url, tmp, args.pg_name)
    report = bl.Report(f"graphql_latency ({db.kind}, loop={args.loop})")
    api: bl.Child | None = None
    try:
        t0 = time.perf_counter()
        asyncio.run(bl.seed_stations(db.url, args.stations, prefix="GQL-"))
        print(f"seeded {args.stations} stations in {time.perf_counter() - t0:.1f} s", flush=True)
        profile = str(tmp / "api.prof") if args.cprofile else None
        token = secrets.token_urlsafe(16)
        api = bl.spawn("api", bl.runtime_child, db.url, args.loop, True, False, token, profile)
        spy_out = None
        spy = None
        if args.py_spy:
            Path(args.py_spy).mkdir(parents=True, exist_ok=True)
            spy_out = Path(args.py_spy) / f"api_{db.kind}_stations.txt"
        # Warm up first (parser/validation caches, connection pool), then time with CPU metering.
        measure(api.info["api_port"], 0, args.warmup)
        api.request(("gc_reset",))
        cpu = bl.CpuMeter({"api": api.pid})
        if spy_out is not None:
            spy = bl.py_spy(api.pid, 1_000, spy_out)
        times, sample = measure(api.info["api_port"], args.requests, 0)
        usage = cpu.stop()
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            spy.wait(30)
            summary = bl.summarize_collapsed(spy_out) if spy_out else ""
            print(summary)
        edges = sample["data"]["stations"]["edges"]
        lat = bl.latency_summary(times)
        mean = 1000 * sum(times) / len(times)
        report.add(
            f"[{db.kind}] stations(first: 100) + connectors: p50",
            f"{lat['p50']:.1f} ms",
            "",
            None,
            f"mean {mean:.1f} ms, {len(edges)} stations × "
            f"{len(edges[0]['node']['connectors']) if edges else 0} connectors per response",
        )
        report.add(
            f"[{db.kind}] stations(first: 100) + connectors: p99",
            f"{lat['p99']:.1f} ms",
            "≤ 30 ms",
            lat["p99"] <= 30.0,
            f"p90 {lat['p90']:.1f} ms, max {lat['max']:.1f} ms, {len(times)} sequential requests over one "
            f"keep-alive connection; API CPU {100 * usage['api']:.0f}%",
        )
        report.note(f"[{db.kind}] seeded {args.stations} stations, {2 * args.stations} connectors")
        report.note(f"[{db.kind}] API GC pauses while timing: {api.request(('stats',))['gc']}")
        slow = sum(1 for t in times if t > 0.030)
        report.note(f"[{db.kind}] {slow} of {len(times)} requests over 30 ms")
    finally:
        if api is not None:
            api.stop()
        db.drop()
        if args.cprofile:
            print(f"cProfile output kept in {tmp} (api.prof, api.prof.txt)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    report.emit(args.write)


if __name__ == "__main__":
    main()
