"""The outage backfill on real databases: constructed status histories become the port outages
a person would draw from them — only where no outage of the same cause is recorded yet, once
however often it runs — and the uptime the service computes afterwards is the hand-computed one.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from api.service.outage_backfill import backfill_outages
from api.service.uptime import Window
from api.service.uptime_rollups import compute_uptime
from schema.db import session_factory
from schema.incident_models import OutageCause, PortOutage
from schema.models import ChargingStation, Connector, ConnectorStatusEvent, Organization
from schema.timeutil import utcnow
from tests.builders import make_org, make_station
from tests.uptime_world import month_start, previous_month

H = timedelta(hours=1)
FAULTED, UNAVAILABLE, OFFLINE = OutageCause.FAULTED, OutageCause.UNAVAILABLE, OutageCause.OFFLINE

Row = tuple[int, str, timedelta, timedelta | None, str | None]  # connector, cause, start, end, code


@dataclass
class Site:
    engine: AsyncEngine
    station: int
    t0: datetime  # every time in a scenario is an offset from here

    async def history(self, *changes: tuple[int, str, timedelta] | tuple[int, str, timedelta, str]) -> None:
        """Status changes (connector, status, offset[, error code]) as the gateway records them."""
        async with session_factory(self.engine)() as s:
            for connector, status, offset, *code in changes:
                s.add(
                    ConnectorStatusEvent(
                        station_id=self.station,
                        connector_id=connector,
                        status=status,
                        error_code=code[0] if code else "NoError",
                        received_at=self.t0 + offset,
                    )
                )
            await s.commit()

    async def outage(
        self, connector: int, cause: OutageCause, start: timedelta, end: timedelta | None
    ) -> None:
        """An outage detection already wrote."""
        async with session_factory(self.engine)() as s:
            s.add(
                PortOutage(
                    station_id=self.station,
                    connector_id=connector,
                    cause=cause.value,
                    started_at=self.t0 + start,
                    ended_at=None if end is None else self.t0 + end,
                )
            )
            await s.commit()

    async def now_reports(self, connector: int, status: str) -> None:
        """The connector's current status (the connector table), as the gateway last wrote it."""
        async with self.engine.begin() as conn:
            if connector == 0:
                await conn.execute(
                    update(ChargingStation)
                    .where(col(ChargingStation.id) == self.station)
                    .values(status=status)
                )
            else:
                await conn.execute(
                    update(Connector)
                    .where(
                        col(Connector.station_id) == self.station, col(Connector.connector_id) == connector
                    )
                    .values(status=status)
                )

    async def outages(self) -> list[Row]:
        async with session_factory(self.engine)() as s:
            rows = (
                await s.exec(
                    select(PortOutage)
                    .where(PortOutage.station_id == self.station)
                    .order_by(col(PortOutage.connector_id), col(PortOutage.cause), col(PortOutage.started_at))
                )
            ).all()
        return [
            (
                r.connector_id,
                r.cause,
                r.started_at - self.t0,
                None if r.ended_at is None else r.ended_at - self.t0,
                r.error_code,
            )
            for r in rows
        ]


async def make_site(
    engine: AsyncEngine, *, cp: str = "CP-1", connectors: int = 2, t0: datetime | None = None
) -> Site:
    station = await make_station(engine, charge_point_id=cp, connectors=connectors)
    # a fixed instant in the past, well before anything the test runs at
    return Site(engine, station, t0 or datetime(2025, 3, 3, tzinfo=UTC))


def added(counts: Mapping[OutageCause, int]) -> dict[str, int]:
    return {cause.value: n for cause, n in counts.items()}


