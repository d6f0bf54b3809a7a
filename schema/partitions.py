"""Meter samples on PostgreSQL: one partition per calendar month (UTC) of `sampled_at`.

Why: a network of 10,000 stations writes tens of millions of samples a day (bench/RESULTS.md
has the arithmetic). Monthly partitions keep each index a month's size, let queries bounded in
time touch only their months, and make retention a `DROP TABLE` of a month instead of a
DELETE of hundreds of millions of rows (and the vacuum after it).

Partitions are created ahead of time by a scheduled job; a DEFAULT partition takes anything
outside them (a charger with a wrong clock), so an insert never fails for want of a partition.
A month is attached without a lock-heavy scan conflict: rows of that month that landed in the
DEFAULT partition are moved into the new table first. SQLite keeps one plain table.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

PARENT = "meter_sample"
DEFAULT_PARTITION = "meter_sample_default"
_MONTHLY = re.compile(r"^meter_sample_(\d{4})_(\d{2})$")
# Created this many months ahead, so the job can miss runs for weeks without rows piling up
# in the DEFAULT partition.
MONTHS_AHEAD = 3


def is_partition_table(name: str) -> bool:
    """Tables that belong to the partitioned parent (left out of schema comparisons)."""
    return name == DEFAULT_PARTITION or bool(_MONTHLY.match(name))


def month_start(d: date | datetime) -> date:
    return date(d.year, d.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{PARENT}_{month.year:04d}_{month.month:02d}"


def _bound(month: date) -> str:
    return f"{month.isoformat()} 00:00:00+00"


async def is_partitioned(conn: AsyncConnection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    found = await conn.execute(
        text(
            "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid WHERE c.relname = :t"
        ),
        {"t": PARENT},
    )
    return found.first() is not None


async def monthly_partitions(conn: AsyncConnection) -> list[date]:
    rows = await conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :t"
        ),
        {"t": PARENT},
    )
    months = []
    for (name,) in rows:
        m = _MONTHLY.match(str(name))
        if m:
            months.append(date(int(m[1]), int(m[2]), 1))
    return sorted(months)


async def add_month(conn: AsyncConnection, month: date) -> None:
    """Create and attach one month, moving its rows out of the DEFAULT partition first."""
    name, lower, upper = partition_name(month), _bound(month), _bound(add_months(month, 1))
    await conn.execute(text(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    moved = await conn.execute(
        text(
            f"WITH gone AS (DELETE FROM {DEFAULT_PARTITION} WHERE sampled_at >= :lo AND sampled_at < :hi "
            f"RETURNING *) INSERT INTO {name} SELECT * FROM gone"
        ),
        {"lo": datetime.fromisoformat(lower), "hi": datetime.fromisoformat(upper)},
    )
    await conn.execute(
        text(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM ('{lower}') TO ('{upper}')")
    )
    if moved.rowcount:
        log.info("partition %s created; %d samples moved in from the default partition", name, moved.rowcount)


async def ensure_partitions(engine: AsyncEngine, *, now: datetime | None = None) -> list[str]:
    """Create the missing months from the current one to MONTHS_AHEAD. Returns their names."""
    created: list[str] = []
    async with engine.connect() as conn:
        if not await is_partitioned(conn):
            return created
        have = set(await monthly_partitions(conn))
        await conn.commit()
        current = month_start(now or datetime.now(UTC))
        for n in range(MONTHS_AHEAD + 1):
            month = add_months(current, n)
            if month in have:
                continue
            async with conn.begin():
                await add_month(conn, month)
            created.append(partition_name(month))
    return created


async def drop_expired(engine: AsyncEngine, *, keep_months: int, now: datetime | None = None) -> list[str]:
    """Drop whole months older than `keep_months` before the current one (0: keep all)."""
    dropped: list[str] = []
    if keep_months <= 0:
        return dropped
    async with engine.connect() as conn:
        if not await is_partitioned(conn):
            return dropped
        oldest_kept = add_months(month_start(now or datetime.now(UTC)), -keep_months)
        months = await monthly_partitions(conn)
        await conn.commit()
        for month in months:
            if month >= oldest_kept:
                continue
            async with conn.begin():
                await conn.execute(text(f"ALTER TABLE {PARENT} DETACH PARTITION {partition_name(month)}"))
                await conn.execute(text(f"DROP TABLE {partition_name(month)}"))
            dropped.append(partition_name(month))
    return dropped
