"""Inviting people by email: the mailed link, who may accept it, and that it works once."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from api.auth.roles import Role
from api.notify.email import OutboxMailer
from schema.account_models import Invitation, UserAccount
from schema.timeutil import utcnow
from tests.account_builders import add_member
from tests.conftest import ApiServer
from tests.graphql_client import data
from tests.orgs_world import World, build_world, code

DEFAULT_APP_URL = "http://127.0.0.1:8000"
INVITE = """mutation($org: ID!, $email: String!, $role: Role!) {
  inviteMember(organizationId: $org, email: $email, role: $role) { id email role status expiresAt } }"""
ACCEPT = "mutation($token: String!) { acceptInvitation(token: $token) { slug myRole } }"
REVOKE = "mutation($id: ID!) { revokeInvitation(id: $id) { status revokedAt } }"
INVITATIONS = """query($org: ID!, $pending: Boolean!) {
  invitations(organizationId: $org, pendingOnly: $pending) {
    totalCount edges { node { email role status invitedByUserId acceptedByUserId } } } }"""


@pytest.fixture
async def world(engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient) -> World:
    return await build_world(engine, api_server.app.state.auth.keys, http)


@pytest.fixture
def outbox(api_server: ApiServer) -> OutboxMailer:
    mailer = api_server.app.state.auth.mailer
    assert isinstance(mailer, OutboxMailer)
    return mailer


def token_from(outbox: OutboxMailer, to: str) -> str:
    email = outbox.latest(to, "invitation")
    assert email is not None, f"no invitation mailed to {to}"
    link = next(word for word in email.body.split() if "/accept-invitation?token=" in word)
    return link.split("token=", 1)[1]


async def invite(world: World, email: str, role: str = "OPERATOR", *, by: str = "admin") -> dict[str, str]:
    result = await world.run(by, INVITE, {"org": world.acme_id, "email": email, "role": role})
    return data(result)["inviteMember"]  # type: ignore[no-any-return]


class TestInvitingAndAccepting:
    async def test_the_invited_person_joins_with_the_role_once(
        self, world: World, outbox: OutboxMailer, api_server: ApiServer
    ) -> None:
        # given an admin invites the outsider (by their address, in any case) as operator
        invitation = await invite(world, "Outsider@Example.com")
        assert invitation["email"] == "outsider@example.com" and invitation["status"] == "PENDING"
        # then a link to the app is mailed
        mail = outbox.latest("outsider@example.com", "invitation")
        assert mail is not None and "Acme" in mail.subject
        assert f"{DEFAULT_APP_URL}/accept-invitation?token=" in mail.body
        token = token_from(outbox, "outsider@example.com")
        # when the outsider accepts
        joined = data(await world.run("outsider", ACCEPT, {"token": token}))["acceptInvitation"]
        # then they are an operator of acme, at once
        assert joined == {"slug": "acme", "myRole": "OPERATOR"}
        orgs = data(await world.run("outsider", "{ organizations { edges { node { slug } } } }"))
        assert orgs["organizations"]["edges"] == [{"node": {"slug": "acme"}}]
        # and the link does not work a second time
        assert code(await world.run("outsider", ACCEPT, {"token": token})) == "INVALID_TOKEN"
        listed = data(await world.run("admin", INVITATIONS, {"org": world.acme_id, "pending": False}))
        node = listed["invitations"]["edges"][0]["node"]
        assert node["status"] == "ACCEPTED"
        assert node["invitedByUserId"] == world.account("admin")
        assert node["acceptedByUserId"] == world.account("outsider")

    async def test_inviting_again_replaces_the_pending_invitation(
        self, world: World, outbox: OutboxMailer
    ) -> None:
        await invite(world, "outsider@example.com", "VIEWER")
        first = token_from(outbox, "outsider@example.com")
        await invite(world, "outsider@example.com", "FINANCE")
        assert code(await world.run("outsider", ACCEPT, {"token": first})) == "INVALID_TOKEN"
        pending = data(await world.run("admin", INVITATIONS, {"org": world.acme_id, "pending": True}))
        assert [e["node"]["role"] for e in pending["invitations"]["edges"]] == ["FINANCE"]
        latest = token_from(outbox, "outsider@example.com")
        joined = data(await world.run("outsider", ACCEPT, {"token": latest}))["acceptInvitation"]
        assert joined["myRole"] == "FINANCE"

    async def test_accepting_as_a_member_never_lowers_the_role(
        self, world: World, outbox: OutboxMailer, engine: AsyncEngine
    ) -> None:
        # given the outsider is invited as admin, but joins as viewer in the meantime
        await invite(world, "outsider@example.com", "ADMIN")
        await add_member(
            engine, user_id=world.users["outsider"], organization_id=world.acme, role=Role.VIEWER
        )
        # when they accept, their role is raised to the invited one
        token = token_from(outbox, "outsider@example.com")
        joined = data(await world.run("outsider", ACCEPT, {"token": token}))["acceptInvitation"]
        assert joined["myRole"] == "ADMIN"


class TestWhoMayAccept:
    async def test_only_the_verified_owner_of_the_invited_address(
        self, world: World, outbox: OutboxMailer, engine: AsyncEngine
    ) -> None:
        # given an invitation to the outsider, whose address is not verified any more
        await invite(world, "outsider@example.com")
        token = token_from(outbox, "outsider@example.com")
        async with engine.begin() as conn:
            await conn.execute(
                update(UserAccount)
                .where(col(UserAccount.id) == world.users["outsider"])
                .values(email_verified_at=None)
            )
        # then neither someone the link was forwarded to nor the unverified account may accept
        assert code(await world.run("globex-admin", ACCEPT, {"token": token})) == "INVITATION_EMAIL_MISMATCH"
        assert code(await world.run("outsider", ACCEPT, {"token": token})) == "INVITATION_EMAIL_MISMATCH"


class TestDeadInvitations:
    async def test_revoked_and_expired_links_are_invalid(
        self, world: World, outbox: OutboxMailer, engine: AsyncEngine
    ) -> None:
        # given one revoked invitation and one past its 7 days
        revoked = await invite(world, "outsider@example.com")
        revoked_token = token_from(outbox, "outsider@example.com")
        revoking = data(await world.run("admin", REVOKE, {"id": revoked["id"]}))["revokeInvitation"]
        assert revoking["status"] == "REVOKED"
        await invite(world, "outsider@example.com", "VIEWER")
        expired_token = token_from(outbox, "outsider@example.com")
        async with engine.begin() as conn:
            await conn.execute(
                update(Invitation)
                .where(col(Invitation.revoked_at).is_(None))
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        # then neither lets anyone in
        for token in (revoked_token, expired_token, "not-a-token"):
            assert code(await world.run("outsider", ACCEPT, {"token": token})) == "INVALID_TOKEN"
        orgs = data(await world.run("outsider", "{ organizations { totalCount } }"))["organizations"]
        assert orgs["totalCount"] == 0


class TestInvitationRules:
    async def test_no_owner_invitations_from_admins_and_no_current_members(self, world: World) -> None:
        owner = {"org": world.acme_id, "email": "x@example.com", "role": "OWNER"}
        member = {"org": world.acme_id, "email": "viewer@example.com", "role": "ADMIN"}
        assert code(await world.run("admin", INVITE, owner)) == "FORBIDDEN"
        assert code(await world.run("admin", INVITE, member)) == "INVALID_INPUT"
