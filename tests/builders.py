"""Keyword-only builders for test data, written through the real tables."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from schema.db import session_factory
from schema.models import ChargingStation, Connector, IdToken, Location, Organization

ACCEPTED_TAGS = ("TAG-OK-1", "TAG-OK-2")
BLOCKED_TAG = "TAG-BLOCKED"


async def make_org(engine: AsyncEngine, *, slug: str = "acme") -> int:
    async with session_factory(engine)() as s:
        existing = (await s.exec(select(Organization).where(Organization.slug == slug))).first()
        if existing is not None:
            return existing.id or 0
        org = Organization(name=slug.title(), slug=slug)
        s.add(org)
        await s.flush()
        for tag in ACCEPTED_TAGS:
            s.add(IdToken(token=tag, organization_id=org.id))
        s.add(IdToken(token=BLOCKED_TAG, status="Blocked", organization_id=org.id))
        await s.commit()
        return org.id or 0


async def make_location(
    engine: AsyncEngine,
    *,
    name: str = "Depot",
    latitude: float = 52.52,
    longitude: float = 13.405,
    time_zone: str = "Europe/Berlin",
    org_slug: str = "acme",
) -> int:
    org_id = await make_org(engine, slug=org_slug)
    async with session_factory(engine)() as s:
        loc = Location(
            organization_id=org_id,
            name=name,
            latitude=latitude,
            longitude=longitude,
            time_zone=time_zone,
            city="Berlin",
            country="DE",
        )
        s.add(loc)
        await s.commit()
        return loc.id or 0


async def make_station(
    engine: AsyncEngine,
    *,
    charge_point_id: str,
    connectors: int = 2,
    power_w: int = 22_000,
    location_id: int | None = None,
    password_hash: str | None = None,
    registration_status: str = "Accepted",
    online: bool = False,
    status: str = "Available",
) -> int:
    org_id = await make_org(engine)
    if location_id is None:
        location_id = await make_location(engine, name=f"Site of {charge_point_id}")
    async with session_factory(engine)() as s:
        st = ChargingStation(
            organization_id=org_id,
            location_id=location_id,
            charge_point_id=charge_point_id,
            password_hash=password_hash,
            registration_status=registration_status,
            online=online,
        )
        s.add(st)
        await s.flush()
        for n in range(1, connectors + 1):
            s.add(Connector(station_id=st.id or 0, connector_id=n, max_power_w=power_w, status=status))
        await s.commit()
        return st.id or 0
