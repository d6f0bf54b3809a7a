"""Sign-up through the API: confirmation mail, verification, tokens, sign-out, no enumeration."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.account_builders import DEFAULT_PASSWORD, make_user
from tests.accounts_api import (
    CHEAP_QUERY,
    LOG_OUT,
    REFRESH,
    RESEND,
    SESSIONS,
    VERIFY_EMAIL,
    error_code,
    latest_token,
    log_in,
    mails,
    sign_up,
    unique_email,
)
from tests.conftest import ApiServer
from tests.graphql_client import data, gql

PASSWORD = "amber-wind-turbine-7"


class TestSignUpToSignedIn:
    async def test_sign_up_confirm_refresh_and_log_out(
        self, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a new driver signing up
        email = unique_email("Anna")
        answer = data(await sign_up(http, email.upper(), PASSWORD, displayName="Anna"))
        assert answer["signUp"]["message"] == "Check your email to finish signing up."
        # when they open the link from the confirmation mail
        [mail] = mails(api_server, email.lower(), "verify_email")
        assert "http://127.0.0.1:8000/verify-email?token=" in mail.body
        token = latest_token(api_server, email.lower(), "verify_email", "verify-email")
        verified = data(await gql(http, VERIFY_EMAIL, {"token": token, "device": {"name": "Anna's phone"}}))
        pair = verified["verifyEmail"]
        # then they are signed in on that device
        [session] = data(await gql(http, SESSIONS, token=pair["accessToken"]))["authSessions"]
        assert session["current"] is True
        assert session["deviceName"] == "Anna's phone"
        assert session["method"] == "email_link"
        assert session["id"] == pair["sessionId"]
        # and the link works only once
        assert error_code(await gql(http, VERIFY_EMAIL, {"token": token})) == "INVALID_TOKEN"

        # when the app refreshes, the refresh token rotates
        second = data(await gql(http, REFRESH, {"token": pair["refreshToken"]}))["refreshToken"]
        assert second["refreshToken"] != pair["refreshToken"]
        assert second["sessionId"] == pair["sessionId"]
        data(await gql(http, CHEAP_QUERY, token=second["accessToken"]))
        # when the old refresh token is replayed
        replay = await gql(http, REFRESH, {"token": pair["refreshToken"]})
        # then it is refused and the whole family dies: the newest token and access too
        assert error_code(replay) == "UNAUTHENTICATED"
        assert error_code(await gql(http, REFRESH, {"token": second["refreshToken"]})) == "UNAUTHENTICATED"
        await gql(http, CHEAP_QUERY, token=second["accessToken"], status=401)

        # when they sign in again with their password and then sign out
        third = data(await log_in(http, email, PASSWORD, device="laptop"))["logIn"]
        assert data(await gql(http, LOG_OUT, token=third["accessToken"]))["logOut"] is True
        # then that session's tokens stop working at once
        await gql(http, CHEAP_QUERY, token=third["accessToken"], status=401)
        assert error_code(await gql(http, REFRESH, {"token": third["refreshToken"]})) == "UNAUTHENTICATED"


class TestUnverifiedAccounts:
    async def test_signing_in_before_confirming_is_refused_and_resends_the_link(
        self, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a sign-up whose mail was not opened
        email = unique_email("ben")
        data(await sign_up(http, email, PASSWORD))
        # when they sign in with the right password
        result = await log_in(http, email, PASSWORD)
        # then they are asked to confirm first, and get a fresh link
        assert error_code(result) == "EMAIL_NOT_VERIFIED"
        assert "data" not in result or result["data"] is None
        assert len(mails(api_server, email, "verify_email")) == 2
        # and a wrong password still says only that the credentials are wrong
        assert error_code(await log_in(http, email, "not-the-password-1")) == "INVALID_CREDENTIALS"
        # and the newest link signs them in
        token = latest_token(api_server, email, "verify_email", "verify-email")
        data(await gql(http, VERIFY_EMAIL, {"token": token}))
        data(await log_in(http, email, PASSWORD))

    async def test_resending_answers_the_same_for_any_address(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given one unconfirmed and one confirmed account
        waiting = unique_email("waiting")
        confirmed = unique_email("confirmed")
        await make_user(engine, email=waiting, verified=False, password=None)
        await make_user(engine, email=confirmed, password=None)
        # when a link is asked for each of them and for an unknown address
        answers = [
            await gql(http, RESEND, {"email": address})
            for address in (waiting, confirmed, unique_email("nobody"))
        ]
        # then the answers are identical and only the unconfirmed account gets mail
        assert answers[0] == answers[1] == answers[2]
        assert len(mails(api_server, waiting, "verify_email")) == 1
        assert mails(api_server, confirmed) == []


class TestNoEnumeration:
    async def test_signing_up_with_a_taken_address_looks_the_same(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given an existing account
        taken = unique_email("taken")
        await make_user(engine, email=taken)
        fresh = unique_email("fresh")
        # when someone signs up with it and with a fresh address
        on_taken = await sign_up(http, taken, PASSWORD)
        on_fresh = await sign_up(http, fresh, PASSWORD)
        # then both answers are identical
        assert on_taken == on_fresh
        # and the owner is told they already have an account, with no way in for the caller
        [notice] = mails(api_server, taken)
        assert notice.kind == "account_exists"
        assert "token=" not in notice.body
        assert [m.kind for m in mails(api_server, fresh)] == ["verify_email"]
        # and the existing password still works, the new one does not
        data(await log_in(http, taken, DEFAULT_PASSWORD))
        assert error_code(await log_in(http, taken, PASSWORD)) == "INVALID_CREDENTIALS"


class TestSignUpValidation:
    async def test_weak_passwords_are_refused(self, api_server: ApiServer, http: httpx.AsyncClient) -> None:
        email = unique_email("carla.driver")
        weak = {
            "too short": "short-1",
            "common, any case": "Password123",
            "keyboard run": "QWERTYUIOP",
            "too long": "x" * 257,
            "the email's local part": email.partition("@")[0].upper(),
            "the email": email,
        }
        for reason, password in weak.items():
            assert error_code(await sign_up(http, email, password)) == "INVALID_INPUT", reason
        assert mails(api_server, email) == []

    async def test_malformed_addresses_are_refused(self, http: httpx.AsyncClient) -> None:
        for email in (
            "no-at-sign.example.com",
            "a@b",
            "two@@example.com",
            "sp ace@ex.com",
            "tab\t@example.com",
        ):
            assert error_code(await sign_up(http, email, PASSWORD)) == "INVALID_INPUT", email
