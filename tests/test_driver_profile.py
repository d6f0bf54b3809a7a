"""The signed-in driver's account: `me`, profile changes and vehicles, against a real API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry import relay

from api.auth.roles import Permission, Role
from api.drivers.service import MAX_VEHICLES_PER_ACCOUNT
from schema.account_models import ExternalIdentity, Vehicle
from schema.db import session_factory
from tests.account_builders import add_member, make_api_key, make_user, sign_in
from tests.builders import make_org
from tests.conftest import OPERATOR_TOKEN, ApiServer
from tests.graphql_client import data, gql

ME = """
{ me { id email emailVerified displayName phone locale hasPassword
       linkedIdentities { provider email }
       memberships { organizationId organizationName role }
       vehicles { id } cards { id } appTokens { id } } }
"""

PROFILE = "{ me { displayName phone locale } }"

UPDATE_PROFILE = """
mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { displayName phone locale } }
"""

VEHICLE_FIELDS = "id make model batteryKwh connectorTypes nickname"
ADD_VEHICLE = f"""
mutation($input: AddVehicleInput!) {{ addVehicle(input: $input) {{ {VEHICLE_FIELDS} }} }}
"""
UPDATE_VEHICLE = f"""
mutation($id: ID!, $input: UpdateVehicleInput!) {{
  updateVehicle(id: $id, input: $input) {{ {VEHICLE_FIELDS} }} }}
