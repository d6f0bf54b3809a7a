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
STATUSES = ("Available", "Available", "Charging", "Preparing", "Faulted", "Unavailable")


async def seed(url: str, stations: int) -> None:
    """An organisation, N/10 locations, N stations with 2 connectors each, in a few inserts."""
    from sqlalchemy import insert, select

    from schema.db import create_engine
    from schema.models import ChargingStation, Connector, Location, Organization
    from schema.timeutil import utcnow

    org_t, loc_t = Organization.__table__, Location.__table__  # type: ignore[attr-defined]
    st_t, con_t = ChargingStation.__table__, Connector.__table__  # type: ignore[attr-defined]
    now = utcnow()
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(
            insert(org_t).values(name="Bench Network", slug="bench", currency="EUR", created_at=now)
        )
        org_id = (await conn.execute(select(org_t.c.id))).scalar_one()
        n_loc = max(1, stations // 10)
        await conn.execute(
            insert(loc_t),
            [
                {
                    "organization_id": org_id,
                    "name": f"Site {i}",
                    "address": f"Street {i}",
                    "city": "Berlin",
                    "country": "DE",
                    "latitude": 52.0 + (i % 100) / 100,
                    "longitude": 13.0 + (i // 100) / 100,
                    "time_zone": "Europe/Berlin",
                    "created_at": now,
                }
                for i in range(n_loc)
            ],
        )
        loc_ids = [r[0] for r in await conn.execute(select(loc_t.c.id).order_by(loc_t.c.id))]
        await conn.execute(
            insert(st_t),
            [
                {
                    "organization_id": org_id,
                    "location_id": loc_ids[i % n_loc],
                    "charge_point_id": f"GQL-{i:06d}",
                    "vendor": "ChargeNetBench",
                    "model": "BenchAC22",
                    "registration_status": "Accepted",
                    "online": i % 3 != 0,
                    "heartbeat_interval_s": 300,
                    "status": "Available",
                    "error_code": "NoError",
                    "created_at": now,
                }
                for i in range(stations)
            ],
        )
        st_ids = [r[0] for r in await conn.execute(select(st_t.c.id).order_by(st_t.c.id))]
        await conn.execute(
            insert(con_t),
            [
                {
                    "station_id": sid,
                    "connector_id": n,
                    "connector_type": "Type2",
                    "current_type": "AC",
                    "max_power_w": 22_000,
                    "status": STATUSES[(k + n) % len(STATUSES)],
                    "error_code": "NoError",
                    "status_since": now,
                }
                for k, sid in enumerate(st_ids)
                for n in (1, 2)
            ],
        )
    await engine.dispose()


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
        asyncio.run(seed(db.url, args.stations))
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
