"""A small fleet with a constructed outage history, for the uptime tests.

The history lies in the last complete UTC month (M), which is always inside the default window:
  CP-1 port 1: faulted 10:00–12:00 and offline 11:00–13:00 on day 3 of M (180 min, once)
  CP-1 port 2: nothing
  CP-2 port 1: 23:00 on the last day before M → 01:00 on day 1 of M (60 + 60 min), then
               down 12 days from day 10 of M (17,280 min): below 97 % for the year
  GLOBEX-1 (another organisation): down most of M
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from schema.db import session_factory
from schema.incident_models import OutageCause, PortOutage
from schema.models import ChargingStation, Location
from schema.timeutil import utcnow
from tests.builders import make_station
from tests.conftest import ApiServer
from tests.orgs_world import World, build_world

DAY = 24 * 60


def month_start(at: datetime) -> datetime:
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def previous_month(start: datetime) -> datetime:
    return month_start(start - timedelta(days=1))


@dataclass
class Fleet:
    world: World
    cp1: int
    cp2: int
    other: int
    m: datetime  # the first instant of M
    window_minutes: int
    m_minutes: int


async def add_outage(
    engine: AsyncEngine, station: int, connector: int, start: datetime, end: datetime | None
) -> None:
    async with session_factory(engine)() as s:
        s.add(
            PortOutage(
                station_id=station,
                connector_id=connector,
                cause=OutageCause.FAULTED.value,
                started_at=start,
                ended_at=end,
                error_code="GroundFailure",
            )
        )
        await s.commit()


async def build_fleet(engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient) -> Fleet:
    world = await build_world(engine, api_server.app.state.auth.keys, http)
    cp1 = await make_station(engine, charge_point_id="CP-1", connectors=2)
    cp2 = await make_station(engine, charge_point_id="CP-2", connectors=1)
    other = await make_station(engine, charge_point_id="GLOBEX-1", connectors=1)
    now = utcnow()
    this_month = month_start(now)
    m = previous_month(this_month)
    year_ago = datetime(this_month.year - 1, this_month.month, 1, tzinfo=UTC)
    async with session_factory(engine)() as s:
        for sid in (cp1, cp2, other):
            st = await s.get(ChargingStation, sid)
            assert st is not None
            st.created_at = year_ago - timedelta(days=400)
            if sid == other:
                st.organization_id = world.globex
                loc = await s.get(Location, st.location_id)
                assert loc is not None
                loc.organization_id = world.globex
                s.add(loc)
            s.add(st)
        await s.commit()
    await add_outage(engine, cp1, 1, m + timedelta(days=2, hours=10), m + timedelta(days=2, hours=12))
    await add_outage(engine, cp1, 1, m + timedelta(days=2, hours=11), m + timedelta(days=2, hours=13))
    await add_outage(engine, cp2, 1, m - timedelta(hours=1), m + timedelta(hours=1))
    await add_outage(engine, cp2, 1, m + timedelta(days=9), m + timedelta(days=21))
    await add_outage(engine, other, 1, m + timedelta(days=1), m + timedelta(days=30))
    return Fleet(
        world,
        cp1,
        cp2,
        other,
        m,
        int((this_month - year_ago).total_seconds()) // 60,
        int((this_month - m).total_seconds()) // 60,
    )


def mu(period: int, outage: int, excluded: int = 0) -> float:
    """The rule's µ in percent, from minutes."""
    return (period - (outage - excluded)) / period * 100
