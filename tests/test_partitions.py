"""Meter samples on PostgreSQL live in monthly partitions that the worker keeps ahead and
expires; a sample outside them lands in the DEFAULT partition and moves when its month comes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from schema import partitions
from schema.db import create_engine
from schema.migrate import upgrade
from tests.builders import make_station
from tests.conftest import _pg_admin


@pytest.fixture
async def fresh_pg(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """A database of its own: partition DDL must not change the shared test database."""
    name = f"chargenet_parts_{uuid.uuid4().hex[:8]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    yield engine
    await engine.dispose()
    await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _sample(engine: AsyncEngine, station: int, at: datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO meter_sample (station_id, connector_id, sampled_at, measurand, phase, "
                "location, context, value) VALUES (:s, 1, :at, 'SoC', '', '', '', 50)"
            ),
            {"s": station, "at": at},
        )


async def _where(engine: AsyncEngine, at: datetime) -> str:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT tableoid::regclass::text FROM meter_sample WHERE sampled_at = :at"), {"at": at}
        )
        return str(found.scalar_one())


class TestMonthlyPartitions:
    async def test_samples_land_in_their_month_and_strays_move_when_it_is_created(
        self, fresh_pg: AsyncEngine
    ) -> None:
        station = await make_station(fresh_pg, charge_point_id="CP-1")
        now = datetime.now(UTC)
        # a sample of this month goes to this month's partition
        await _sample(fresh_pg, station, now)
        assert await _where(fresh_pg, now) == partitions.partition_name(partitions.month_start(now))
        # a sample two years ahead (a charger with a wrong clock) still lands, in DEFAULT
        stray = now.replace(year=now.year + 2)
        await _sample(fresh_pg, station, stray)
        assert await _where(fresh_pg, stray) == partitions.DEFAULT_PARTITION
        # when the job runs in that month, the month is created and the stray moved into it
        created = await partitions.ensure_partitions(fresh_pg, now=stray)
        assert partitions.partition_name(partitions.month_start(stray)) in created
        assert await _where(fresh_pg, stray) == partitions.partition_name(partitions.month_start(stray))

    async def test_retention_drops_whole_old_months_only(self, fresh_pg: AsyncEngine) -> None:
        station = await make_station(fresh_pg, charge_point_id="CP-1")
        now = datetime.now(UTC)
        await _sample(fresh_pg, station, now)
        # a year and a half later, keeping 12 months, today's month is gone and recent ones stay
        later = partitions.add_months(partitions.month_start(now), 18)
        later_dt = datetime(later.year, later.month, 15, tzinfo=UTC)
        await partitions.ensure_partitions(fresh_pg, now=later_dt)
        within = partitions.add_months(later, -6)
        async with fresh_pg.begin() as conn:
            await partitions.add_month(conn, within)
        dropped = await partitions.drop_expired(fresh_pg, keep_months=12, now=later_dt)
        assert partitions.partition_name(partitions.month_start(now)) in dropped
        async with fresh_pg.connect() as conn:
            months = await partitions.monthly_partitions(conn)
        assert within in months and min(months) >= partitions.add_months(later, -12)
        assert await partitions.drop_expired(fresh_pg, keep_months=0, now=later_dt) == []
