"""Sign in with Google / Apple against a real API and real JWKS endpoints with local RSA keys.

An unverified provider email never links to an existing account: the driver gets a separate
account that does not carry the address (see `api.accounts.social_service`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from api.auth.oidc import (
    APPLE_ISSUERS,
    DEFAULT_JWKS_MAX_AGE_S,
    GOOGLE,
    GOOGLE_ISSUERS,
    MAX_JWKS_MAX_AGE_S,
    MIN_REFETCH_INTERVAL_S,
    InvalidIdToken,
    OidcVerifier,
    ProviderConfig,
)
from schema.account_models import AuthSession, ExternalIdentity, UserAccount
from schema.db import session_factory
from schema.timeutil import utcnow
from tests.account_builders import make_user, sign_in
from tests.conftest import ApiServer, ApiServerFactory
from tests.graphql_client import data, gql
from tests.jwks_server import FakeProvider, serving

GOOGLE_CLIENT_ID = "chargenet-android.apps.googleusercontent.com"
OTHER_GOOGLE_CLIENT_ID = "chargenet-web.apps.googleusercontent.com"
APPLE_CLIENT_ID = "net.chargenet.app"

SIGN_IN_WITH_GOOGLE = """
mutation SignIn($input: GoogleSignInInput!) {
  signInWithGoogle(input: $input) { accessToken accessTokenExpiresAt refreshToken sessionId }
}"""
SIGN_IN_WITH_APPLE = """
mutation SignIn($input: AppleSignInInput!) {
  signInWithApple(input: $input) { accessToken refreshToken sessionId }
}"""
MY_SESSIONS = "{ transactions(first: 5) { totalCount } }"


# --- fixtures and helpers ---


@pytest.fixture
async def providers() -> AsyncIterator[tuple[FakeProvider, FakeProvider]]:
    google = FakeProvider(issuer=GOOGLE_ISSUERS[0], audience=GOOGLE_CLIENT_ID, kid="google-1")
    apple = FakeProvider(issuer=APPLE_ISSUERS[0], audience=APPLE_CLIENT_ID, kid="apple-1")
    apple.cache_control = None  # Apple sends no max-age
    async with serving(google, apple):
        yield google, apple


@pytest.fixture
def google(providers: tuple[FakeProvider, FakeProvider]) -> FakeProvider:
    return providers[0]


@pytest.fixture
def apple(providers: tuple[FakeProvider, FakeProvider]) -> FakeProvider:
    return providers[1]


@pytest.fixture
async def server(
    engine: AsyncEngine, api_server_factory: ApiServerFactory, google: FakeProvider, apple: FakeProvider
) -> ApiServer:
    """An API with both providers enabled."""
    return await api_server_factory(
        CHARGENET_GOOGLE_CLIENT_IDS=f"{GOOGLE_CLIENT_ID}, {OTHER_GOOGLE_CLIENT_ID}",
        CHARGENET_GOOGLE_JWKS_URL=google.jwks_url,
        CHARGENET_APPLE_CLIENT_IDS=APPLE_CLIENT_ID,
        CHARGENET_APPLE_JWKS_URL=apple.jwks_url,
    )


@pytest.fixture
async def http(server: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as client:
        yield client


async def google_sign_in(http: httpx.AsyncClient, id_token: str, **fields: Any) -> dict[str, Any]:
    return await gql(http, SIGN_IN_WITH_GOOGLE, {"input": {"idToken": id_token, **fields}})


async def apple_sign_in(http: httpx.AsyncClient, id_token: str, **fields: Any) -> dict[str, Any]:
    return await gql(http, SIGN_IN_WITH_APPLE, {"input": {"idToken": id_token, **fields}})


def error_code(result: dict[str, Any]) -> str:
    assert result.get("data") is None, result
    return str(result["errors"][0]["extensions"]["code"])


async def user_behind(server: ApiServer, access_token: str) -> int | None:
    principal = await server.app.state.auth.authenticator.principal_for(f"Bearer {access_token}")
    return principal.user_id  # type: ignore[no-any-return]


async def accounts(engine: AsyncEngine) -> list[UserAccount]:
    async with session_factory(engine)() as s:
        return list((await s.exec(select(UserAccount).order_by(col(UserAccount.id)))).all())


async def identities(engine: AsyncEngine) -> list[tuple[str, str, int]]:
    async with session_factory(engine)() as s:
        rows = (await s.exec(select(ExternalIdentity).order_by(col(ExternalIdentity.id)))).all()
        return [(row.provider, row.subject, row.user_id) for row in rows]


# --- accounts ---


class TestFirstSignIn:
    async def test_a_google_sign_in_creates_the_account_and_its_token_works(
        self, engine: AsyncEngine, server: ApiServer, http: httpx.AsyncClient, google: FakeProvider
    ) -> None:
        # given a Google account nobody has used here yet
        token = google.id_token(sub="g-111", email="Anna@Example.com", nonce="n-1", name="Anna Example")
        # when the app signs in with its ID token
        payload = data(await google_sign_in(http, token, nonce="n-1", device={"name": "Anna's Pixel"}))
        # then a verified, password-less account exists, named by Google, linked to the subject
        [user] = await accounts(engine)
        assert (user.email, user.password_hash, user.display_name) == (
            "anna@example.com",
            None,
            "Anna Example",
        )
        assert user.email_verified_at is not None
        assert await identities(engine) == [("google", "g-111", user.id)]
        # and the access token works on the API, as that user
        auth = payload["signInWithGoogle"]
        result = await gql(http, MY_SESSIONS, token=auth["accessToken"])
        assert data(result)["transactions"]["totalCount"] == 0
        assert await user_behind(server, auth["accessToken"]) == user.id
        async with session_factory(engine)() as s:
            session = await s.get(AuthSession, int(auth["sessionId"]))
        assert session is not None
        assert (session.method, session.device_name) == ("google", "Anna's Pixel")

    async def test_apple_names_the_new_account_and_accepts_its_hashed_nonce(
        self, engine: AsyncEngine, http: httpx.AsyncClient, apple: FakeProvider
    ) -> None:
        # given an iOS app that gave Apple SHA-256(nonce), and Apple's string "true"
        raw_nonce = "d3f8b2a1-raw"
        token = apple.id_token(
            sub="000123.abc", email="x7@privaterelay.appleid.com", email_verified="true",
            nonce=hashlib.sha256(raw_nonce.encode()).hexdigest(),
        )  # fmt: skip
        # when it signs in with the raw nonce and the name Apple gave it once
        data(await apple_sign_in(http, token, nonce=raw_nonce, displayName="  Anna Example "))
        # then the account carries the name and the verified relay address
        [user] = await accounts(engine)
        assert (user.display_name, user.email) == ("Anna Example", "x7@privaterelay.appleid.com")
        assert user.email_verified_at is not None
        assert await identities(engine) == [("apple", "000123.abc", user.id)]


class TestReturningSignIn:
    async def test_the_provider_subject_not_the_email_finds_the_account(
        self, engine: AsyncEngine, server: ApiServer, http: httpx.AsyncClient, google: FakeProvider
    ) -> None:
        # given a driver who signed in with Google once
        first = data(await google_sign_in(http, google.id_token(sub="g-222", email="bo@example.com")))
        # when they sign in again, after changing their Google address
        again = data(await google_sign_in(http, google.id_token(sub="g-222", email="bo@new.example")))
        # then it is the same account, with a second device session
        user_id = await user_behind(server, first["signInWithGoogle"]["accessToken"])
        assert await user_behind(server, again["signInWithGoogle"]["accessToken"]) == user_id
        assert again["signInWithGoogle"]["sessionId"] != first["signInWithGoogle"]["sessionId"]
        assert [u.id for u in await accounts(engine)] == [user_id]

    async def test_a_deleted_account_cannot_sign_in(
        self, engine: AsyncEngine, http: httpx.AsyncClient, google: FakeProvider
    ) -> None:
        data(await google_sign_in(http, google.id_token(sub="g-333")))
        async with session_factory(engine)() as s:
            [user] = (await s.exec(select(UserAccount))).all()
            user.deleted_at, user.email = utcnow(), None
            s.add(user)
            await s.commit()
        assert error_code(await google_sign_in(http, google.id_token(sub="g-333"))) == "UNAUTHENTICATED"


class TestLinkingByEmail:
    async def test_a_verified_email_links_to_the_existing_password_account(
        self, engine: AsyncEngine, server: ApiServer, http: httpx.AsyncClient, google: FakeProvider
    ) -> None:
        # given a driver who signed up with a password and verified their address
        existing = await make_user(engine, email="cleo@example.com")
        # when they sign in with the Google account of that address
        token = google.id_token(sub="g-444", email="CLEO@example.com", email_verified=True)
        payload = data(await google_sign_in(http, token))
        # then they are in their existing account, now linked, password kept
        assert await user_behind(server, payload["signInWithGoogle"]["accessToken"]) == existing
        assert await identities(engine) == [("google", "g-444", existing)]
        [user] = await accounts(engine)
        assert user.password_hash is not None

    async def test_an_unverified_email_gets_a_separate_account_without_that_address(
        self, engine: AsyncEngine, server: ApiServer, http: httpx.AsyncClient, google: FakeProvider
    ) -> None:
        # given an account of cleo@example.com
        existing = await make_user(engine, email="cleo@example.com", password=None)
        # when someone signs in with a Google account claiming that address, unverified
        token = google.id_token(sub="g-555", email="cleo@example.com", email_verified=False)
        payload = data(await google_sign_in(http, token))
        # then they get a new account that neither is nor claims Cleo's
        newcomer = await user_behind(server, payload["signInWithGoogle"]["accessToken"])
        assert newcomer not in (None, existing)
        users = {u.id: u for u in await accounts(engine)}
        assert (users[newcomer].email, users[newcomer].email_verified_at) == (None, None)
        assert users[existing].email == "cleo@example.com"
        assert await identities(engine) == [("google", "g-555", newcomer)]

    async def test_claiming_an_unverified_account_ends_its_password_and_sessions(
        self, engine: AsyncEngine, server: ApiServer, http: httpx.AsyncClient, google: FakeProvider
    ) -> None:
        # given an account whose address was never verified, signed in somewhere
        squatter = await make_user(engine, email="dana@example.com", verified=False)
        old = await sign_in(engine, server.app.state.auth.keys, user_id=squatter)
        assert "errors" not in await gql(http, MY_SESSIONS, token=old.access_token)
        # when the address's real owner signs in with Google
        payload = data(await google_sign_in(http, google.id_token(sub="g-666", email="dana@example.com")))
        # then the owner has the account, and whoever set the password is out
        assert await user_behind(server, payload["signInWithGoogle"]["accessToken"]) == squatter
        [user] = await accounts(engine)
        assert (user.password_hash, user.email_verified_at is not None) == (None, True)
        await gql(http, MY_SESSIONS, token=old.access_token, status=401)


# --- refused tokens ---


class TestRefusedOverTheApi:
    async def test_a_tampered_token_is_an_invalid_id_token_and_creates_nothing(
        self, engine: AsyncEngine, http: httpx.AsyncClient, google: FakeProvider
    ) -> None:
        token = google.tampered(google.id_token(sub="victim"), sub="attacker")
        result = await google_sign_in(http, token)
        assert error_code(result) == "INVALID_ID_TOKEN"
        assert token not in result["errors"][0]["message"]
        assert await accounts(engine) == []

    async def test_a_google_token_does_not_sign_in_with_apple(
        self, engine: AsyncEngine, http: httpx.AsyncClient, google: FakeProvider
    ) -> None:
        assert error_code(await apple_sign_in(http, google.id_token())) == "INVALID_ID_TOKEN"
        assert await accounts(engine) == []

    async def test_a_provider_without_client_ids_is_disabled(
        self, engine: AsyncEngine, api_server_factory: ApiServerFactory, google: FakeProvider
    ) -> None:
        server = await api_server_factory(CHARGENET_GOOGLE_JWKS_URL=google.jwks_url)
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            assert error_code(await google_sign_in(http, google.id_token())) == "PROVIDER_DISABLED"
        assert google.requests == 0


class TestProviderKeys:
    async def test_an_unknown_key_costs_one_refetch_and_is_refused(
        self, http: httpx.AsyncClient, google: FakeProvider
    ) -> None:
        # given the provider's keys are cached by a sign-in
        data(await google_sign_in(http, google.id_token()))
        assert google.requests == 1
        # when tokens signed by keys the provider never published arrive
        forged = [google.id_token(kid=f"forged-{i}", signed_by="forger") for i in range(4)]
        results = [await google_sign_in(http, token) for token in forged]
        # then each is refused, and only the first made ChargeNet look for a new key
        assert {error_code(r) for r in results} == {"INVALID_ID_TOKEN"}
        assert google.requests == 2

    async def test_a_rotated_key_is_fetched_once_and_accepted(
        self, server: ApiServer, http: httpx.AsyncClient, google: FakeProvider
    ) -> None:
        # given the provider's keys are cached by a sign-in
        first = data(await google_sign_in(http, google.id_token(sub="g-777")))
        # when the provider starts signing with a new key
        google.rotate("google-2")
        again = data(await google_sign_in(http, google.id_token(sub="g-777")))
        data(await google_sign_in(http, google.id_token(sub="g-777")))
        # then the new key was fetched once and the driver is in the same account
        assert google.requests == 2
        assert await user_behind(server, again["signInWithGoogle"]["accessToken"]) == await user_behind(
            server, first["signInWithGoogle"]["accessToken"]
        )


# --- the key cache, on the verifier itself ---


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def verifier(google: FakeProvider, clock: Clock) -> OidcVerifier:
    config = ProviderConfig(GOOGLE, GOOGLE_ISSUERS, frozenset({GOOGLE_CLIENT_ID}), google.jwks_url)
    return OidcVerifier({GOOGLE: config}, clock=clock)


Attack = Callable[[FakeProvider], tuple[str, str | None]]  # (ID token, nonce the app sends)
ATTACKS: dict[str, Attack] = {
    "expired": lambda p: (p.id_token(iat=int(time.time()) - 7_200, exp=int(time.time()) - 3_600), None),
    "issued in the future": lambda p: (p.id_token(iat=int(time.time()) + 3_600), None),
    "without iat": lambda p: (p.id_token(iat=None), None),
    "for another app": lambda p: (p.id_token(aud="someone-elses-app.apps.googleusercontent.com"), None),
    "by another issuer": lambda p: (p.id_token(iss="https://evil.example"), None),
    "without subject": lambda p: (p.id_token(sub=None), None),
    "tampered payload": lambda p: (p.tampered(p.id_token(sub="victim"), sub="attacker"), None),
    "signed by another key": lambda p: (p.id_token(signed_by="forger"), None),
    "alg none": lambda p: (p.unsigned_token(), None),
    "HS256 keyed with the public key": lambda p: (p.hs256_with_public_key(), None),
    "nonce mismatch": lambda p: (p.id_token(nonce="issued-for-this"), "another-attempt"),
    "nonce not sent": lambda p: (p.id_token(nonce="issued-for-this"), None),
    "nonce missing in token": lambda p: (p.id_token(), "expected-nonce"),
    "hashed nonce from Google": lambda p: (p.id_token(nonce=hashlib.sha256(b"raw").hexdigest()), "raw"),
    "not a JWT": lambda p: ("definitely.not.a-jwt", None),
}


class TestRefusedTokens:
    @pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
    async def test_is_an_invalid_id_token(
        self, verifier: OidcVerifier, google: FakeProvider, attack: Attack
    ) -> None:
        token, nonce = attack(google)
        with pytest.raises(InvalidIdToken) as refused:
            await verifier.verify(GOOGLE, token, nonce=nonce)
        assert refused.value.code == "INVALID_ID_TOKEN"
        assert token not in refused.value.message

    async def test_the_same_token_with_its_nonce_is_accepted(
        self, verifier: OidcVerifier, google: FakeProvider
    ) -> None:
        identity = await verifier.verify(GOOGLE, google.id_token(nonce="n", sub="g-1"), nonce="n")
        assert (identity.subject, identity.email, identity.email_verified) == (
            "g-1", "driver@example.com", True,
        )  # fmt: skip


class TestKeyCache:
    async def test_verifications_share_one_fetch(self, verifier: OidcVerifier, google: FakeProvider) -> None:
        for sub in ("a", "b"):
            assert (await verifier.verify(GOOGLE, google.id_token(sub=sub), nonce=None)).subject == sub
        assert google.requests == 1

    async def test_concurrent_verifications_wait_for_one_fetch(
        self, verifier: OidcVerifier, google: FakeProvider
    ) -> None:
        google.delay_s = 0.2
        tokens = [google.id_token(sub=f"s{i}") for i in range(10)]
        await asyncio.gather(*(verifier.verify(GOOGLE, t, nonce=None) for t in tokens))
        assert google.requests == 1

    async def test_a_flood_of_unknown_keys_is_one_refetch(
        self, verifier: OidcVerifier, google: FakeProvider
    ) -> None:
        await verifier.verify(GOOGLE, google.id_token(), nonce=None)
        google.delay_s = 0.1
        forged = [google.id_token(kid=f"random-{i}", signed_by="forger") for i in range(20)]
        results = await asyncio.gather(
            *(verifier.verify(GOOGLE, t, nonce=None) for t in forged), return_exceptions=True
        )
        assert all(isinstance(r, InvalidIdToken) for r in results)
        assert google.requests == 2

    @pytest.mark.parametrize(
        ("cache_control", "kept_s"),
        [
            ("public, max-age=120, must-revalidate", 120.0),
            (None, DEFAULT_JWKS_MAX_AGE_S),
            ("public, max-age=604800", MAX_JWKS_MAX_AGE_S),
            ("no-cache, max-age=0", MIN_REFETCH_INTERVAL_S),
        ],
        ids=["max-age", "absent", "capped at a day", "floored"],
    )
    async def test_keys_are_kept_for_the_max_age(
        self,
        verifier: OidcVerifier,
        google: FakeProvider,
        clock: Clock,
        cache_control: str | None,
        kept_s: float,
    ) -> None:
        google.cache_control = cache_control
        token = google.id_token()
        await verifier.verify(GOOGLE, token, nonce=None)
        clock.now += kept_s - 1
        await verifier.verify(GOOGLE, token, nonce=None)
        assert google.requests == 1
        clock.now += 1
        await verifier.verify(GOOGLE, token, nonce=None)
        assert google.requests == 2

    async def test_a_failed_refresh_keeps_the_cached_keys(
        self, verifier: OidcVerifier, google: FakeProvider, clock: Clock
    ) -> None:
        # given cached keys that have expired while the provider is down
        token = google.id_token()
        await verifier.verify(GOOGLE, token, nonce=None)
        google.status = 503
        clock.now += DEFAULT_JWKS_MAX_AGE_S
        # when tokens keep arriving
        await verifier.verify(GOOGLE, token, nonce=None)
        clock.now += MIN_REFETCH_INTERVAL_S - 1
        await verifier.verify(GOOGLE, token, nonce=None)
        # then they verify with the cached keys, and the provider is retried only after a pause
        assert google.requests == 2
        google.status = 200
        clock.now += 1
        await verifier.verify(GOOGLE, token, nonce=None)
        assert google.requests == 3
