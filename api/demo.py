"""The demo network `chargenet serve` seeds: one operator, three sites, ten stations.

Seeding is idempotent (keyed on the organisation slug), so restarting the demo keeps the
sessions it already recorded.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from schema.db import session_factory
from schema.models import ChargingStation, Connector, IdToken, Location, Organization

DEMO_ORG_SLUG = "demo-network"
DEMO_ID_TAGS = ("DEMO-RFID-0001", "DEMO-RFID-0002", "DEMO-RFID-0003", "DEMO-APP-0001")


@dataclass(frozen=True)
class DemoLocation:
    name: str
    address: str
    city: str
    country: str
    latitude: float
    longitude: float
    time_zone: str


@dataclass(frozen=True)
class DemoStation:
    charge_point_id: str
    location_index: int
    model: str
    current_type: str
    connectors: tuple[tuple[str, int], ...]  # (type, max power W)

    @property
    def connector_powers(self) -> list[int]:
        return [p for _, p in self.connectors]


LOCATIONS = (
    DemoLocation(
        "Alexanderplatz Garage", "Alexanderstraße 7", "Berlin", "DE", 52.5219, 13.4132, "Europe/Berlin"
    ),
    DemoLocation(
        "Amsterdam Zuid Hub", "Parnassusweg 220", "Amsterdam", "NL", 52.3389, 4.8730, "Europe/Amsterdam"
    ),
    DemoLocation("Oslo Fjord Fast Charge", "Langkaia 1", "Oslo", "NO", 59.9075, 10.7500, "Europe/Oslo"),
)

STATIONS = (
    DemoStation("DEMO-BER-AC-01", 0, "Wallbox22", "AC", (("Type2", 22_000), ("Type2", 22_000))),
    DemoStation("DEMO-BER-AC-02", 0, "Wallbox22", "AC", (("Type2", 22_000), ("Type2", 22_000))),
    DemoStation("DEMO-BER-AC-03", 0, "Wallbox11", "AC", (("Type2", 11_000),)),
    DemoStation("DEMO-BER-DC-01", 0, "HPC150", "DC", (("CCS2", 150_000), ("CHAdeMO", 50_000))),
    DemoStation("DEMO-AMS-AC-01", 1, "Wallbox22", "AC", (("Type2", 22_000), ("Type2", 22_000))),
    DemoStation("DEMO-AMS-DC-01", 1, "HPC150", "DC", (("CCS2", 150_000),)),
    DemoStation("DEMO-AMS-DC-02", 1, "DC50", "DC", (("CCS2", 50_000), ("CHAdeMO", 50_000))),
    DemoStation("DEMO-OSL-DC-01", 2, "HPC350", "DC", (("CCS2", 350_000), ("CCS2", 350_000))),
    DemoStation("DEMO-OSL-DC-02", 2, "HPC150", "DC", (("CCS2", 150_000),)),
    DemoStation("DEMO-OSL-AC-01", 2, "Wallbox22", "AC", (("Type2", 22_000),)),
)


def demo_charger_specs(count: int) -> list[DemoStation]:
    """The seeded stations first; beyond ten, extra AC chargers that auto-register."""
    specs = list(STATIONS[:count])
    for i in range(len(specs), count):
        specs.append(DemoStation(f"SIM-{i + 1:05d}", -1, "Wallbox22", "AC", (("Type2", 22_000),)))
    return specs


async def seed_demo(engine: AsyncEngine) -> bool:
    """Create the demo network unless it exists. Returns True when it seeded."""
    async with session_factory(engine)() as s:
        if (await s.exec(select(Organization).where(Organization.slug == DEMO_ORG_SLUG))).first():
            return False
        org = Organization(name="ChargeNet Demo Network", slug=DEMO_ORG_SLUG, currency="EUR")
        s.add(org)
        await s.flush()
        locations = []
        for loc in LOCATIONS:
            row = Location(organization_id=org.id or 0, **loc.__dict__)
            s.add(row)
            locations.append(row)
        await s.flush()
        for st in STATIONS:
            station = ChargingStation(
                organization_id=org.id,
                location_id=locations[st.location_index].id,
                charge_point_id=st.charge_point_id,
                vendor="ChargeNetSim",
                model=st.model,
                registration_status="Accepted",
                heartbeat_interval_s=60,
            )
            s.add(station)
            await s.flush()
            for n, (ctype, power) in enumerate(st.connectors, start=1):
                s.add(
                    Connector(
                        station_id=station.id or 0,
                        connector_id=n,
                        connector_type=ctype,
                        current_type=st.current_type,
                        max_power_w=power,
                    )
                )
        for tag in DEMO_ID_TAGS:
            s.add(IdToken(token=tag, token_type="App" if "APP" in tag else "RFID", organization_id=org.id))
        await s.commit()
    return True


async def first_location_global_id(engine: AsyncEngine) -> str:
    """The demo's first location as a GraphQL id, for the example the banner prints."""
    async with session_factory(engine)() as s:
        loc = (await s.exec(select(Location).order_by(col(Location.id)))).first()
    if loc is None:
        return "<a Location id>"
    return base64.b64encode(f"Location:{loc.id}".encode()).decode()
