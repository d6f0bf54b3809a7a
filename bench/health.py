"""Station health: the worker's scoring job over 1,000 stations with a week of history,
PostgreSQL.

Why: the job scores the whole fleet each run (hourly by default) with one grouped query per
input, so its cost grows with the week's rows — status changes, sessions, start requests, the
OCPP message log, offline outages and meter samples — rather than with a query per station.
This measures that cost on a realistic week, and the reads operators make of the result.

What it does: creates a fresh PostgreSQL database (migrated), seeds by COPY 1,000 stations
with two 22 kW connectors each and, over the last 7 days, `--sessions-per-day` sessions per
station (a power, SoC and energy sample every 5 minutes, the check the worker keeps of each
ended session's power at low SoC, the MeterValues and Start/StopTransaction frames in the
message log), a few failed ones, failed start requests, faults, reboots and offline episodes (a
tenth of the stations troubled), then runs `api.service.health_job.refresh_health` three times
(the first opens the early-warning incidents, the others find nothing new), times
`unhealthyStations` and a page of 100 `Station.health` reads through the repository, and the
TransactionEnded handler's check per session (recomputed for 1,000 sessions and compared with
the seeded rows).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib as bl

STATIONS = 1_000
TROUBLED_SHARE = 0.1
SAMPLE_EVERY = timedelta(minutes=5)
DAYS = 7
LOW_SOC_PERCENT = 50.0
CHECKED_SESSIONS = 1_000


def _frame(action: str) -> str:
    return f'[2,"m","{action}",{{}}]'


async def _seed(url: str, args: argparse.Namespace, now: datetime) -> dict[str, int]:
    """Everything through COPY (asyncpg); returns row counts per table."""
    import asyncpg

    rng = random.Random(args.seed)
    await bl.seed_stations(url, STATIONS, prefix="H-")  # 2 × 22 kW connectors each
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    since = now - timedelta(days=DAYS)
    counts: dict[str, int] = {}

    async def copy(table: str, columns: list[str], records: list[tuple[Any, ...]]) -> None:
        await conn.copy_records_to_table(table, columns=columns, records=records)
        counts[table] = counts.get(table, 0) + len(records)

    try:
        org = await conn.fetchval("SELECT id FROM organization WHERE slug = 'bench'")
        stations = [
            (r[0], r[1]) for r in await conn.fetch("SELECT id, charge_point_id FROM charging_station")
        ]
        counts["charging_station"] = len(stations)
        status: list[tuple[Any, ...]] = []
        txs: list[tuple[Any, ...]] = []
        plans: list[tuple[int, int, datetime, int, bool]] = []  # station, connector, start, samples, weak
        messages: list[tuple[Any, ...]] = []
        requests: list[tuple[Any, ...]] = []
        outages: list[tuple[Any, ...]] = []
        n = 0
        for sid, cpid in stations:
            troubled = rng.random() < TROUBLED_SHARE
            sessions = args.sessions_per_day * DAYS
            slot = DAYS * 86_400 // sessions  # one session per slot: samples never collide
            for k in range(sessions):
                start = since + timedelta(seconds=k * slot + rng.randrange(max(1, slot - 2 * 3_600)))
                connector = rng.choice((1, 2))
                samples = rng.randrange(3, 24)
                failed = rng.random() < (0.3 if troubled else 0.02)
                wh = rng.randrange(0, 90) if failed else samples * 1_500
                stop = start + SAMPLE_EVERY * samples
                txs.append(
                    (
                        sid,
                        connector,
                        "CARD",
                        f"h-{n}",
                        "Completed",
                        start,
                        stop,
                        0,
                        wh,
                        wh,
                        "EVDisconnected",
                        False,
                        start,
                    )
                )
                plans.append((sid, connector, start, samples, troubled and rng.random() < 0.5))
                for st in ("Preparing", "Charging", "Finishing", "Available"):
                    status.append((sid, connector, st, "NoError", start, start))
                messages += [
                    (cpid, "in", 2, f"s{n}", "StartTransaction", _frame("StartTransaction"), start),
                    (cpid, "in", 2, f"e{n}", "StopTransaction", _frame("StopTransaction"), stop),
                ]
                n += 1
            faults = rng.randrange(5, 30) if troubled else rng.randrange(0, 2)
            for _ in range(faults):
                at = since + timedelta(seconds=rng.randrange(DAYS * 86_400))
                status.append((sid, rng.choice((1, 2)), "Faulted", "GroundFailure", at, at))
                status.append(
                    (sid, 1, "Available", "NoError", at + timedelta(minutes=4), at + timedelta(minutes=4))
                )
            reboots = rng.randrange(3, 12) if troubled else rng.randrange(0, 2)
            for r in range(reboots):
                at = since + timedelta(seconds=rng.randrange(DAYS * 86_400))
                messages.append(
                    (cpid, "in", 2, f"b{sid}-{r}", "BootNotification", _frame("BootNotification"), at)
                )
            for _ in range(rng.randrange(1, 6) if troubled else rng.randrange(0, 2)):
                at = since + timedelta(seconds=rng.randrange(DAYS * 86_400))
                outages += [
                    (sid, c, "offline", at, at + timedelta(minutes=rng.randrange(5, 90))) for c in (1, 2)
                ]
            for _ in range(rng.randrange(0, 4) if troubled else 0):
                at = since + timedelta(seconds=rng.randrange(DAYS * 86_400))
                requests.append((sid, org, cpid[:36], "failed", "REJECTED: the station refused", at, at))
        await copy(
            "charging_transaction",
            [
                "station_id",
                "connector_id",
                "id_tag",
                "start_key",
                "state",
                "started_at",
                "stopped_at",
                "meter_start_wh",
                "meter_stop_wh",
                "energy_wh",
                "stop_reason",
                "start_missing",
                "created_at",
            ],
            txs,
        )
        tx_ids = [r[0] for r in await conn.fetch("SELECT id FROM charging_transaction ORDER BY id")]
        cpids = dict(stations)
        samples_rows: list[tuple[Any, ...]] = []
        checks: list[tuple[Any, ...]] = []  # what the TransactionEnded handler keeps (timed below)
        for tx, (sid, connector, start, count, weak) in zip(tx_ids, plans, strict=True):
            soc = rng.uniform(10, 40)
            power = round(rng.uniform(2_000, 4_000) if weak else rng.uniform(10_000, 22_000))
            cpid = cpids[sid]
            low_soc = 0
            for k in range(count):
                at = start + SAMPLE_EVERY * k
                soc = min(100.0, soc + 2.5)
                low_soc += soc < LOW_SOC_PERCENT
                for measurand, unit, value, location in (
                    ("Energy.Active.Import.Register", "Wh", 1_500.0 * k, "Outlet"),
                    ("Power.Active.Import", "W", power, ""),
                    ("SoC", "Percent", soc, "EV"),
                ):
                    samples_rows.append(
                        (sid, connector, tx, at, measurand, "", location, "Sample.Periodic", unit, value)
                    )
                messages.append((cpid, "in", 2, f"m{tx}-{k}", "MeterValues", _frame("MeterValues"), at))
            if low_soc:
                checks.append((tx, sid, start + SAMPLE_EVERY * count, power, 22_000, low_soc))
        await copy(
            "meter_sample",
            [
                "station_id",
                "connector_id",
                "transaction_id",
                "sampled_at",
                "measurand",
                "phase",
                "location",
                "context",
                "unit",
                "value",
            ],
            samples_rows,
        )
        await copy(
            "session_power_check",
            ["transaction_id", "station_id", "stopped_at", "low_soc_avg_power_w", "rated_power_w", "samples"],
            checks,
        )
        await copy(
            "connector_status_event",
            ["station_id", "connector_id", "status", "error_code", "reported_at", "received_at"],
            status,
        )
        await copy(
            "ocpp_message",
            ["charge_point_id", "direction", "message_type", "message_id", "action", "payload", "logged_at"],
            messages,
        )
        await copy("port_outage", ["station_id", "connector_id", "cause", "started_at", "ended_at"], outages)
        await copy(
            "charging_request",
            [
                "station_id",
                "organization_id",
                "id_tag",
                "state",
                "failure_reason",
                "created_at",
                "updated_at",
            ],
            requests,
        )
        await conn.execute("ANALYZE")
        counts["organization"] = int(org)
    finally:
        await conn.close()
    return counts


async def _run(url: str, args: argparse.Namespace, report: bl.Report) -> None:
    from sqlalchemy import text

    from api.auth.principal import PLATFORM
    from api.service import health_repository as repo
    from api.service.health import HealthPolicy
    from api.service.health_job import refresh_health
    from schema.db import create_engine

    now = datetime.now(UTC)
    t0 = time.perf_counter()
    counts = await _seed(url, args, now)
    org = counts.pop("organization")
    report.note(
        f"seeded by COPY in {time.perf_counter() - t0:.1f} s: "
        + ", ".join(f"{table} {rows:,}" for table, rows in counts.items())
    )
    policy = HealthPolicy()
    engine = create_engine(url)
    try:
        window = repo.Window(now - timedelta(days=policy.window_days), now)
        t0 = time.perf_counter()
        async with engine.connect() as conn:
            inputs = await repo.gather_inputs(conn, policy, window)
        gather_s = time.perf_counter() - t0
        report.add(
            f"gathering every input of {len(inputs):,} stations (one grouped query per input)",
            f"{gather_s * 1000:,.0f} ms",
        )
        for run in range(1, args.runs + 1):
            t0 = time.perf_counter()
            result = await refresh_health(engine, policy, now=now + timedelta(seconds=run))
            elapsed = time.perf_counter() - t0
            report.add(
                f"health job run {run}: score and store {result.scored:,} stations, open/resolve incidents",
                f"{elapsed:.2f} s",
                target="< 60 s" if run == 1 else "",
                ok=elapsed < 60 if run == 1 else None,
                detail=f"{len(result.opened)} DEGRADED incidents opened, {len(result.resolved)} resolved",
            )
        async with engine.connect() as conn:
            degraded = (
                await conn.execute(text("SELECT count(*) FROM station_health WHERE degraded"))
            ).scalar()
            t0 = time.perf_counter()
            worst = await repo.unhealthy(conn, PLATFORM, org, below=None, limit=500)
            list_ms = (time.perf_counter() - t0) * 1000
            ids = [
                int(r[0])
                for r in (await conn.execute(text("SELECT id FROM charging_station LIMIT 100"))).all()
            ]
            t0 = time.perf_counter()
            page = await repo.health_by_station_ids(conn, PLATFORM, ids)
            page_ms = (time.perf_counter() - t0) * 1000
        report.add(
            "unhealthyStations (degraded, worst first)",
            f"{list_ms:.1f} ms",
            detail=f"{len(worst)} of {degraded} degraded",
        )
        report.add(
            "Station.health for a page of 100 stations (one batched query)",
            f"{page_ms:.1f} ms",
            detail=f"{len(page)} rows",
        )
        await _time_session_checks(engine, report)
    finally:
        await engine.dispose()


async def _time_session_checks(engine: Any, report: bl.Report) -> None:
    """The TransactionEnded handler's work, per session: recompute the checks of some sessions
    (one transaction each, as the handler runs) and compare with what was seeded."""
    from sqlalchemy import text

    from api.service import health_repository as repo

    async with engine.begin() as conn:
        seeded = {
            int(r[0]): (int(r[1]), int(r[2]))
            for r in await conn.execute(
                text(
                    "DELETE FROM session_power_check WHERE transaction_id IN (SELECT transaction_id "
                    "FROM session_power_check ORDER BY transaction_id LIMIT :n) "
                    "RETURNING transaction_id, low_soc_avg_power_w, samples"
                ),
                {"n": CHECKED_SESSIONS},
            )
        }
    t0 = time.perf_counter()
    for tx in seeded:
        async with engine.begin() as conn:
            await repo.check_session_power(
                conn, tx, stopped_at=datetime.now(UTC), low_soc_percent=LOW_SOC_PERCENT
            )
    elapsed = time.perf_counter() - t0
    async with engine.connect() as conn:
        again = {
            int(r[0]): (int(r[1]), int(r[2]))
            for r in await conn.execute(
                text(
                    "SELECT transaction_id, low_soc_avg_power_w, samples FROM session_power_check "
                    "WHERE transaction_id = ANY(:ids)"
                ),
                {"ids": list(seeded)},
            )
        }
    report.add(
        "power-at-low-SoC check when a session ends (TransactionEnded handler), per session",
        f"{elapsed / len(seeded) * 1000:.2f} ms",
        ok=again == seeded,
        detail=f"{len(seeded):,} sessions, one transaction each; recomputed = seeded: {again == seeded}",
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions-per-day", type=int, default=4, choices=range(1, 9), help="per station")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=7)
    bl.add_postgres_args(p, pg_name="chargenet_bench_health")
    args = p.parse_args()
    report = bl.Report(f"Station health job over {STATIONS:,} stations and a week of history, PostgreSQL")
    bl.run_on_fresh_postgres(args, report, lambda url: _run(url, args, report))


if __name__ == "__main__":
    main()
