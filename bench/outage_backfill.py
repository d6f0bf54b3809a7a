"""`chargenet backfill-outages` over a million status events (issue 7: outages from the history).

Why: the backfill runs once over an operator's whole status history, which for a network of a
few thousand stations is millions of rows; it must finish in minutes and in bounded memory, and
a second run (an operator unsure whether the first completed) must add nothing.

What it does: a fresh PostgreSQL database with `--stations` stations of two connectors
(bench/benchlib.py `seed_stations`), and per connector `--events` hourly status changes cycling
Available → Faulted → Charging → Unavailable (so a quarter of them open a faulted outage and a
quarter an unavailable one), written by one INSERT … SELECT generate_series. Then it runs the
service (`api.service.outage_backfill.backfill_outages`, what the command calls) twice and
prints the wall time, this process's CPU, its peak RSS before and after each run and the rows
added per cause.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib as bl

EVENTS_SQL = """
INSERT INTO connector_status_event (station_id, connector_id, status, error_code, received_at)
SELECT c.station_id, c.connector_id,
       (ARRAY['Available', 'Faulted', 'Charging', 'Unavailable'])[k % 4 + 1],
       CASE WHEN k % 4 = 1 THEN 'GroundFailure' ELSE 'NoError' END,
       TIMESTAMPTZ '2025-01-01 00:00:00+00' + k * INTERVAL '1 hour' + c.connector_id * INTERVAL '1 minute'
FROM connector c CROSS JOIN generate_series(0, :events - 1) AS k
"""


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(url: str, events: int) -> None:
    from sqlalchemy import text

    from api.service.outage_backfill import backfill_outages
    from schema.db import create_engine

    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text(EVENTS_SQL), {"events": events})
        await conn.execute(text("ANALYZE connector_status_event"))
    total = await bl.count_rows(url, "connector_status_event")
    print(f"{total} status events; peak RSS before: {peak_rss_mib():.0f} MiB", flush=True)
    for attempt in (1, 2):
        wall, cpu = time.perf_counter(), time.process_time()
        result = await backfill_outages(engine)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        added = ", ".join(f"{c.value} +{n}" for c, n in result.added.items())
        print(
            f"run {attempt}: {result.stations} stations, {added} in {wall:.1f} s "
            f"(CPU {cpu:.1f} s, {total / wall:,.0f} events/s); peak RSS {peak_rss_mib():.0f} MiB; "
            f"load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    await engine.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--stations", type=int, default=2_000)
    p.add_argument("--events", type=int, default=250, help="status changes per connector")
    args = p.parse_args()
    print(bl.machine_info(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = bl.fresh_database(args.database_url, Path(tmp), "chargenet_bench_backfill")
        try:
            asyncio.run(bl.seed_stations(db.url, args.stations, prefix="BF-"))
            asyncio.run(run(db.url, args.events))
        finally:
            db.drop()


if __name__ == "__main__":
    main()
