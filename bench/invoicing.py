"""Month-end invoicing: receipts for 100,000 charged sessions of one organisation (issue 6:
< 60 s on PostgreSQL).

Why: receipts are normally issued one by one as sessions end, but a backlog — a month of
sessions charged before receipts were switched on, a worker outage, a migration from another
system — is cleared by the catch-up job, and numbering must stay gap-free and in order while
it runs. This measures that job (`api.invoicing.receipts.issue_pending`), which calls the same
`issue_receipts` the worker's SessionCharged handler does, a batch of sessions per transaction
under the counter row's lock.

What it does: creates a fresh PostgreSQL database (migrated), seeds one organisation with
billing details, 10 locations, 100 stations, 5,000 drivers and `--sessions` ended, charged
sessions spread over a month (COPY: seconds), then issues every receipt and checks the numbers
are exactly 1..N in the order the sessions were charged. Then, over the same month: the revenue
report grouped by station and by month, the full CSV export (rows per second, streamed), and
PDF rendering of receipts (per second, one core).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib as bl

from schema.events import SessionCharged

TARGET_S = 60.0
MONTH = datetime(2026, 10, 1, tzinfo=UTC)
DRIVERS = 5_000
STATIONS = 100
LOCATIONS = 10
PDF_SAMPLE = 300


async def _seed(url: str, sessions: int, seed: int) -> int:
    """Everything through COPY (asyncpg); returns the organisation id."""
    import asyncpg

    rng = random.Random(seed)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    now = datetime.now(UTC)
    try:
        org = await conn.fetchval(
            "INSERT INTO organization (name, slug, currency, legal_name, billing_address, vat_id, "
            "created_at) VALUES ('Bench Charging', 'bench', 'EUR', 'Bench Charging GmbH', "
            "'Hauptstr. 1\n10115 Berlin', 'DE123456789', $1) RETURNING id",
            now,
        )
        await conn.copy_records_to_table(
            "location",
            columns=[
                "organization_id",
                "name",
                "address",
                "city",
                "country",
                "latitude",
                "longitude",
                "time_zone",
                "created_at",
            ],
            records=[
                (org, f"Site {i}", f"Street {i}", "Berlin", "DE", 52.5, 13.4, "Europe/Berlin", now)
                for i in range(LOCATIONS)
            ],
        )
        locations = [r[0] for r in await conn.fetch("SELECT id FROM location ORDER BY id")]
        await conn.copy_records_to_table(
            "charging_station",
            columns=[
                "organization_id",
                "location_id",
                "charge_point_id",
                "registration_status",
                "security_profile",
                "online",
                "heartbeat_interval_s",
                "status",
                "error_code",
                "created_at",
            ],
            records=[
                (
                    org,
                    locations[i % LOCATIONS],
                    f"BENCH-{i:04d}",
                    "Accepted",
                    0,
                    False,
                    300,
                    "Available",
                    "NoError",
                    now,
                )
                for i in range(STATIONS)
            ],
        )
        stations = [r[0] for r in await conn.fetch("SELECT id FROM charging_station ORDER BY id")]
        await conn.copy_records_to_table(
            "user_account",
            columns=["email", "display_name", "locale", "is_platform_admin", "created_at"],
            records=[(f"driver{i}@example.com", f"Driver {i}", "en", False, now) for i in range(DRIVERS)],
        )
        users = [r[0] for r in await conn.fetch("SELECT id FROM user_account ORDER BY id")]
        txs = []
        plan = []
        for i in range(sessions):
            start = MONTH + timedelta(seconds=rng.randrange(30 * 86_400))
            minutes = rng.randrange(20, 300)
            wh = rng.randrange(1_000, 60_000)
            station = rng.choice(stations)
            user = rng.choice(users) if rng.random() < 0.8 else None  # a fifth on anonymous cards
            stop = start + timedelta(minutes=minutes)
            meter = rng.randrange(10**7)
            txs.append(
                (
                    station,
                    1,
                    f"CARD{i % 9_999}",
                    user,
                    f"bench-{i}",
                    "Completed",
                    start,
                    stop,
                    meter,
                    meter + wh,
                    wh,
                    False,
                    start,
                )
            )
            plan.append((station, user, f"CARD{i % 9_999}", start, stop, minutes, wh))
        await conn.copy_records_to_table(
            "charging_transaction",
            columns=[
                "station_id",
                "connector_id",
                "id_tag",
                "user_id",
                "start_key",
                "state",
                "started_at",
                "stopped_at",
                "meter_start_wh",
                "meter_stop_wh",
                "energy_wh",
                "start_missing",
                "created_at",
            ],
            records=txs,
        )
        tx_ids = [r[0] for r in await conn.fetch("SELECT id FROM charging_transaction ORDER BY id")]
        charges = []
        for tx_id, (station, user, tag, start, stop, minutes, wh) in zip(tx_ids, plan, strict=True):
            energy = wh * 39 // 1000
            total = energy + 50
            net = round(total * 10_000 / 11_900)
            lines = [
                {
                    "component": "energy",
                    "label": "Energy",
                    "unit": "kWh",
                    "amount": energy,
                    "base_quantity": wh * 1000,
                    "scaled_price": 39_000_000,
                },
                {
                    "component": "flat",
                    "label": "Session fee",
                    "unit": "session",
                    "amount": 50,
                    "base_quantity": 1,
                    "scaled_price": None,
                },
            ]
            charges.append(
                (
                    tx_id,
                    org,
                    station,
                    user,
                    tag,
                    "EUR",
                    json.dumps(lines),
                    total,
                    net,
                    total - net,
                    total,
                    1_900,
                    True,
                    wh,
                    minutes * 60,
                    0,
                    0,
                    total,
                    start,
                    stop,
                    stop,
                )
            )
        await conn.copy_records_to_table(
            "session_charge",
            columns=[
                "transaction_id",
                "organization_id",
                "station_id",
                "user_id",
                "id_tag",
                "currency",
                "lines",
                "subtotal",
                "net",
                "tax",
                "total",
                "tax_basis_points",
                "prices_include_tax",
                "energy_wh",
                "charging_seconds",
                "idle_seconds",
                "sponsor_amount",
                "driver_amount",
                "started_at",
                "stopped_at",
                "priced_at",
            ],
            records=charges,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return int(org)


async def _run(url: str, args: argparse.Namespace, report: bl.Report) -> None:
    from sqlalchemy import text

    from api.invoicing import exports, pdf, receipts
    from api.invoicing import repository as repo
    from schema.db import create_engine

    t0 = time.perf_counter()
    org = await _seed(url, args.sessions, args.seed)
    report.note(f"seeded {args.sessions:,} charged sessions by COPY in {time.perf_counter() - t0:.1f} s")
    engine = create_engine(url)
    try:
        t0 = time.perf_counter()
        issued = await receipts.issue_pending(engine, batch_size=args.batch, organization_id=org)
        elapsed = time.perf_counter() - t0
        async with engine.connect() as conn:
            check = (
                await conn.execute(
                    text(
                        "SELECT count(*) AS n, count(DISTINCT sequence) AS d, min(sequence) AS lo, "
                        "max(sequence) AS hi FROM invoice WHERE organization_id = :o"
                    ),
                    {"o": org},
                )
            ).one()
            # numbers follow the order the sessions were charged in
            out_of_order = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM (SELECT sequence, lag(sequence) OVER "
                        "(ORDER BY session_charge_id) AS prev FROM invoice WHERE organization_id = :o) x "
                        "WHERE prev IS NOT NULL AND sequence <> prev + 1"
                    ),
                    {"o": org},
                )
            ).scalar_one()
        gap_free = (check.n, check.d, check.lo, check.hi) == (args.sessions, args.sessions, 1, args.sessions)
        report.add(
            f"receipts for {args.sessions:,} sessions of one organisation "
            f"(catch-up job, {args.batch:,} per transaction)",
            f"{elapsed:.1f} s ({issued / elapsed:,.0f} receipts/s)",
            target=f"< {TARGET_S:.0f} s",
            ok=elapsed < TARGET_S and gap_free and out_of_order == 0,
            detail=f"numbers 1..{check.hi:,}, {check.d:,} distinct, {out_of_order} out of charge order",
        )
        if args.handler_sessions:
            await _handler_path(url, engine, org, args, report)
        until = MONTH + timedelta(days=31)
        for grouping in (repo.RevenueGrouping.STATION, repo.RevenueGrouping.MONTH):
            t0 = time.perf_counter()
            async with engine.connect() as conn:
                rows = await repo.revenue(conn, frozenset({org}), since=MONTH, until=until, group_by=grouping)
            ms = (time.perf_counter() - t0) * 1000
            report.add(
                f"revenue report of the month grouped by {grouping.name}",
                f"{ms:,.0f} ms",
                detail=f"{len(rows)} rows",
            )
        t0 = time.perf_counter()
        size = lines = 0
        request = exports.ExportRequest(frozenset({org}), MONTH, until, None)
        async for chunk in exports.csv_chunks(engine, request):
            size += len(chunk)
            lines += chunk.count("\n")
        elapsed = time.perf_counter() - t0
        report.add(
            "CSV export of every session of the month (streamed)",
            f"{elapsed:.1f} s ({(lines - 1) / elapsed:,.0f} rows/s)",
            detail=f"{lines - 1:,} rows, {size / 1e6:.1f} MB",
        )
        async with engine.connect() as conn:
            docs = (
                await conn.execute(text("SELECT * FROM invoice ORDER BY id LIMIT :n"), {"n": PDF_SAMPLE})
            ).all()
        t0 = time.perf_counter()
        sizes = [len(pdf.render(d)) for d in docs]
        elapsed = time.perf_counter() - t0
        report.add(
            "receipt PDFs rendered per second (one core)",
            f"{len(docs) / elapsed:,.0f}",
            detail=f"{len(docs)} receipts, {sum(sizes) / len(sizes) / 1000:.1f} kB each",
        )
    finally:
        await engine.dispose()


async def _handler_path(url: str, engine: Any, org: int, args: argparse.Namespace, report: bl.Report) -> None:
    """Steady state: sessions charged one by one, each receipt issued by the worker's handler in
    the transaction that records its SessionCharged as processed (what `chargenet worker` does)."""
    from sqlalchemy import text

    from api.worker.jobs import default_registry
    from api.worker.processor import Processor
    from schema.outbox import OutboxMessage

    before = args.sessions
    await _seed_more(url, org, args.handler_sessions, args.seed + 1)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT c.id, c.transaction_id, c.station_id, c.user_id, c.total, s.charge_point_id, "
                    "s.location_id, c.stopped_at FROM session_charge c JOIN charging_station s "
                    "ON s.id = c.station_id LEFT JOIN invoice i ON i.session_charge_id = c.id "
                    "WHERE i.id IS NULL ORDER BY c.id"
                )
            )
        ).all()
    messages = [
        OutboxMessage(
            10_000_000 + n,
            "session.charged",
            SessionCharged(
                station_id=r.station_id,
                charge_point_id=r.charge_point_id,
                location_id=r.location_id,
                at=r.stopped_at,
                transaction_id=r.transaction_id,
                charge_id=r.id,
                user_id=r.user_id,
                currency="EUR",
                total=r.total,
                driver_amount=r.total,
            ).to_dict(),
        )
        for n, r in enumerate(rows)
    ]
    processor = Processor(engine, default_registry(), consumer="bench")
    t0 = time.perf_counter()
    for m in messages:
        await processor.process(m)
    elapsed = time.perf_counter() - t0
    async with engine.connect() as conn:
        hi, n = (
            await conn.execute(
                text("SELECT max(sequence), count(*) FROM invoice WHERE organization_id = :o"), {"o": org}
            )
        ).one()
    report.add(
        "receipts issued by the SessionCharged handler, one event per transaction",
        f"{len(messages) / elapsed:,.0f} events/s",
        detail=f"{len(messages):,} events; numbers continue to {hi:,} with {n:,} receipts in all "
        f"(backlog {before:,} + {len(messages):,})",
        ok=(hi, n) == (before + len(messages), before + len(messages)),
    )


async def _seed_more(url: str, org: int, sessions: int, seed: int) -> None:
    import asyncpg

    rng = random.Random(seed)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        stations = [r[0] for r in await conn.fetch("SELECT id FROM charging_station ORDER BY id")]
        offset = int(await conn.fetchval("SELECT count(*) FROM charging_transaction"))
        for i in range(offset, offset + sessions):
            start = MONTH + timedelta(days=30, seconds=rng.randrange(86_400))
            stop = start + timedelta(minutes=45)
            wh = rng.randrange(1_000, 60_000)
            station = rng.choice(stations)
            tx = await conn.fetchval(
                "INSERT INTO charging_transaction (station_id, connector_id, id_tag, start_key, state, "
                "started_at, stopped_at, meter_start_wh, meter_stop_wh, energy_wh, start_missing, "
                "created_at) VALUES ($1, 1, 'CARD', $2, 'Completed', $3, $4, 0, $5, $5, false, $3) "
                "RETURNING id",
                station,
                f"bench-{i}",
                start,
                stop,
                wh,
            )
            total = wh * 39 // 1000
            net = round(total * 10_000 / 11_900)
            line = {
                "component": "energy",
                "label": "Energy",
                "unit": "kWh",
                "amount": total,
                "base_quantity": wh * 1000,
                "scaled_price": 39_000_000,
            }
            await conn.execute(
                "INSERT INTO session_charge (transaction_id, organization_id, station_id, id_tag, currency, "
                "lines, subtotal, net, tax, total, tax_basis_points, prices_include_tax, energy_wh, "
                "charging_seconds, idle_seconds, sponsor_amount, driver_amount, started_at, stopped_at, "
                "priced_at) VALUES ($1, $2, $3, 'CARD', 'EUR', $4, $5, $6, $7, $5, 1900, true, $8, 2700, "
                "0, 0, "
                "$5, $9, $10, $10)",
                tx,
                org,
                station,
                json.dumps([line]),
                total,
                net,
                total - net,
                wh,
                start,
                stop,
            )
    finally:
        await conn.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=2_000, help="sessions per transaction of the catch-up job")
    p.add_argument(
        "--handler-sessions", type=int, default=2_000, help="then sessions receipted one event at a time"
    )
    p.add_argument("--seed", type=int, default=6)
    p.add_argument(
        "--database-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/chargenet_bench_invoicing",
        help="PostgreSQL server to create the fresh database on",
    )
    p.add_argument("--pg-name", default="chargenet_bench_invoicing")
    p.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    args = p.parse_args()
    report = bl.Report(
        f"Month-end invoicing: receipts for {args.sessions:,} sessions of one organisation, PostgreSQL"
    )
    run_on_fresh_postgres(_run, args, report)


def run_on_fresh_postgres(
    run: Callable[[str, argparse.Namespace, bl.Report], Awaitable[None]],
    args: argparse.Namespace,
    report: bl.Report,
) -> None:
    """`run` against a fresh, migrated database on `--database-url`, dropped afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        db = bl.fresh_database(args.database_url, Path(tmp), args.pg_name)
        if db.kind != "postgresql":
            sys.exit("this benchmark measures PostgreSQL (COPY seeding); give a postgresql URL")
        try:
            asyncio.run(run(db.url, args, report))
        finally:
            db.drop()
    report.emit(args.write)


if __name__ == "__main__":
    main()
