"""The demo network `chargenet serve` seeds: one operator, three sites, ten stations, and two
people to sign in as (a driver and a member of the operator's staff).

Seeding is idempotent (keyed on the organisation slug), so restarting the demo keeps the
sessions it already recorded. The two demo accounts get a fresh random password on every
start (printed in the banner), so no usable credential is ever written in the repository.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from api.accounts.passwords import hash_password
from api.auth.roles import Role
from schema.account_models import Membership, UserAccount
from schema.db import session_factory
from schema.models import ChargingStation, Connector, IdToken, Location, Organization
from schema.timeutil import utcnow

DEMO_ORG_SLUG = "demo-network"
DEMO_ID_TAGS = ("DEMO-RFID-0001", "DEMO-RFID-0002", "DEMO-RFID-0003", "DEMO-APP-0001")
# The simulator charges with every tag above; these two belong to the demo driver, so the
# driver's session history fills up while the demo runs.
DEMO_DRIVER_CARD = "DEMO-RFID-0001"
DEMO_DRIVER_APP_TOKEN = "DEMO-APP-0001"
DEMO_DRIVER_EMAIL = "driver@demo.chargenet.dev"
DEMO_OPERATOR_EMAIL = "operator@demo.chargenet.dev"
# The operator is an admin of the demo network: every operator screen, including members,
# API keys and the audit log, can be tried.
DEMO_OPERATOR_ROLE = Role.ADMIN


@dataclass(frozen=True)
class DemoAccount:
    email: str
    password: str
    what: str


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
    # The OCPP version its simulator speaks (subprotocol name): every third one speaks 2.0.1.
    ocpp_version: str = "ocpp1.6"

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
    return [replace(s, ocpp_version="ocpp2.0.1") if n % 3 == 2 else s for n, s in enumerate(specs)]


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
            s.add(
                IdToken(token=tag, token_type="Central" if "APP" in tag else "RFID", organization_id=org.id)
            )
        await s.commit()
    return True


async def reset_demo_accounts(engine: AsyncEngine) -> list[DemoAccount]:
    """Ensure the demo driver and operator exist, give each a new random password, and return
    the credentials to print. Hashing runs off the event loop (Argon2, ~0.1 s each)."""
    plain = [secrets.token_urlsafe(12) for _ in range(2)]
    hashes = await asyncio.gather(*(hash_password(p) for p in plain))
    async with session_factory(engine)() as s:
        org = (await s.exec(select(Organization).where(Organization.slug == DEMO_ORG_SLUG))).one()
        users = []
        for email, hashed in zip((DEMO_DRIVER_EMAIL, DEMO_OPERATOR_EMAIL), hashes, strict=True):
            user = (await s.exec(select(UserAccount).where(UserAccount.email == email))).first()
            if user is None:
                user = UserAccount(email=email, email_verified_at=utcnow())
            user.password_hash = hashed
            user.password_changed_at = utcnow()
            s.add(user)
            users.append(user)
        await s.flush()
        driver, operator = users
        for token in (DEMO_DRIVER_CARD, DEMO_DRIVER_APP_TOKEN):
            row = (await s.exec(select(IdToken).where(IdToken.token == token))).first()
            if row is not None and row.user_id is None:
                row.user_id = driver.id
                s.add(row)
        member = (
            await s.exec(
                select(Membership).where(
                    Membership.organization_id == org.id, Membership.user_id == operator.id
                )
            )
        ).first()
        if member is None:
            s.add(
                Membership(
                    organization_id=org.id or 0, user_id=operator.id or 0, role=DEMO_OPERATOR_ROLE.value
                )
            )
        driver.display_name = driver.display_name or "Demo Driver"
        operator.display_name = operator.display_name or "Demo Operator"
        await s.commit()
    return [
        DemoAccount(DEMO_DRIVER_EMAIL, plain[0], "driver (card DEMO-RFID-0001, app token)"),
        DemoAccount(DEMO_OPERATOR_EMAIL, plain[1], f"{DEMO_OPERATOR_ROLE.value} of the demo network"),
    ]


async def first_location_global_id(engine: AsyncEngine) -> str:
    """The demo's first location as a GraphQL id, for the example the banner prints."""
    async with session_factory(engine)() as s:
        loc = (await s.exec(select(Location).order_by(col(Location.id)))).first()
    if loc is None:
        return "<a Location id>"
    return base64.b64encode(f"Location:{loc.id}".encode()).decode()
