"""Maintenance jobs at network scale: work orders for a burst of incidents, the SLA sweep, and
the hourly inspection check.

Why: the three jobs scan tables rather than react to events (see api/service/work_order_jobs.py),
so their cost grows with the network; this shows what one run costs when a whole network has
problems at once (a storm opening an incident on every station) and what the hourly inspection
check costs when nothing is due — the steady state.

What it does: a fresh PostgreSQL (or SQLite) database with one organisation, `--stations`
stations of one model, a critical incident on each and `--sessions` ended sessions per station;
then times `create_for_incidents` until it has nothing left (500 incidents per run),
`mark_sla_breaches` once every order is overdue, `create_due_orders` for a plan covering every
station (due by sessions), again with every inspection open (nothing to do), and once more after
every inspection was resolved (counters restarted: every station checked, none due).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib as bl


async def _seed(url: str, stations: int, sessions: int) -> None:
    """Through the models (their defaults fill every column), one transaction per station."""
    from schema.db import create_engine, session_factory
    from schema.incident_models import Incident
    from schema.maintenance_models import InspectionPlan
    from schema.models import ChargingStation, Location, Organization, Transaction
    from schema.timeutil import utcnow
    from schema.work_models import SessionSummary

    engine = create_engine(url)
    now = utcnow()
    async with session_factory(engine)() as s:
        org = Organization(name="Bench", slug="bench", currency="EUR")
        s.add(org)
        await s.flush()
        loc = Location(organization_id=org.id, name="Site", latitude=52.5, longitude=13.4, time_zone="UTC")
        s.add(loc)
        s.add(
            InspectionPlan(
                organization_id=org.id or 0,
                name="Every 10 sessions",
                vendor="Acme",
                model="X22",
                every_sessions=10,
                checklist=["Torque terminals"],
                created_at=now - timedelta(days=1),
            )
        )
        await s.flush()
        for i in range(stations):
            st = ChargingStation(
                organization_id=org.id,
                location_id=loc.id,
                charge_point_id=f"MJ{i:06d}",
                vendor="Acme",
                model="X22",
            )
            s.add(st)
            await s.flush()
            sid = st.id or 0
            s.add(
                Incident(
                    organization_id=org.id,
                    station_id=sid,
                    connector_id=1,
                    kind="fault",
                    severity="critical",
                    dedup_key=f"fault:{sid}:1:Bench",
                    title="Connector 1: GroundFailure",
                )
            )
            txs = [
                Transaction(
                    station_id=sid, connector_id=1, start_key=f"b-{sid}-{n}", started_at=now, id_tag="B"
                )
                for n in range(sessions)
            ]
            s.add_all(txs)
            await s.flush()
            s.add_all(
                [
                    SessionSummary(
                        transaction_id=t.id or 0,
                        station_id=sid,
                        connector_id=1,
                        started_at=now - timedelta(hours=1),
                        stopped_at=now - timedelta(minutes=30),
                        energy_wh=20_000,
                    )
                    for t in txs
                ]
            )
            if i % 200 == 199:
                await s.commit()
        await s.commit()
    await engine.dispose()


async def _run(url: str, args: argparse.Namespace, report: bl.Report) -> None:
    from sqlalchemy import text

    from api.service.inspections import create_due_orders
    from api.service.work_order_jobs import create_for_incidents, mark_sla_breaches
    from schema.db import create_engine
    from schema.timeutil import utcnow

    t0 = time.perf_counter()
    await _seed(url, args.stations, args.sessions)
    report.note(
        f"seeded {args.stations:,} stations, incidents and {args.stations * args.sessions:,} sessions "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    engine = create_engine(url)
    try:
        runs, made, t0 = 0, 0, time.perf_counter()
        while (n := (await create_for_incidents(engine)).created) > 0:
            runs, made = runs + 1, made + n
        took = time.perf_counter() - t0
        report.add(
            f"work orders for {args.stations:,} new critical incidents (500 per run)",
            f"{took:.2f} s ({made / took:,.0f} orders/s, {runs} runs)",
            detail=f"{made:,} created",
        )
        t0 = time.perf_counter()
        breached = (await mark_sla_breaches(engine, now=utcnow() + timedelta(hours=5))).breached
        report.add(
            "SLA sweep, every order overdue",
            f"{time.perf_counter() - t0:.2f} s",
            detail=f"{breached:,} marked",
        )
        t0 = time.perf_counter()
        again = (await mark_sla_breaches(engine, now=utcnow() + timedelta(hours=6))).breached
        report.add(
            "SLA sweep, nothing new", f"{(time.perf_counter() - t0) * 1000:.0f} ms", detail=f"{again} marked"
        )
        t0 = time.perf_counter()
        due = (await create_due_orders(engine)).created
        report.add(
            f"inspection check, {args.stations:,} stations all due",
            f"{time.perf_counter() - t0:.2f} s",
            detail=f"{due:,} created",
        )
        t0 = time.perf_counter()
        none = (await create_due_orders(engine)).created
        report.add(
            "inspection check, every inspection open",
            f"{(time.perf_counter() - t0) * 1000:.0f} ms",
            detail=f"{none} created",
        )
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE work_order SET state = 'resolved', resolved_at = :t "
                    "WHERE inspection_plan_id IS NOT NULL"
                ),
                {"t": utcnow()},
            )
        t0 = time.perf_counter()
        none = (await create_due_orders(engine)).created
        report.add(
            f"inspection check, {args.stations:,} stations checked, none due (the hourly steady state)",
            f"{time.perf_counter() - t0:.2f} s",
            detail=f"{none} created",
        )
    finally:
        await engine.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", type=int, default=2_000)
    p.add_argument("--sessions", type=int, default=20, help="ended sessions per station")
    p.add_argument(
        "--database-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/chargenet_bench_maintenance",
        help="PostgreSQL server to create the fresh database on (sqlite: a temp file)",
    )
    p.add_argument("--pg-name", default="chargenet_bench_maintenance")
    p.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = bl.fresh_database(args.database_url, Path(tmp), args.pg_name)
        report = bl.Report(f"Maintenance jobs: {args.stations:,} stations, {db.kind}")
        try:
            asyncio.run(_run(db.url, args, report))
        finally:
            db.drop()
    report.emit(args.write)


if __name__ == "__main__":
    main()
