"""Tenant isolation of organisation data: inside their own organisation each role may do what
ROLE_PERMISSIONS grants it (FORBIDDEN otherwise); another organisation's data does not exist
for them (NOT_FOUND or null, never FORBIDDEN, so not even its existence leaks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth.roles import ROLE_PERMISSIONS, Permission, Role
from tests.account_builders import make_api_key
from tests.conftest import ApiServer
from tests.graphql_client import data, gql
from tests.orgs_world import World, build_world, code, gid, make_session_in

MEMBERS = "query($org: ID!) { organization(id: $org) { members { totalCount } } }"
EMAILS = "query($org: ID!) { organization(id: $org) { members(first: 1) { edges { node { email } } } } }"
INVITATIONS = "query($org: ID!) { invitations(organizationId: $org) { totalCount } }"
API_KEYS = "query($org: ID!) { apiKeys(organizationId: $org) { totalCount } }"
AUDIT_LOG = "query($org: ID!) { auditLog(organizationId: $org) { totalCount } }"
UPDATE = 'mutation($org: ID!) { updateOrganization(id: $org, name: "Renamed") { name } }'
INVITE = """mutation($org: ID!, $email: String!) {
  inviteMember(organizationId: $org, email: $email, role: VIEWER) { id } }"""
CREATE_KEY = """mutation($org: ID!) {
  createApiKey(organizationId: $org, name: "probe", permissions: [NETWORK_READ]) { secret apiKey { id } } }"""
GLOBEX_IDS = """query($org: ID!) { organization(id: $org) { members(first: 1) { edges { node { id } } } }
  auditLog(organizationId: $org, first: 1) { edges { node { id } } } }"""
NODE = "query($id: ID!) { node(id: $id) { id } }"
REVOKE_INVITATION = "mutation($id: ID!) { revokeInvitation(id: $id) { id } }"
REVOKE_KEY = "mutation($id: ID!) { revokeApiKey(id: $id) { id } }"
TRANSACTIONS = "{ transactions { edges { node { id } } } }"


@dataclass(frozen=True)
class Operation:
    name: str
    document: str
    needs: Permission
    # Reached through organization(id): null for another organisation instead of NOT_FOUND.
    nested: bool = False


OPERATIONS = [
    Operation("members", MEMBERS, Permission.NETWORK_READ, nested=True),
    Operation("member emails", EMAILS, Permission.MEMBERS_MANAGE, nested=True),
    Operation("invitations", INVITATIONS, Permission.MEMBERS_MANAGE),
    Operation("apiKeys", API_KEYS, Permission.API_KEYS_MANAGE),
    Operation("auditLog", AUDIT_LOG, Permission.AUDIT_READ),
    Operation("updateOrganization", UPDATE, Permission.ORG_MANAGE),
    Operation("inviteMember", INVITE, Permission.MEMBERS_MANAGE),
    Operation("createApiKey", CREATE_KEY, Permission.API_KEYS_MANAGE),
]


@pytest.fixture
async def world(engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient) -> World:
    return await build_world(engine, api_server.app.state.auth.keys, http)


def outcome(result: dict[str, Any], op: Operation) -> str:
    if result.get("errors"):
        return code(result)
    if op.nested and result["data"]["organization"] is None:
        return "NULL"
    return "OK"


class TestEachRoleInItsOwnAndAnotherOrganisation:
    async def test_allowed_denied_and_not_found_follow_role_permissions(self, world: World) -> None:
        wrong: list[str] = []
        for role in Role:
            for op in OPERATIONS:
                for org, expected in [
                    (world.acme_id, "OK" if op.needs in ROLE_PERMISSIONS[role] else "FORBIDDEN"),
                    (world.globex_id, "NULL" if op.nested else "NOT_FOUND"),
                ]:
                    variables = {"org": org, "email": f"new-{role.value}@example.com"}
                    got = outcome(await world.run(role.value, op.document, variables), op)
                    if got != expected:
                        wrong.append(f"{role.value} {op.name} on {org}: {got}, expected {expected}")
        assert wrong == []


class TestObjectsOfAnotherOrganisationById:
    async def test_an_admin_of_acme_finds_nothing_of_globex(self, world: World) -> None:
        # given globex has an invitation, an API key, audit entries and members
        invite = {"org": world.globex_id, "email": "g@example.com"}
        invitation_id = data(await world.run("globex-admin", INVITE, invite))["inviteMember"]["id"]
        created_key = data(await world.run("globex-admin", CREATE_KEY, {"org": world.globex_id}))[
            "createApiKey"
        ]
        key_id = created_key["apiKey"]["id"]
        ids = data(await world.run("globex-admin", GLOBEX_IDS, {"org": world.globex_id}))
        member_id = ids["organization"]["members"]["edges"][0]["node"]["id"]
        entry_id = ids["auditLog"]["edges"][0]["node"]["id"]
        # when acme's admin reaches for them by id, they do not exist
        for node_id in (invitation_id, key_id, entry_id, member_id, world.globex_id):
            assert data(await world.run("admin", NODE, {"id": node_id}))["node"] is None, node_id
        revoking = await world.run("admin", REVOKE_INVITATION, {"id": invitation_id})
        unknown = await world.run("admin", REVOKE_INVITATION, {"id": gid("Invitation", 1_000_000)})
        assert code(revoking) == code(unknown) == "NOT_FOUND"
        assert revoking["errors"][0]["message"] == unknown["errors"][0]["message"]
        assert code(await world.run("admin", REVOKE_KEY, {"id": key_id})) == "NOT_FOUND"
        # and globex's key still works
        secret = created_key["secret"]
        assert "errors" not in await gql(world.http, "{ organizations { totalCount } }", token=secret)


class TestApiKeysStayInTheirOrganisation:
    async def test_a_key_of_acme_sees_only_acme_sessions(self, world: World, engine: AsyncEngine) -> None:
        # given a session in each organisation and a sessions:read key of acme
        ours = await make_session_in(engine, organization_id=world.acme, charge_point_id="CP-ACME")
        await make_session_in(engine, organization_id=world.globex, charge_point_id="CP-GLOBEX")
        key = await make_api_key(
            engine, organization_id=world.acme, permissions=frozenset({Permission.SESSIONS_READ})
        )
        # then it lists only acme's and cannot reach globex
        listed = data(await gql(world.http, TRANSACTIONS, token=key))["transactions"]["edges"]
        assert [e["node"]["id"] for e in listed] == [gid("Transaction", ours)]
        organization = "query($org: ID!) { organization(id: $org) { slug } }"
        assert (
            data(await gql(world.http, organization, {"org": world.globex_id}, token=key))["organization"]
            is None
        )
        assert code(await gql(world.http, AUDIT_LOG, {"org": world.globex_id}, token=key)) == "NOT_FOUND"
