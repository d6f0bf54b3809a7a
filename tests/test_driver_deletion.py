"""Deleting one's own account: personal data erased, charging sessions kept anonymised."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth.roles import Role
from schema.account_models import ExternalIdentity
from schema.db import session_factory
from schema.models import Transaction
from schema.timeutil import utcnow
from tests.account_builders import DEFAULT_PASSWORD, add_member, give_token, make_user, sign_in
from tests.builders import make_org, make_station
from tests.conftest import ApiServer
from tests.graphql_client import data, gql
from tests.test_driver_profile import error_code, unique_email

DELETE = "mutation($input: DeleteAccountInput!) { deleteAccount(input: $input) }"
ME = "{ me { email } }"
UPDATE_PROFILE = """
mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { displayName } }
"""
ADD_VEHICLE = 'mutation { addVehicle(input: {make: "Kia", model: "EV6"}) { id } }'


async def _rows(engine: AsyncEngine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql), params)).all()]


class TestDeleteAccount:
    async def test_erases_personal_data_and_keeps_the_sessions_anonymised(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a driver with a profile, a car, a Google login, a card, two devices, a staff
        # role and a finished charging session
        email = unique_email("anna")
        user = await make_user(engine, email=email)
        keys = api_server.app.state.auth.keys
        phone = await sign_in(engine, keys, user_id=user, device="phone")
        laptop = await sign_in(engine, keys, user_id=user, device="laptop")
        token = phone.access_token
        data(
            await gql(
                http,
                UPDATE_PROFILE,
                {"input": {"displayName": "Anna", "phone": "+4915123456789", "billingAddress": "Weg 1"}},
                token=token,
            )
        )
        data(await gql(http, ADD_VEHICLE, token=token))
        await give_token(engine, user_id=user, token="ANNA0001")
        org = await make_org(engine, slug="acme")
        await add_member(engine, user_id=user, organization_id=org, role=Role.VIEWER)
        station = await make_station(engine, charge_point_id="CP-DEL")
        async with session_factory(engine)() as s:
            s.add(ExternalIdentity(user_id=user, provider="apple", subject=uuid.uuid4().hex, email=email))
            s.add(
                Transaction(
                    station_id=station,
                    connector_id=1,
                    id_tag="ANNA0001",
                    user_id=user,
                    start_key="1:del",
                    state="Completed",
                    started_at=utcnow() - timedelta(hours=1),
                    stopped_at=utcnow(),
                    meter_stop_wh=12_345,
                    energy_wh=12_345,
                )
            )
            await s.commit()
        # when she deletes her account, confirming with her password
        assert data(await gql(http, DELETE, {"input": {"password": DEFAULT_PASSWORD}}, token=token)) == {
            "deleteAccount": True
        }
        # then every device is signed out at once
        await gql(http, ME, token=token, status=401)
        await gql(http, ME, token=laptop.access_token, status=401)
        # and nothing personal is left
        account = await _rows(
            engine,
            "SELECT email, email_verified_at, display_name, phone, billing_address, password_hash,"
            " deleted_at IS NOT NULL FROM user_account WHERE id = :u",
            u=user,
        )
        assert account == [(None, None, None, None, None, None, True)]
        for table in ("vehicle", "external_identity", "membership", "id_token"):
            assert await _rows(engine, f"SELECT id FROM {table} WHERE user_id = :u", u=user) == [], table
        assert await _rows(
            engine, "SELECT status, user_id, label FROM id_token WHERE token = 'ANNA0001'"
        ) == [("Blocked", None, None)]
        assert (
            await _rows(
                engine,
                "SELECT device_name, user_agent, ip_address, revoked_at IS NOT NULL"
                " FROM auth_session WHERE user_id = :u",
                u=user,
            )
            == [(None, None, None, True)] * 2
        )
        # but the session she charged is still there for the operator, without her card
        assert await _rows(
            engine,
            "SELECT energy_wh, station_id, user_id, id_tag FROM charging_transaction WHERE user_id = :u",
            u=user,
        ) == [(12_345, station, user, None)]
        # and her email address is free for a new account
        assert await make_user(engine, email=email, password=None) != user

    async def test_a_password_account_must_confirm_with_the_right_password(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a driver with a password
        user = await make_user(engine, email=unique_email("ben"))
        token = (await sign_in(engine, api_server.app.state.auth.keys, user_id=user)).access_token
        # when the deletion comes without it, or with a wrong one
        missing = await gql(http, DELETE, {"input": {}}, token=token)
        wrong = await gql(http, DELETE, {"input": {"password": "not-my-password"}}, token=token)
        # then it is refused and the account stays
        assert (error_code(missing), error_code(wrong)) == ("INVALID_INPUT", "INVALID_CREDENTIALS")
        assert data(await gql(http, ME, token=token))["me"]["email"].startswith("ben-")


class TestLastOwner:
    async def test_the_only_owner_of_an_organisation_cannot_leave_it_ownerless(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given the only owner of acme, who signs in with Apple only (no password to confirm)
        owner = await make_user(engine, email=unique_email("carla"), password=None)
        org = await make_org(engine, slug="acme")
        await add_member(engine, user_id=owner, organization_id=org, role=Role.OWNER)
        token = (await sign_in(engine, api_server.app.state.auth.keys, user_id=owner)).access_token
        # when she deletes her account, then she is told to hand over first
        refused = await gql(http, DELETE, {"input": {}}, token=token)
        assert error_code(refused) == "LAST_OWNER"
        assert "Acme" in refused["errors"][0]["message"]
        assert data(await gql(http, ME, token=token))["me"]["email"].startswith("carla-")
        # when a second owner joins, then she can go
        other = await make_user(engine, email=unique_email("dan"), password=None)
        await add_member(engine, user_id=other, organization_id=org, role=Role.OWNER)
        assert data(await gql(http, DELETE, {"input": {}}, token=token)) == {"deleteAccount": True}
        assert await _rows(
            engine, "SELECT user_id, role FROM membership WHERE organization_id = :o", o=org
        ) == [(other, "owner")]
