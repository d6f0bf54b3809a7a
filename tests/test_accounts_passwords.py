"""Sign-in errors, brute-force limits, password reset and change, the password policy and cost."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.accounts import passwords
from api.auth.ratelimit import ACCOUNT_BUDGET, RateLimiter
from schema.errors import InvalidInput
from tests.account_builders import DEFAULT_PASSWORD, make_user, sign_in
from tests.accounts_api import (
    CHANGE,
    CHEAP_QUERY,
    NEW_PASSWORD,
    REFRESH,
    REQUEST_RESET,
    RESET,
    error_code,
    latest_token,
    log_in,
    mails,
    unique_email,
)
from tests.conftest import ApiServer
from tests.graphql_client import data, gql

MIN_HASH_S = 0.05


class TestSignInErrors:
    async def test_unknown_email_wrong_password_and_social_only_look_the_same(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a password account and an account that only signs in with Google
        known = unique_email("known")
        social = unique_email("social")
        await make_user(engine, email=known)
        await make_user(engine, email=social, password=None)
        # when each is tried with a wrong password, and an unknown address too
        wrong_password = await log_in(http, known, "wrong-password-123")
        no_password = await log_in(http, social, "wrong-password-123")
        started = time.perf_counter()
        unknown = await log_in(http, unique_email("nobody"), "wrong-password-123")
        unknown_s = time.perf_counter() - started
        # then the answers are identical
        assert wrong_password == no_password == unknown
        assert error_code(unknown) == "INVALID_CREDENTIALS"
        assert unknown["errors"][0]["message"] == "email or password is wrong"
        # and an unknown address costs a password verification like a known one
        assert unknown_s >= MIN_HASH_S


class TestBruteForceLimit:
    async def test_an_account_is_locked_out_after_its_budget_then_backs_off(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a limiter on a clock the test controls
        now = [1_000.0]
        api_server.app.state.auth.limiter = RateLimiter(clock=lambda: now[0])
        email = unique_email("target")
        await make_user(engine, email=email)
        # when the account's budget of wrong guesses is spent, plus one that starts the backoff
        for _ in range(ACCOUNT_BUDGET + 1):
            assert error_code(await log_in(http, email, "guess-guess-guess")) == "INVALID_CREDENTIALS"
        # then even the right password is refused for now, with a hint when to retry
        limited = await log_in(http, email, DEFAULT_PASSWORD)
        assert error_code(limited) == "RATE_LIMITED"
        assert limited["errors"][0]["extensions"]["retryAfterSeconds"] == "1"
        # and another account from the same address is not affected
        other = unique_email("bystander")
        await make_user(engine, email=other)
        data(await log_in(http, other, DEFAULT_PASSWORD))
        # when the backoff has passed, the right password works again
        now[0] += 1.5
        data(await log_in(http, email, DEFAULT_PASSWORD))


class TestPasswordReset:
    async def test_reset_by_mail_ends_every_session_and_the_link_works_once(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a driver signed in on two devices who forgot the password
        email = unique_email("forgetful")
        user = await make_user(engine, email=email)
        keys = api_server.app.state.auth.keys
        phone = await sign_in(engine, keys, user_id=user, device="phone")
        tablet = await sign_in(engine, keys, user_id=user, device="tablet")
        made_up = await gql(http, RESET, {"token": "made-up", "password": NEW_PASSWORD})
        assert error_code(made_up) == "INVALID_TOKEN"
        # when they ask twice for a reset link; only the newest one counts
        data(await gql(http, REQUEST_RESET, {"email": email.upper()}))
        first = latest_token(api_server, email, "password_reset", "reset-password")
        data(await gql(http, REQUEST_RESET, {"email": email}))
        token = latest_token(api_server, email, "password_reset", "reset-password")
        assert "http://127.0.0.1:8000/reset-password?token=" in mails(api_server, email)[-1].body
        assert error_code(await gql(http, RESET, {"token": first, "password": NEW_PASSWORD})) == (
            "INVALID_TOKEN"
        )
        # and a weak new password is refused without spending the link
        assert error_code(await gql(http, RESET, {"token": token, "password": "1234567890"})) == (
            "INVALID_INPUT"
        )
        assert data(await gql(http, RESET, {"token": token, "password": NEW_PASSWORD}))["resetPassword"]
        # then every device is signed out at once
        for pair in (phone, tablet):
            await gql(http, CHEAP_QUERY, token=pair.access_token, status=401)
            assert error_code(await gql(http, REFRESH, {"token": pair.refresh_token})) == "UNAUTHENTICATED"
        # and only the new password signs in
        assert error_code(await log_in(http, email, DEFAULT_PASSWORD)) == "INVALID_CREDENTIALS"
        data(await log_in(http, email, NEW_PASSWORD))
        # and the link cannot be used again
        reused = await gql(http, RESET, {"token": token, "password": "another-fine-passphrase"})
        assert error_code(reused) == "INVALID_TOKEN"

    async def test_requests_answer_the_same_for_unknown_addresses(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        known = unique_email("known")
        await make_user(engine, email=known, password=None)
        unknown = unique_email("unknown")
        on_known = await gql(http, REQUEST_RESET, {"email": known})
        on_unknown = await gql(http, REQUEST_RESET, {"email": unknown})
        assert on_known == on_unknown
        assert [m.kind for m in mails(api_server, known)] == ["password_reset"]
        assert mails(api_server, unknown) == []

    async def test_reset_mail_to_one_address_is_rate_limited(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        email = unique_email("bombed")
        await make_user(engine, email=email, password=None)
        codes = [
            error_code(r) if "errors" in r else "OK"
            for r in [await gql(http, REQUEST_RESET, {"email": email}) for _ in range(6)]
        ]
        assert codes[:4] == ["OK"] * 4
        assert "RATE_LIMITED" in codes[4:]
        assert len(mails(api_server, email)) == 4


class TestChangePassword:
    async def test_changing_keeps_this_device_and_signs_out_the_others(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a driver signed in on two devices
        email = unique_email("careful")
        user = await make_user(engine, email=email)
        keys = api_server.app.state.auth.keys
        here = await sign_in(engine, keys, user_id=user, device="here")
        elsewhere = await sign_in(engine, keys, user_id=user, device="elsewhere")
        change = {"current": DEFAULT_PASSWORD, "new": NEW_PASSWORD}
        # when the current password is wrong, or the new one too common
        wrong = await gql(http, CHANGE, {**change, "current": "not-my-password"}, token=here.access_token)
        common = await gql(http, CHANGE, {**change, "new": "password123"}, token=here.access_token)
        # then nothing changes
        assert error_code(wrong) == "INVALID_CREDENTIALS"
        assert error_code(common) == "INVALID_INPUT"
        data(await gql(http, CHEAP_QUERY, token=elsewhere.access_token))
        # when it is right
        assert data(await gql(http, CHANGE, change, token=here.access_token))["changePassword"] is True
        # then this device stays signed in and the other one is signed out
        data(await gql(http, CHEAP_QUERY, token=here.access_token))
        data(await gql(http, REFRESH, {"token": here.refresh_token}))
        await gql(http, CHEAP_QUERY, token=elsewhere.access_token, status=401)
        data(await log_in(http, email, NEW_PASSWORD))


class TestPasswordPolicy:
    @pytest.mark.parametrize(
        "password",
        ["123456789", "1234567890", "PassWord123", "anna.driver", "anna.driver@example.com", "y" * 257],
    )
    def test_refused(self, password: str) -> None:
        with pytest.raises(InvalidInput):
            passwords.check_policy(password, email="Anna.Driver@example.com")

    @pytest.mark.parametrize("password", ["correct horse battery", "z" * 256, "ünïcödé-pässwörd"])
    def test_accepted(self, password: str) -> None:
        passwords.check_policy(password, email="anna.driver@example.com")

    def test_the_bundled_list_holds_only_long_lower_case_entries(self) -> None:
        common = passwords.common_passwords()
        assert len(common) >= 300
        assert all(len(p) >= passwords.MIN_LENGTH and p == p.lower() for p in common)


class TestHashCost:
    async def test_one_hash_takes_at_least_50_ms(self) -> None:
        started = time.perf_counter()
        stored = await passwords.hash_password("a-reasonable-passphrase")
        assert time.perf_counter() - started >= MIN_HASH_S
        assert stored.startswith("$argon2id$")
        assert await passwords.verify_password("a-reasonable-passphrase", stored) == (True, None)