class TestRebuildingIntervals:
    async def test_faulted_and_unavailable_intervals_per_connector_once_however_often_it_runs(
        self, engine: AsyncEngine
    ) -> None:
        # given
        site = await make_site(engine)
        await site.history(
            (1, "Faulted", 1 * H, "GroundFailure"),
            (1, "Faulted", 2 * H, "OverCurrentFailure"),  # still faulted: the same interval
            (1, "Available", 3 * H),
            (2, "Unavailable", 2 * H),
            (2, "Faulted", 4 * H),  # a different down status ends one interval, opens the next
            (2, "Charging", 5 * H),
            (2, "Available", 6 * H),
        )
        # when
        first = await backfill_outages(engine, page=2)  # pages end mid-connector and across
        second = await backfill_outages(engine, page=2)
        # then
        assert await site.outages() == [
            (1, "faulted", 1 * H, 3 * H, "GroundFailure"),
            (2, "faulted", 4 * H, 5 * H, None),
            (2, "unavailable", 2 * H, 4 * H, None),
        ]
        assert added(first.added) == {"faulted": 2, "unavailable": 1}
        assert added(second.added) == {"faulted": 0, "unavailable": 0}

    async def test_only_where_no_outage_of_that_cause_on_that_connector_overlaps(
        self, engine: AsyncEngine
    ) -> None:
        # given: detection recorded part of the first fault, and an offline outage over the second
        site = await make_site(engine, connectors=3)
        await site.outage(1, FAULTED, 2 * H, 2 * H + timedelta(minutes=30))
        await site.outage(1, OFFLINE, 5 * H, 7 * H)
        await site.outage(2, UNAVAILABLE, 0 * H, 1 * H)  # ends as the fault begins: no overlap
        await site.outage(3, FAULTED, 0 * H, 10 * H)  # a long one, and a short one inside it
        await site.outage(3, FAULTED, 1 * H, 1 * H + 30 * timedelta(minutes=1))
        await site.history(
            (1, "Faulted", 1 * H),
            (1, "Available", 3 * H),
            (1, "Faulted", 5 * H, "PowerMeterFailure"),
            (1, "Available", 6 * H),
            (2, "Faulted", 1 * H),
            (2, "Available", 2 * H),
            (3, "Faulted", 5 * H),  # inside the long one
            (3, "Available", 6 * H),
        )
        # when
        result = await backfill_outages(engine)
        # then
        assert await site.outages() == [
            (1, "faulted", 2 * H, 2 * H + timedelta(minutes=30), None),
            (1, "faulted", 5 * H, 6 * H, "PowerMeterFailure"),
            (1, "offline", 5 * H, 7 * H, None),
            (2, "faulted", 1 * H, 2 * H, None),
            (2, "unavailable", 0 * H, 1 * H, None),
            (3, "faulted", 0 * H, 10 * H, None),
            (3, "faulted", 1 * H, 1 * H + 30 * timedelta(minutes=1), None),
        ]
        assert added(result.added) == {"faulted": 2, "unavailable": 0}

    async def test_a_faulted_station_is_down_on_every_connector(self, engine: AsyncEngine) -> None:
        # given: the station faults 1–2 h while connector 1 has its own fault 1.5–4 h
        site = await make_site(engine)
        await site.history(
            (0, "Faulted", 1 * H, "OtherError"),
            (0, "Available", 2 * H),
            (1, "Faulted", 1 * H + 30 * timedelta(minutes=1)),
            (1, "Available", 4 * H),
            (0, "Unavailable", 8 * H),  # a station-level Unavailable is each connector's own report
            (0, "Available", 9 * H),
        )
        # when
        await backfill_outages(engine)
        # then: connector 1's two faults are one outage
        assert await site.outages() == [
            (1, "faulted", 1 * H, 4 * H, "OtherError"),
            (2, "faulted", 1 * H, 2 * H, "OtherError"),
        ]

    async def test_an_interval_open_at_the_end_stays_open_only_while_the_connector_is_still_down(
        self, engine: AsyncEngine
    ) -> None:
        # given: both connectors' last change is a fault; only connector 1 still reports it
        site = await make_site(engine)
        await site.history(
            (1, "Faulted", 1 * H, "GroundFailure"),
            (2, "Unavailable", 2 * H),
            (0, "Available", 6 * H),  # the station's next word after connector 2 went down
        )
        await site.now_reports(1, "Faulted")
        await site.now_reports(2, "Available")
        # when
        await backfill_outages(engine)
        await backfill_outages(engine)
        # then
        assert await site.outages() == [
            (1, "faulted", 1 * H, None, "GroundFailure"),
            (2, "unavailable", 2 * H, 6 * H, None),
        ]

    async def test_a_station_fault_open_at_the_end_follows_the_stations_current_status(
        self, engine: AsyncEngine
    ) -> None:
        # given
        site = await make_site(engine, connectors=1)
        await site.history((1, "Available", 0 * H), (0, "Faulted", 1 * H))
        await site.now_reports(0, "Faulted")
        # when
        await backfill_outages(engine)
        # then
        assert await site.outages() == [(1, "faulted", 1 * H, None, None)]


