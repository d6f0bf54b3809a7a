"""Meter samples at network scale on PostgreSQL: size per row, query time, retention cost.

Why: a year of a 10,000-station network is billions of samples. ChargeNet keeps them in
monthly partitions (schema/partitions.py) keyed by the fact each records; this measures what
that costs and whether the queries the API runs stay fast when the table is large.

What it does: creates a fresh PostgreSQL database (migrated, so partitioned), bulk-loads
`--stations` stations × `--days` days per month × `--months` months of one sample per minute
for three measurands (energy register, power, SoC) with generate_series, then reports:
bytes per row (table + indexes, summed over partitions), the time of the API's two sample
queries (one session's samples by transaction; one station's day by time range) on the full
table, and the time to drop a whole month. The extrapolation to a 10,000-station network uses
the traffic model of issue #4 (30 % of stations in a session, MeterValues every 30 s, four
sampled values each).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib as bl
from sqlalchemy import text

from schema import partitions
from schema.db import create_engine

NETWORK_STATIONS = 10_000
IN_SESSION = 0.30
METER_INTERVAL_S = 30
VALUES_PER_METER = 4


async def _load(url: str, args: argparse.Namespace) -> dict[str, float]:
    engine = create_engine(url)
    current = partitions.month_start(datetime.now(UTC))
    months = [partitions.add_months(current, -n) for n in range(args.months)]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO organization (name, slug, currency, created_at) "
                "VALUES ('Bench', 'bench', 'EUR', now())"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO charging_station (organization_id, charge_point_id, registration_status, "
                "online, heartbeat_interval_s, status, error_code, created_at) "
                "SELECT 1, 'B-' || s, 'Accepted', false, 300, 'Available', 'NoError', now() "
                "FROM generate_series(1, :n) s"
            ),
            {"n": args.stations},
        )
        await conn.execute(
            text(
                "INSERT INTO charging_transaction (station_id, connector_id, start_key, state, started_at, "
                "meter_start_wh, energy_wh, start_missing, created_at) "
                "VALUES (1, 1, 'bench', 'Completed', :at, 0, 0, false, now())"
            ),
            {"at": datetime(current.year, current.month, 2, tzinfo=UTC)},
        )
    t0 = time.perf_counter()
    for month in months:
        start = datetime(month.year, month.month, 2, tzinfo=UTC)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO meter_sample (station_id, connector_id, transaction_id, sampled_at, "
                    "measurand, phase, location, context, unit, value) "
                    "SELECT s, 1, CASE WHEN s = 1 AND ts < CAST(:start AS timestamptz) + interval '5 hours' "
                    "THEN 1 END, ts, m, '', '', 'Sample.Periodic', 'Wh', random() * 1000 "
                    "FROM generate_series(1, :n) s, generate_series(CAST(:start AS timestamptz), "
                    "CAST(:start AS timestamptz) + make_interval(days => :days) - interval '1 minute', "
                    "interval '1 minute') ts, "
                    "unnest(array['Energy.Active.Import.Register', 'Power.Active.Import', 'SoC']) m"
                ),
                {"n": args.stations, "start": start, "days": args.days},
            )
    load_s = time.perf_counter() - t0
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE meter_sample"))
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT count(*) FROM meter_sample"))).scalar_one()
        size = (
            await conn.execute(
                text(
                    "SELECT sum(pg_total_relation_size(i.inhrelid)) FROM pg_inherits i "
                    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'meter_sample'"
                )
            )
        ).scalar_one()
        session_ms = await _time(
            conn,
            "SELECT sampled_at, value FROM meter_sample WHERE transaction_id = 1 "
            "ORDER BY sampled_at, measurand LIMIT 1000",
            {},
            args.queries,
        )
        day = datetime(current.year, current.month, 2, tzinfo=UTC)
        station_ms = await _time(
            conn,
            "SELECT sampled_at, value FROM meter_sample WHERE station_id = :s "
            "AND sampled_at >= CAST(:a AS timestamptz) "
            "AND sampled_at < CAST(:a AS timestamptz) + interval '1 day' "
            "AND measurand = 'Power.Active.Import' ORDER BY sampled_at",
            {"s": args.stations // 2, "a": day},
            args.queries,
        )
        await conn.commit()
    oldest = months[-1]
    t0 = time.perf_counter()
    dropped = await partitions.drop_expired(engine, keep_months=1, now=datetime.now(UTC))
    drop_s = time.perf_counter() - t0
    await engine.dispose()
    return {
        "rows": float(rows),
        "bytes": float(size),
        "load_s": load_s,
        "session_p50": statistics.median(session_ms),
        "session_p99": sorted(session_ms)[int(len(session_ms) * 0.99) - 1],
        "station_p50": statistics.median(station_ms),
        "station_p99": sorted(station_ms)[int(len(station_ms) * 0.99) - 1],
        "drop_s": drop_s,
        "dropped": float(len(dropped)),
        "oldest": float(oldest.month),
    }


async def _time(conn: object, sql: str, params: dict[str, object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await conn.execute(text(sql), params)  # type: ignore[attr-defined]
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--database-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/chargenet_bench_meter",
        help="PostgreSQL server to create the bench database on",
    )
    p.add_argument("--pg-name", default="chargenet_bench_meter")
    p.add_argument("--stations", type=int, default=500)
    p.add_argument("--days", type=int, default=2, help="days of samples loaded per month")
    p.add_argument("--months", type=int, default=3)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    args = p.parse_args()
    report = bl.Report("Meter sample storage (PostgreSQL, monthly partitions)")
    with tempfile.TemporaryDirectory() as tmp:
        db = bl.fresh_database(args.database_url, Path(tmp), args.pg_name)
        try:
            r = asyncio.run(_load(db.url, args))
        finally:
            db.drop()
    per_row = r["bytes"] / r["rows"]
    per_day = NETWORK_STATIONS * IN_SESSION * 86_400 / METER_INTERVAL_S * VALUES_PER_METER
    rate = r["rows"] / r["load_s"]
    report.add("rows loaded", f"{r['rows']:,.0f}", detail=f"in {r['load_s']:.0f} s ({rate:,.0f} rows/s)")
    report.add("bytes per sample (table + primary key + 2 indexes)", f"{per_row:.0f} B")
    month_gb = per_day * 30 * per_row / 1e9
    year_tb = per_day * 365 * per_row / 1e12
    report.add(
        "10,000 stations: samples per day / storage per month / per year",
        f"{per_day / 1e6:.1f} M / {month_gb:,.0f} GB / {year_tb:.1f} TB",
        detail="30 % in session, MeterValues every 30 s, 4 values each",
    )
    report.add(
        "one session's samples (by transaction), p50 / p99",
        f"{r['session_p50']:.2f} / {r['session_p99']:.2f} ms",
        "< 50 ms",
        r["session_p99"] < 50,
        f"{args.queries} runs over {args.months} monthly partitions",
    )
    report.add(
        "one station's power for a day (by station and time), p50 / p99",
        f"{r['station_p50']:.2f} / {r['station_p99']:.2f} ms",
        "< 50 ms",
        r["station_p99"] < 50,
        "pruned to one partition",
    )
    per_partition = r["rows"] / args.months
    report.add(
        "retention: drop every month but the current one",
        f"{r['drop_s'] * 1000:.0f} ms",
        detail=f"{r['dropped']:.0f} partitions, {args.months - 1} of them with ~{per_partition:,.0f} rows; "
        "no DELETE, no vacuum debt",
    )
    report.emit(args.write)


if __name__ == "__main__":
    main()
