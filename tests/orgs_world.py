"""Two operators for organisation tests: `acme` with a signed-in member of every role, and
`globex` with its own owner and admin. Written through the real tables and sign-in service."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry import relay

from api.accounts.tokens import Device, open_session
from api.auth.keys import KeyRing
from api.auth.roles import Role
from schema.account_models import Membership, UserAccount
from schema.db import session_factory
from schema.models import ChargingStation, Location, Organization, Transaction
from schema.timeutil import utcnow
from tests.builders import make_org
from tests.graphql_client import gql


def gid(type_name: str, pk: int) -> str:
    return str(relay.GlobalID(type_name, str(pk)))


def code(result: dict[str, Any]) -> str:
    """The code of the first error of a result that must have failed."""
    assert result.get("errors"), result
    return str(result["errors"][0]["extensions"]["code"])


@dataclass
class World:
    http: httpx.AsyncClient
    acme: int
    globex: int
    users: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def acme_id(self) -> str:
        return gid("Organization", self.acme)

    @property
    def globex_id(self) -> str:
        return gid("Organization", self.globex)

    def account(self, who: str) -> str:
        return gid("Account", self.users[who])

    async def run(self, who: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return await gql(self.http, query, variables, token=self.tokens[who])


async def make_second_org(engine: AsyncEngine, *, slug: str) -> int:
    """Another organisation, without the cards `make_org` gives the first one (tags are unique)."""
    async with session_factory(engine)() as s:
        org = Organization(name=slug.title(), slug=slug)
        s.add(org)
        await s.commit()
        return org.id or 0


async def build_world(engine: AsyncEngine, keys: KeyRing, http: httpx.AsyncClient) -> World:
    """Everyone is a verified person without a password (nothing to hash), signed in on one
    device; all written in one transaction."""
    world = World(http, await make_org(engine, slug="acme"), await make_second_org(engine, slug="globex"))
    people: list[tuple[str, int | None, Role | None]] = [(r.value, world.acme, r) for r in Role]
    people += [
        ("globex-owner", world.globex, Role.OWNER),
        ("globex-admin", world.globex, Role.ADMIN),
        ("outsider", None, None),
    ]
    async with session_factory(engine)() as s:
        for who, org, role in people:
            user = UserAccount(
                email=f"{who}@example.com", email_verified_at=utcnow(), display_name=who.title()
            )
            s.add(user)
            await s.flush()
            world.users[who] = user.id or 0
            if org is not None and role is not None:
                s.add(Membership(organization_id=org, user_id=user.id or 0, role=role.value))
            pair = await open_session(
                s, keys, user_id=user.id or 0, method="password", device=Device(name="test"), ttl_days=1
            )
            world.tokens[who] = pair.access_token
        await s.commit()
    return world


async def make_session_in(engine: AsyncEngine, *, organization_id: int, charge_point_id: str) -> int:
    """A finished charging session at a new station of the organisation; its transaction id."""
    async with session_factory(engine)() as s:
        location = Location(
            organization_id=organization_id, name=charge_point_id, latitude=0, longitude=0, time_zone="UTC"
        )
        s.add(location)
        await s.flush()
        station = ChargingStation(
            organization_id=organization_id, location_id=location.id or 0, charge_point_id=charge_point_id
        )
        s.add(station)
        await s.flush()
        tx = Transaction(
            station_id=station.id or 0,
            connector_id=1,
            start_key=f"{charge_point_id}:1",
            state="Completed",
            started_at=utcnow(),
        )
        s.add(tx)
        await s.commit()
        return tx.id or 0
