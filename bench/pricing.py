"""Session pricings per second on one core (issue 6: ≥ 50,000).

Why: month-end invoicing and live cost updates both price sessions in bulk; the engine must
not be what limits them.

What it does: builds `--sessions` realistic sessions (30 min – 10 h, 4–40 meter readings, half
of them with idle time after charging, start times spread over a month) and prices each with
one of three tariffs: energy only; energy + charging time + idle after a grace with a cap +
session fee + tax; and a time-of-use tariff with a night and a weekday-peak window in
Europe/Berlin (DST included). One process, one core, `--rounds` rounds; reports the best and
the median round per tariff and for the mix.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib as bl

from api.billing.pricing import Timeline, plan
from api.billing.tariffs import Prices, Tariff, Window

TARGET_PER_S = 50_000
D = Decimal


def _tariffs() -> dict[str, Tariff]:
    return {
        "energy only": Tariff("EUR", Prices(energy_per_kwh=D(39))),
        "energy + time + idle (grace, cap) + fee + tax": Tariff(
            "EUR",
            Prices(energy_per_kwh=D("39.5"), time_per_minute=D(2), idle_per_minute=D(10)),
            session_fee=50,
            idle_grace_minutes=15,
            idle_cap=1_500,
            max_price=10_000,
            tax_basis_points=1_900,
        ),
        "time of use (night + weekday peak, Europe/Berlin)": Tariff(
            "EUR",
            Prices(energy_per_kwh=D(39), idle_per_minute=D(10)),
            windows=(
                Window(
                    "night",
                    datetime.min.time().replace(hour=22),
                    datetime.min.time().replace(hour=6),
                    energy_per_kwh=D(29),
                ),
                Window(
                    "peak",
                    datetime.min.time().replace(hour=17),
                    datetime.min.time().replace(hour=20),
                    frozenset({0, 1, 2, 3, 4}),
                    energy_per_kwh=D(49),
                ),
            ),
            idle_grace_minutes=15,
            tax_basis_points=1_900,
            time_zone="Europe/Berlin",
        ),
    }


def _sessions(n: int, seed: int) -> list[Timeline]:
    rng = random.Random(seed)
    month = datetime(2026, 3, 1, tzinfo=UTC)  # includes the spring DST change
    out = []
    for _ in range(n):
        start = month + timedelta(seconds=rng.randrange(31 * 86_400))
        charging = timedelta(minutes=rng.randrange(30, 600))
        readings = rng.randrange(4, 41)
        register = rng.randrange(10**7)
        points = []
        for i in range(readings):
            points.append((start + charging * i / (readings - 1), register))
            register += rng.randrange(0, 3_000)
        idle = timedelta(minutes=rng.randrange(0, 90)) if rng.random() < 0.5 else timedelta(0)
        out.append(
            Timeline(start, start + charging + idle, tuple(points), start + charging if idle else None)
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=50_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    args = p.parse_args()
    sessions = _sessions(args.sessions, args.seed)
    tariffs = _tariffs()
    report = bl.Report("Price engine: session pricings per second, one core")
    mix_rates = []
    for name, tariff in tariffs.items():
        engine = plan(tariff)
        rates = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            for s in sessions:
                engine.price(s)
            rates.append(len(sessions) / (time.perf_counter() - t0))
        mix_rates.append(statistics.median(rates))
        report.add(
            f"{name}: pricings/s, median (best) of {args.rounds} rounds",
            f"{statistics.median(rates):,.0f} ({max(rates):,.0f})",
            target=f"≥ {TARGET_PER_S:,}",
            ok=statistics.median(rates) >= TARGET_PER_S,
            detail=f"{len(sessions):,} sessions, 4–40 readings, 30 min–10 h, half with idle time",
        )
    slowest = min(mix_rates)
    report.note(f"slowest tariff {slowest:,.0f} pricings/s = {1e6 / slowest:.1f} µs per session")
    report.emit(args.write)


if __name__ == "__main__":
    main()
