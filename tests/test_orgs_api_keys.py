"""API keys for integrations: shown once, used, listed without their secret, revoked at once,
and never more powerful than the person who made them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth.roles import Permission
from tests.account_builders import make_api_key
from tests.conftest import ApiServer
from tests.graphql_client import data, gql
from tests.orgs_world import World, build_world, code

CREATE = """mutation($org: ID!, $name: String!, $perms: [Permission!]!, $expires: DateTime) {
  createApiKey(organizationId: $org, name: $name, permissions: $perms, expiresAt: $expires) {
    secret apiKey { id name prefix permissions } } }"""
KEYS = """query($org: ID!) { apiKeys(organizationId: $org) { totalCount edges { node {
  name prefix permissions createdAt createdByUserId lastUsedAt expiresAt revokedAt } } } }"""
REVOKE = "mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }"
TRANSACTIONS = "{ transactions(first: 1) { totalCount } }"
CHANGE_ROLE = """mutation($org: ID!, $user: ID!) {
  changeMemberRole(organizationId: $org, userId: $user, role: ADMIN) { role } }"""
INVITE = """mutation($org: ID!) {
  inviteMember(organizationId: $org, email: "friend@example.com", role: VIEWER) { id } }"""
SECRET_FORMAT = re.compile(r"^cnk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$")


@pytest.fixture
async def world(engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient) -> World:
    return await build_world(engine, api_server.app.state.auth.keys, http)


def new_key(world: World, perms: list[str], **extra: object) -> dict[str, Any]:
    return {"org": world.acme_id, "name": "Billing export", "perms": perms, **extra}


class TestKeyLifecycle:
    async def test_shown_once_used_listed_and_revoked_at_once(self, world: World) -> None:
        # when an admin creates a key that may read sessions
        created = data(await world.run("admin", CREATE, new_key(world, ["SESSIONS_READ", "NETWORK_READ"])))
        secret = created["createApiKey"]["secret"]
        key = created["createApiKey"]["apiKey"]
        # then the secret has the credential's format and the key shows how it starts
        assert SECRET_FORMAT.match(secret), secret
        assert secret.startswith(key["prefix"] + "_")
        assert key["permissions"] == ["NETWORK_READ", "SESSIONS_READ"]
        listed = data(await world.run("admin", KEYS, {"org": world.acme_id}))["apiKeys"]["edges"][0]["node"]
        assert listed["createdByUserId"] == world.account("admin")
        assert listed["lastUsedAt"] is None and listed["revokedAt"] is None
        assert secret.split("_", 2)[2] not in str(listed)
        # when the integration uses it, its use is recorded
        assert data(await gql(world.http, TRANSACTIONS, token=secret))["transactions"]["totalCount"] == 0
        listed = data(await world.run("admin", KEYS, {"org": world.acme_id}))["apiKeys"]["edges"][0]["node"]
        assert listed["lastUsedAt"] is not None
        # when it is revoked, the very next request with it is refused
        revoked = data(await world.run("admin", REVOKE, {"id": key["id"]}))["revokeApiKey"]
        assert revoked["revokedAt"] is not None
        await gql(world.http, TRANSACTIONS, token=secret, status=401)


class TestWhatAKeyMayHold:
    async def test_a_subset_of_the_creators_permissions_without_people_or_keys(self, world: World) -> None:
        past = datetime(2020, 1, 1, tzinfo=UTC).isoformat()
        refusals = [
            ("admin", new_key(world, []), "INVALID_INPUT"),
            ("admin", new_key(world, ["MEMBERS_MANAGE"]), "INVALID_INPUT"),
            ("owner", new_key(world, ["API_KEYS_MANAGE"]), "INVALID_INPUT"),
            ("admin", new_key(world, ["ORG_MANAGE"]), "FORBIDDEN"),  # admins do not hold it
            ("admin", new_key(world, ["SESSIONS_READ"], expires=past), "INVALID_INPUT"),
            ("operator", new_key(world, ["SESSIONS_READ"]), "FORBIDDEN"),  # no apikeys:manage
        ]
        for who, variables, expected in refusals:
            assert code(await world.run(who, CREATE, variables)) == expected, (who, variables)
        created = await world.run(
            "owner", CREATE, new_key(world, ["ORG_MANAGE"], expires="2999-01-01T00:00:00Z")
        )
        assert data(created)["createApiKey"]["apiKey"]["permissions"] == ["ORG_MANAGE"]

    async def test_a_key_never_manages_keys_or_people_whatever_it_holds(
        self, world: World, engine: AsyncEngine
    ) -> None:
        # given a key that somehow holds every permission of acme
        key = await make_api_key(engine, organization_id=world.acme, permissions=frozenset(Permission))
        # then it still cannot mint keys, invite, or change members
        attempts: list[tuple[str, dict[str, Any]]] = [
            (CREATE, new_key(world, ["SESSIONS_READ"])),
            (INVITE, {"org": world.acme_id}),
            (CHANGE_ROLE, {"org": world.acme_id, "user": world.account("viewer")}),
        ]
        for document, variables in attempts:
            assert code(await gql(world.http, document, variables, token=key)) == "FORBIDDEN", document
