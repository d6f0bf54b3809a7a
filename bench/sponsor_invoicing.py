"""Month-end sponsor invoicing: 100,000 sponsored sessions of one organisation become its
sponsors' statements and numbered invoices (issue 6: month-end invoicing < 60 s on PostgreSQL).

Why: on the 2nd of a month the daily job writes every sponsor's statement of the month before
and invoices it in the same transaction, a line per location and tax rate of the sessions'
frozen bills. It reads every settled claim of the month twice (statement figures, invoice
lines), so its cost grows with the sessions sponsored, not with the sponsors.

What it does: creates a fresh PostgreSQL database (migrated), seeds the month of charged
sessions `bench/invoicing.py` seeds (COPY), half of its locations taxed at 7 % and the rest at
19 %, `--sponsors` sponsors whose sponsorships cover every location, and one settled claim per
session (the sponsor paying up to €3.00). Then runs the job as it runs on the 2nd of the next
month — twice — and checks: one invoice per sponsor numbered 1..sponsors, each equal to its
statement, lines per location and rate, and the re-run issuing nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib as bl
from invoicing import MONTH, _seed

TARGET_S = 60.0
CAP = 300  # what a sponsor pays at most per session, minor units
LOW_RATE, HIGH_RATE = 700, 1_900
JOB_DAY = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


async def _sponsor_the_month(url: str, org: int, sponsors: int) -> int:
    """Sponsors, sponsorships and one settled claim per charged session; the claims' total."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    now = datetime.now(UTC)
    try:
        locations = [r[0] for r in await conn.fetch("SELECT id FROM location ORDER BY id")]
        low = locations[: len(locations) // 2]
        await conn.execute(
            "UPDATE session_charge c SET tax_basis_points = $1 FROM charging_station s "
            "WHERE s.id = c.station_id AND s.location_id = ANY($2::bigint[])",
            LOW_RATE,
            low,
        )
        await conn.execute(
            "UPDATE session_charge SET tax_basis_points = $1 WHERE tax_basis_points <> $2",
            HIGH_RATE,
            LOW_RATE,
        )
        await conn.copy_records_to_table(
            "sponsor",
            columns=["organization_id", "name", "contact_email", "billing_address", "vat_id", "created_at"],
            records=[
                (org, f"Sponsor {i}", f"ads{i}@example.com", f"Str. {i}\n10115 Berlin", f"DE{i:09d}", now)
                for i in range(sponsors)
            ],
        )
        sponsor_ids = [r[0] for r in await conn.fetch("SELECT id FROM sponsor ORDER BY id")]
        charges = await conn.fetch("SELECT transaction_id, total, energy_wh, stopped_at FROM session_charge")
        share = {i: 0 for i in sponsor_ids}
        claims = []
        for n, c in enumerate(charges):
            sponsor = sponsor_ids[n % len(sponsor_ids)]
            amount = min(CAP, c["total"])
            share[sponsor] += amount
            claims.append((sponsor, c["transaction_id"], CAP, amount, c["energy_wh"], c["stopped_at"]))
        await conn.copy_records_to_table(
            "sponsorship",
            columns=[
                "organization_id",
                "sponsor_id",
                "currency",
                "message",
                "location_ids",
                "station_ids",
                "windows",
                "cap_amount",
                "budget",
                "spent",
                "reserved",
                "state",
                "starts_at",
                "created_at",
            ],
            records=[
                (
                    org,
                    s,
                    "EUR",
                    "Sponsored",
                    json.dumps(locations),
                    "[]",
                    "[]",
                    CAP,
                    share[s] + 1,
                    share[s],
                    0,
                    "active",
                    MONTH,
                    now,
                )
                for s in sponsor_ids
            ],
        )
        sponsorship_of = {r[1]: r[0] for r in await conn.fetch("SELECT id, sponsor_id FROM sponsorship")}
        await conn.copy_records_to_table(
            "sponsorship_claim",
            columns=[
                "sponsorship_id",
                "transaction_id",
                "reserved_amount",
                "final_amount",
                "energy_wh",
                "state",
                "created_at",
                "settled_at",
            ],
            records=[
                (sponsorship_of[s], tx, reserved, amount, wh, "settled", at, at)
                for s, tx, reserved, amount, wh, at in claims
            ],
        )
        await conn.execute("ANALYZE")
        return sum(share.values())
    finally:
        await conn.close()


async def _run(url: str, args: argparse.Namespace, report: bl.Report) -> None:
    from sqlalchemy import text

    from api.sponsorships.reports import issue_last_months_statements
    from schema.db import create_engine

    t0 = time.perf_counter()
    org = await _seed(url, args.sessions, args.seed)
    funded = await _sponsor_the_month(url, org, args.sponsors)
    report.note(
        f"seeded {args.sessions:,} charged, sponsored sessions and {args.sponsors} sponsors by COPY "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    engine = create_engine(url)
    try:
        t0 = time.perf_counter()
        statements = await issue_last_months_statements(engine, now=JOB_DAY)
        elapsed = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = await issue_last_months_statements(engine, now=JOB_DAY)
        rerun = time.perf_counter() - t0
        async with engine.connect() as conn:
            check = (
                await conn.execute(
                    text(
                        "SELECT count(*) AS n, min(sequence) AS lo, max(sequence) AS hi, sum(total) AS total "
                        "FROM invoice WHERE organization_id = :o AND purpose = 'sponsorship'"
                    ),
                    {"o": org},
                )
            ).one()
            mismatched = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM sponsor_statement s JOIN invoice i "
                        "ON i.source_key = 'sponsor_statement:' || s.id WHERE i.total <> s.amount"
                    )
                )
            ).scalar_one()
            lines = (
                await conn.execute(
                    text("SELECT min(json_array_length(lines)), max(json_array_length(lines)) FROM invoice")
                )
            ).one()
            rates = (
                (await conn.execute(text("SELECT DISTINCT json_array_length(tax_breakdown) FROM invoice")))
                .scalars()
                .all()
            )
        ok = (
            statements == again == args.sponsors
            and (check.n, check.lo, check.hi) == (args.sponsors, 1, args.sponsors)
            and check.total == funded
            and mismatched == 0
            and list(rates) == [2]
        )
        report.add(
            f"statements and invoices of {args.sponsors} sponsors for {args.sessions:,} sponsored "
            "sessions of one organisation (the daily job on the 2nd)",
            f"{elapsed:.1f} s",
            target=f"< {TARGET_S:.0f} s",
            ok=elapsed < TARGET_S and ok,
            detail=f"invoices 1..{check.hi}, totals = statements = claims ({funded:,}), "
            f"{lines[0]}–{lines[1]} lines each (location × rate), 2 tax rates each",
        )
        report.add(
            "the same job re-run (nothing new to issue)",
            f"{rerun:.1f} s",
            ok=check.n == args.sponsors,
            detail=f"still {check.n} invoices",
        )
    finally:
        await engine.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=100_000)
    p.add_argument("--sponsors", type=int, default=20)
    p.add_argument("--seed", type=int, default=6)
    p.add_argument(
        "--database-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/chargenet_bench_sponsor_invoicing",
        help="PostgreSQL server to create the fresh database on",
    )
    p.add_argument("--pg-name", default="chargenet_bench_sponsor_invoicing")
    p.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    args = p.parse_args()
    report = bl.Report(
        f"Month-end sponsor invoicing: {args.sessions:,} sponsored sessions of one organisation, PostgreSQL"
    )
    bl.run_on_fresh_postgres(args, report, lambda url: _run(url, args, report))


if __name__ == "__main__":
    main()
