"""Organisations and their members: what each person sees, role changes, leaving, and the
rules that keep an organisation owned."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth.roles import Role
from tests.account_builders import make_user, sign_in
from tests.conftest import OPERATOR_TOKEN, ApiServer
from tests.graphql_client import data, gql
from tests.orgs_world import World, build_world, code

ORGANIZATIONS = "{ organizations(first: 10) { totalCount edges { node { slug myRole } } } }"
ORGANIZATION = "query($id: ID!) { organization(id: $id) { slug currency myRole } }"
MEMBERS = """query($id: ID!) { organization(id: $id) {
  members(first: 20) { totalCount edges { node { userId displayName role } } } } }"""
MEMBER_EMAILS = "query($id: ID!) { organization(id: $id) { members(first: 1) { edges { node { email } } } } }"
CREATE = """mutation($name: String!, $slug: String!, $owner: ID) {
  createOrganization(name: $name, slug: $slug, currency: "NOK", ownerUserId: $owner) {
    id slug currency myRole } }"""
UPDATE = """mutation($id: ID!, $name: String, $currency: String) {
  updateOrganization(id: $id, name: $name, currency: $currency) { name currency } }"""
CHANGE_ROLE = """mutation($org: ID!, $user: ID!, $role: Role!) {
  changeMemberRole(organizationId: $org, userId: $user, role: $role) { userId role } }"""
REMOVE = "mutation($org: ID!, $user: ID!) { removeMember(organizationId: $org, userId: $user) }"


@pytest.fixture
async def world(engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient) -> World:
    return await build_world(engine, api_server.app.state.auth.keys, http)


class TestListingOrganizations:
    async def test_members_see_theirs_with_their_role_and_the_platform_sees_all(self, world: World) -> None:
        mine = data(await world.run("viewer", ORGANIZATIONS))["organizations"]
        everyone = data(await gql(world.http, ORGANIZATIONS, token=OPERATOR_TOKEN))["organizations"]
        nobody = data(await world.run("outsider", ORGANIZATIONS))["organizations"]
        assert mine["totalCount"] == 1
        assert [e["node"] for e in mine["edges"]] == [{"slug": "acme", "myRole": "VIEWER"}]
        assert [e["node"] for e in everyone["edges"]] == [
            {"slug": "acme", "myRole": None},
            {"slug": "globex", "myRole": None},
        ]
        assert nobody == {"totalCount": 0, "edges": []}

    async def test_another_organisation_by_id_is_null(self, world: World) -> None:
        # given the owner of acme asks for globex by id, directly and through node()
        mine = await world.run("owner", ORGANIZATION, {"id": world.acme_id})
        theirs = await world.run("owner", ORGANIZATION, {"id": world.globex_id})
        node = await world.run("owner", "query($id: ID!) { node(id: $id) { id } }", {"id": world.globex_id})
        # then only their own exists for them
        assert data(mine)["organization"] == {"slug": "acme", "currency": "EUR", "myRole": "OWNER"}
        assert data(theirs)["organization"] is None
        assert data(node)["node"] is None


class TestMemberList:
    async def test_colleagues_see_names_and_roles_and_managers_see_emails(self, world: World) -> None:
        # a technician sees everyone's name and role
        members = data(await world.run("technician", MEMBERS, {"id": world.acme_id}))["organization"][
            "members"
        ]
        assert members["totalCount"] == len(Role)
        assert {(m["node"]["displayName"], m["node"]["role"]) for m in members["edges"]} == {
            (r.value.title(), r.name) for r in Role
        }
        assert world.account("technician") in {m["node"]["userId"] for m in members["edges"]}
        # but email addresses only those holding members:manage
        denied = await world.run("operator", MEMBER_EMAILS, {"id": world.acme_id})
        allowed = await world.run("admin", MEMBER_EMAILS, {"id": world.acme_id})
        assert code(denied) == "FORBIDDEN"
        assert data(allowed)["organization"]["members"]["edges"][0]["node"]["email"] == "owner@example.com"


class TestCreatingOrganizations:
    async def test_the_platform_creates_one_for_a_customer_owner(self, world: World) -> None:
        # when the platform creates "initech" owned by the outsider
        created = data(
            await gql(
                world.http,
                CREATE,
                {"name": "Initech", "slug": "initech", "owner": world.account("outsider")},
                token=OPERATOR_TOKEN,
            )
        )["createOrganization"]
        # then the outsider owns it at once
        assert created["slug"] == "initech" and created["currency"] == "NOK"
        mine = data(await world.run("outsider", ORGANIZATION, {"id": created["id"]}))["organization"]
        assert mine["myRole"] == "OWNER"
        # and the slug is taken from now on
        again = {"name": "Initech 2", "slug": "initech", "owner": world.account("outsider")}
        assert code(await gql(world.http, CREATE, again, token=OPERATOR_TOKEN)) == "INVALID_INPUT"
        # while an owner of an organisation cannot create one
        assert code(await world.run("owner", CREATE, {"name": "Mine", "slug": "mine"})) == "FORBIDDEN"

    async def test_a_platform_admin_account_becomes_the_owner_itself(
        self, engine: AsyncEngine, api_server: ApiServer, world: World
    ) -> None:
        staff = await make_user(engine, email="staff@chargenet.example", password=None, platform_admin=True)
        token = (await sign_in(engine, api_server.app.state.auth.keys, user_id=staff)).access_token
        created = data(await gql(world.http, CREATE, {"name": "Hooli", "slug": "hooli"}, token=token))
        assert created["createOrganization"]["myRole"] == "OWNER"


class TestUpdatingOrganizations:
    async def test_the_owner_renames_and_changes_currency(self, world: World) -> None:
        result = await world.run(
            "owner", UPDATE, {"id": world.acme_id, "name": "Acme Energy", "currency": "chf"}
        )
        assert data(result)["updateOrganization"] == {"name": "Acme Energy", "currency": "CHF"}


def role_change(world: World, who: str, role: str) -> dict[str, str]:
    return {"org": world.acme_id, "user": world.account(who), "role": role}


class TestChangingRoles:
    async def test_an_admin_promotes_a_viewer_and_it_applies_at_once(self, world: World) -> None:
        # given the viewer cannot read API keys
        keys = "query($id: ID!) { apiKeys(organizationId: $id) { totalCount } }"
        assert code(await world.run("viewer", keys, {"id": world.acme_id})) == "FORBIDDEN"
        # when an admin makes them admin
        changed = await world.run("admin", CHANGE_ROLE, role_change(world, "viewer", "ADMIN"))
        # then their very next request may
        assert data(changed)["changeMemberRole"] == {"userId": world.account("viewer"), "role": "ADMIN"}
        assert data(await world.run("viewer", keys, {"id": world.acme_id}))["apiKeys"]["totalCount"] == 0

    async def test_nobody_grants_beyond_their_reach(self, world: World) -> None:
        for who, target, role in [
            ("admin", "viewer", "OWNER"),  # only owners make owners
            ("admin", "owner", "VIEWER"),  # nor touch one
            ("operator", "viewer", "FINANCE"),  # without members:manage
        ]:
            result = await world.run(who, CHANGE_ROLE, role_change(world, target, role))
            assert code(result) == "FORBIDDEN", (who, target, role)

    async def test_an_organisation_always_keeps_an_owner(self, world: World) -> None:
        # the only owner cannot step down
        assert (
            code(await world.run("owner", CHANGE_ROLE, role_change(world, "owner", "ADMIN"))) == "LAST_OWNER"
        )
        # until they have made another owner
        promoted = await world.run("owner", CHANGE_ROLE, role_change(world, "admin", "OWNER"))
        assert data(promoted)["changeMemberRole"]["role"] == "OWNER"
        stepped_down = await world.run("owner", CHANGE_ROLE, role_change(world, "owner", "ADMIN"))
        assert data(stepped_down)["changeMemberRole"]["role"] == "ADMIN"


class TestRemovingMembers:
    async def test_an_admin_removes_an_operator_who_loses_access_at_once(self, world: World) -> None:
        # a viewer may not remove a colleague
        refused = await world.run("viewer", REMOVE, {"org": world.acme_id, "user": world.account("operator")})
        assert code(refused) == "FORBIDDEN"
        # an admin may, and it applies to the operator's next request
        assert data(await world.run("operator", ORGANIZATION, {"id": world.acme_id}))["organization"]
        removed = await world.run("admin", REMOVE, {"org": world.acme_id, "user": world.account("operator")})
        assert data(removed)["removeMember"] is True
        assert data(await world.run("operator", ORGANIZATION, {"id": world.acme_id}))["organization"] is None

    async def test_members_leave_on_their_own_but_the_last_owner_stays(self, world: World) -> None:
        left = await world.run("viewer", REMOVE, {"org": world.acme_id, "user": world.account("viewer")})
        assert data(left)["removeMember"] is True
        assert data(await world.run("viewer", ORGANIZATIONS))["organizations"]["totalCount"] == 0
        stays = await world.run("owner", REMOVE, {"org": world.acme_id, "user": world.account("owner")})
        assert code(stays) == "LAST_OWNER"