"""
REMOVE_VEHICLE = "mutation($id: ID!) { removeVehicle(id: $id) }"
MY_VEHICLES = f"{{ me {{ vehicles {{ {VEHICLE_FIELDS} }} }} }}"
NODE_VEHICLE = "query($id: ID!) { node(id: $id) { id ... on Vehicle { make model } } }"

TESLA = {"make": "Tesla", "model": "Model 3", "batteryKwh": 57.5, "connectorTypes": ["CCS2", "TYPE2"]}


def unique_email(name: str) -> str:
    """Account tables outlive a PostgreSQL test: addresses must not collide across tests."""
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


async def driver(
    engine: AsyncEngine, server: ApiServer, name: str, *, display_name: str | None = None
) -> tuple[int, str]:
    """A signed-in driver without a password (no Argon2 cost); (user id, access token)."""
    user = await make_user(engine, email=unique_email(name), password=None, display_name=display_name)
    pair = await sign_in(engine, server.app.state.auth.keys, user_id=user)
    return user, pair.access_token


def error_code(result: dict[str, Any]) -> str:
    return str(result["errors"][0]["extensions"]["code"])


class TestMe:
    async def test_shows_the_account_with_its_sign_in_methods_and_memberships(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a driver who signs in with Google too and is an owner of acme
        user, token = await driver(engine, api_server, "anna", display_name="Anna")
        org = await make_org(engine, slug="acme")
        await add_member(engine, user_id=user, organization_id=org, role=Role.OWNER)
        async with session_factory(engine)() as s:
            s.add(
                ExternalIdentity(
                    user_id=user, provider="google", subject=uuid.uuid4().hex, email="a@gmail.com"
                )
            )
            await s.commit()
        # when they ask who they are
        me = data(await gql(http, ME, token=token))["me"]
        # then they see their own account
        assert me["id"] == str(relay.GlobalID("Account", str(user)))
        assert me["email"].startswith("anna-")
        assert (me["emailVerified"], me["displayName"], me["locale"], me["hasPassword"]) == (
            True,
            "Anna",
            "en",
            False,
        )
        assert me["linkedIdentities"] == [{"provider": "google", "email": "a@gmail.com"}]
        assert me["memberships"] == [
            {
                "organizationId": str(relay.GlobalID("Organization", str(org))),
                "organizationName": "Acme",
                "role": "OWNER",
            }
        ]
        assert (me["vehicles"], me["cards"], me["appTokens"]) == ([], [], [])
        # and the account resolves as a node for its owner only
        _, other_token = await driver(engine, api_server, "ben")
        node = "query($id: ID!) { node(id: $id) { id } }"
        assert data(await gql(http, node, {"id": me["id"]}, token=token))["node"] == {"id": me["id"]}
        assert data(await gql(http, node, {"id": me["id"]}, token=other_token))["node"] is None

    async def test_is_for_people_only(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        org = await make_org(engine, slug="acme")
        key = await make_api_key(engine, organization_id=org, permissions=frozenset(Permission))
        assert error_code(await gql(http, ME)) == "UNAUTHENTICATED"
        assert error_code(await gql(http, ME, token=key)) == "FORBIDDEN"
        assert error_code(await gql(http, ME, token=OPERATOR_TOKEN)) == "FORBIDDEN"


class TestUpdateProfile:
    async def test_normalises_and_keeps_omitted_fields(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a driver
        _, token = await driver(engine, api_server, "carla")
        # when they set their name, phone and locale as people type them
        first = {"displayName": "  Carla Díaz ", "phone": "+49 (151) 2345-6789", "locale": "de_de"}
        updated = data(await gql(http, UPDATE_PROFILE, {"input": first}, token=token))["updateProfile"]
        # then they are stored in canonical form
        assert updated == {"displayName": "Carla Díaz", "phone": "+4915123456789", "locale": "de-DE"}
        # when they change only the locale, then the rest stays
        again = data(await gql(http, UPDATE_PROFILE, {"input": {"locale": "es-419"}}, token=token))
        assert again["updateProfile"] == {**updated, "locale": "es-419"}
        # when they clear their phone, then it is gone
        cleared = data(await gql(http, UPDATE_PROFILE, {"input": {"phone": None}}, token=token))
        assert cleared["updateProfile"]["phone"] is None

    async def test_refuses_invalid_values_and_changes_nothing(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        _, token = await driver(engine, api_server, "dora", display_name="Dora")
        before = data(await gql(http, PROFILE, token=token))["me"]
        for bad in (
            {"displayName": "x" * 121},
            {"displayName": "Dora\u0000"},
            {"phone": "0151 2345678"},  # no country code
            {"phone": "+49 151 CALL ME"},
            {"phone": "+49 1234567890123456"},  # longer than E.164 allows
            {"locale": "english"},
            {"locale": None},
            {"displayName": "Dora Two", "locale": "xx-YYY"},  # one bad field refuses all
        ):
            result = await gql(http, UPDATE_PROFILE, {"input": bad}, token=token)
            assert error_code(result) == "INVALID_INPUT", bad
        assert data(await gql(http, PROFILE, token=token))["me"] == before


class TestVehicles:
    async def test_add_update_and_remove(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a driver
        user, token = await driver(engine, api_server, "emil")
        # when they add a car, naming one plug twice
        added = data(
            await gql(
                http,
                ADD_VEHICLE,
                {"input": {**TESLA, "connectorTypes": ["CCS2", "TYPE2", "CCS2"], "nickname": "Blue"}},
                token=token,
            )
        )["addVehicle"]
        # then it is theirs, each plug once, the battery kept in watt-hours
        assert {k: v for k, v in added.items() if k != "id"} == {
            **TESLA,
            "connectorTypes": ["CCS2", "TYPE2"],
            "nickname": "Blue",
        }
        assert data(await gql(http, MY_VEHICLES, token=token))["me"]["vehicles"] == [added]
        async with engine.connect() as conn:
            stored = (
                await conn.execute(
                    text("SELECT battery_wh, connector_types FROM vehicle WHERE user_id = :u"), {"u": user}
                )
            ).one()
        assert tuple(stored) == (57_500, "CCS2 Type2")
        # when they change the model and clear the nickname
        updated = data(
            await gql(
                http,
                UPDATE_VEHICLE,
                {
                    "id": added["id"],
                    "input": {"model": "Model Y", "nickname": None, "connectorTypes": ["NACS"]},
                },
                token=token,
            )
        )["updateVehicle"]
        # then only those change
        assert updated == {**added, "model": "Model Y", "nickname": None, "connectorTypes": ["NACS"]}
        # when they remove it, then it is gone
        assert data(await gql(http, REMOVE_VEHICLE, {"id": added["id"]}, token=token)) == {
            "removeVehicle": added["id"]
        }
        assert data(await gql(http, MY_VEHICLES, token=token))["me"]["vehicles"] == []
        assert error_code(await gql(http, REMOVE_VEHICLE, {"id": added["id"]}, token=token)) == "NOT_FOUND"

    async def test_refuses_invalid_vehicles(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        _, token = await driver(engine, api_server, "fiona")
        for bad in ({**TESLA, "make": "  "}, {**TESLA, "batteryKwh": 0}, {**TESLA, "model": "m" * 61}):
            assert error_code(await gql(http, ADD_VEHICLE, {"input": bad}, token=token)) == "INVALID_INPUT"
        added = data(await gql(http, ADD_VEHICLE, {"input": TESLA}, token=token))["addVehicle"]
        for change in ({"make": None}, {"batteryKwh": 5000}):
            result = await gql(http, UPDATE_VEHICLE, {"id": added["id"], "input": change}, token=token)
            assert error_code(result) == "INVALID_INPUT"
        assert data(await gql(http, MY_VEHICLES, token=token))["me"]["vehicles"] == [added]

    async def test_an_account_holds_a_limited_number(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a driver with as many cars as allowed
        user, token = await driver(engine, api_server, "gus")
        async with session_factory(engine)() as s:
            s.add_all(
                Vehicle(user_id=user, make="VW", model=f"ID.{n}") for n in range(MAX_VEHICLES_PER_ACCOUNT)
            )
            await s.commit()
        # when they add one more, then it is refused
        assert error_code(await gql(http, ADD_VEHICLE, {"input": TESLA}, token=token)) == "LIMIT_REACHED"


class TestAnotherDriversVehicle:
    async def test_looks_like_it_does_not_exist(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given Hana's car
        _, hana = await driver(engine, api_server, "hana")
        car = data(await gql(http, ADD_VEHICLE, {"input": TESLA}, token=hana))["addVehicle"]
        # when Ivan probes it by id
        _, ivan = await driver(engine, api_server, "ivan")
        node = await gql(http, NODE_VEHICLE, {"id": car["id"]}, token=ivan)
        update = await gql(http, UPDATE_VEHICLE, {"id": car["id"], "input": {"make": "Mine"}}, token=ivan)
        remove = await gql(http, REMOVE_VEHICLE, {"id": car["id"]}, token=ivan)
        # then he learns nothing and changes nothing
        assert data(node)["node"] is None
        assert (error_code(update), error_code(remove)) == ("NOT_FOUND", "NOT_FOUND")
        assert data(await gql(http, NODE_VEHICLE, {"id": car["id"]}, token=hana))["node"] == {
            "id": car["id"],
            "make": "Tesla",
            "model": "Model 3",
        }