class TestCommand:
    async def test_since_clips_what_began_before_it_and_organization_limits_the_stations(
        self, engine: AsyncEngine
    ) -> None:
        # given: ours (acme), and a station of another organisation with a fault of its own
        site = await make_site(engine)
        await site.history(
            (1, "Faulted", 1 * H, "GroundFailure"),  # down across --since
            (1, "Available", 3 * H),
            (1, "Unavailable", 5 * H),
            (1, "Available", 6 * H),
            (2, "Faulted", 0 * H),  # over before --since
            (2, "Available", 30 * timedelta(minutes=1)),
            (2, "Available", 2 * H + 30 * timedelta(minutes=1)),  # connector 2 speaks meanwhile
        )
        theirs = await make_site(engine, cp="OTHER-1")
        async with session_factory(engine)() as s:
            globex = Organization(name="Globex", slug="globex")
            s.add(globex)
            await s.flush()
            st = await s.get(ChargingStation, theirs.station)
            assert st is not None
            st.organization_id = globex.id
            s.add(st)
            await s.commit()
        await theirs.history((1, "Faulted", 1 * H), (1, "Available", 3 * H))
        acme = await make_org(engine)
        # when
        out = await chargenet(
            "backfill-outages",
            "--database-url",
            engine.url.render_as_string(hide_password=False),
            "--since",
            (site.t0 + 2 * H).isoformat(),
            "--organization",
            str(acme),
        )
        # then
        assert "1 stations" in out and "faulted +1" in out and "unavailable +1" in out, out
        assert await site.outages() == [
            (1, "faulted", 2 * H, 3 * H, "GroundFailure"),
            (1, "unavailable", 5 * H, 6 * H, None),
        ]
        assert await theirs.outages() == []


async def chargenet(*args: str) -> str:
    """The real command in its own process, as an operator runs it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


class TestUptimeAfterBackfill:
    async def test_a_ports_uptime_counts_the_rebuilt_outages_with_the_live_ones(
        self, engine: AsyncEngine
    ) -> None:
        # given: in the last complete month M, connector 1 faulted 10:00–12:00 on day 3 while an
        # offline outage (detection's) ran 11:00–13:00, and was unavailable 60 min on day 5
        now = utcnow()
        this_month = month_start(now)
        m = previous_month(this_month)
        year_ago = datetime(this_month.year - 1, this_month.month, 1, tzinfo=UTC)
        site = await make_site(engine, t0=m)
        async with engine.begin() as conn:
            await conn.execute(
                update(ChargingStation)
                .where(col(ChargingStation.id) == site.station)
                .values(created_at=year_ago - timedelta(days=400))
            )
        day = timedelta(days=1)
        await site.outage(1, OFFLINE, 2 * day + 11 * H, 2 * day + 13 * H)
        await site.history(
            (1, "Faulted", 2 * day + 10 * H, "GroundFailure"),
            (1, "Available", 2 * day + 12 * H),
            (1, "Unavailable", 4 * day + 8 * H),
            (1, "Available", 4 * day + 9 * H),
        )
        # when
        await backfill_outages(engine)
        report = await compute_uptime(session_factory(engine), await make_org(engine), Window.trailing(now))
        # then: 180 min (the overlap counts once) + 60 min over the window's minutes
        period = int((this_month - year_ago).total_seconds()) // 60
        port1, port2 = report.stations[0].ports
        assert port1.outage_s == 240 * 60
        assert port1.uptime == pytest.approx((period - 240) / period * 100)
        assert port2.uptime == 100.0
