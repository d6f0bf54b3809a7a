"""Forged, stale and replayed credentials are refused with 401, never read as anonymous.

The server runs with a key set the test holds, so each attack is built from real key material.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy.ext.asyncio import AsyncEngine

from api.accounts.tokens import refresh_session
from api.auth.keys import generate_key_set_json
from api.auth.roles import Role
from schema.db import session_factory
from schema.errors import Unauthenticated
from tests.account_builders import add_member, make_user, sign_in
from tests.builders import make_org
from tests.conftest import ApiServer, ApiServerFactory
from tests.graphql_client import data, gql

ME = "{ transactions(first: 1) { totalCount } }"
ISSUER = "chargenet"
AUDIENCE = "chargenet-api"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(user_id: int, session_id: int, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id),
        "sid": str(session_id),
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    return {**base, **overrides}


class Keys:
    def __init__(self) -> None:
        self.jwks = generate_key_set_json()
        self.private = ECKey.import_key(json.loads(self.jwks)["keys"][0])

    def sign(self, payload: dict[str, Any], *, kid: str | None = None) -> str:
        header = {"alg": "ES256", "kid": kid or self.private.kid}
        return jwt.encode(header, payload, self.private, algorithms=["ES256"])


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
async def server(api_server_factory: ApiServerFactory, keys: Keys) -> ApiServer:
    return await api_server_factory(CHARGENET_JWT_KEYS=keys.jwks)


@pytest.fixture
async def member(engine: AsyncEngine, server: ApiServer) -> tuple[int, int]:
    """(user id, session id) of a signed-in viewer of an organisation."""
    org = await make_org(engine, slug="acme")
    user = await make_user(engine, email="viewer@example.com", password=None)
    await add_member(engine, user_id=user, organization_id=org, role=Role.VIEWER)
    pair = await sign_in(engine, server.app.state.auth.keys, user_id=user)
    return user, pair.session_id


async def status_of(server: ApiServer, token: str) -> int:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.post(
            "/graphql", json={"query": ME}, headers={"Authorization": f"Bearer {token}"}
        )
    return response.status_code


class TestForgedAccessTokens:
    async def test_the_genuine_token_works(
        self, server: ApiServer, keys: Keys, member: tuple[int, int]
    ) -> None:
        assert await status_of(server, keys.sign(claims(*member))) == 200

    @pytest.mark.parametrize(
        "override",
        [
            # times relative to when the test runs, not to when pytest collected it
            {"exp": -120},  # expired (beyond the 30 s clock skew)
            {"nbf": 600},  # not yet valid
            {"aud": "some-other-api"},
            {"iss": "https://evil.example"},
        ],
        ids=["expired", "not-yet-valid", "wrong-aud", "wrong-iss"],
    )
    async def test_bad_claims_are_refused(
        self, server: ApiServer, keys: Keys, member: tuple[int, int], override: dict[str, Any]
    ) -> None:
        now = int(time.time())
        claimed = {k: now + v if k in ("exp", "nbf") else v for k, v in override.items()}
        assert await status_of(server, keys.sign(claims(*member, **claimed))) == 401

    async def test_tampered_payload(self, server: ApiServer, keys: Keys, member: tuple[int, int]) -> None:
        header, _, signature = keys.sign(claims(*member)).split(".")
        forged = b64(json.dumps(claims(member[0] + 1, member[1])).encode())
        assert await status_of(server, f"{header}.{forged}.{signature}") == 401

    async def test_alg_none(self, server: ApiServer, member: tuple[int, int]) -> None:
        header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        payload = b64(json.dumps(claims(*member)).encode())
        assert await status_of(server, f"{header}.{payload}.") == 401

    async def test_hs256_signed_with_the_public_key(
        self, server: ApiServer, keys: Keys, member: tuple[int, int]
    ) -> None:
        # The classic confusion: a verifier that takes `alg` from the token would check an HMAC
        # keyed with the public key it publishes at /.well-known/jwks.json.
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            public = (await client.get("/.well-known/jwks.json")).json()["keys"][0]
        secrets = [json.dumps(public).encode(), ECKey.import_key(public).as_pem(private=False)]
        for secret in secrets:
            header = b64(json.dumps({"alg": "HS256", "kid": public["kid"]}).encode())
            payload = b64(json.dumps(claims(*member)).encode())
            mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            assert await status_of(server, f"{header}.{payload}.{b64(mac)}") == 401

    async def test_unknown_kid(self, server: ApiServer, member: tuple[int, int]) -> None:
        stranger = Keys()  # a well-formed ES256 token from a key the server never had
        assert await status_of(server, stranger.sign(claims(*member))) == 401
        assert await status_of(server, stranger.sign(claims(*member), kid="made-up")) == 401


class TestRevocation:
    async def test_a_valid_token_of_a_revoked_session_is_refused(
        self, engine: AsyncEngine, server: ApiServer, keys: Keys, member: tuple[int, int]
    ) -> None:
        token = keys.sign(claims(*member))
        assert await status_of(server, token) == 200
        from api.accounts.tokens import revoke_sessions

        async with session_factory(engine)() as s:
            await revoke_sessions(s, member[0], reason="logout", only=member[1])
            await s.commit()
        server.app.state.auth.authenticator.forget_user(member[0])
        assert await status_of(server, token) == 401

    async def test_reusing_a_rotated_refresh_token_revokes_the_family(
        self, engine: AsyncEngine, server: ApiServer
    ) -> None:
        auth = server.app.state.auth
        user = await make_user(engine, email="driver@example.com", password=None)
        first = await sign_in(engine, auth.keys, user_id=user)
        db = session_factory(engine)
        second = await refresh_session(db, auth.keys, first.refresh_token, ip_address=None, ttl_days=30)
        # given the first token was stolen and replayed after the app rotated it
        with pytest.raises(Unauthenticated, match="reused"):
            await refresh_session(db, auth.keys, first.refresh_token, ip_address=None, ttl_days=30)
        # then the app's current refresh token and access token are dead too
        with pytest.raises(Unauthenticated):
            await refresh_session(db, auth.keys, second.refresh_token, ip_address=None, ttl_days=30)
        assert await status_of(server, second.access_token) == 401


class TestKeyRotation:
    async def test_old_tokens_verify_while_the_new_key_signs(
        self, engine: AsyncEngine, api_server_factory: ApiServerFactory, keys: Keys, member: tuple[int, int]
    ) -> None:
        # given a token signed by the current key
        old_token = keys.sign(claims(*member))
        # when a new key is appended and the API restarts with both
        rotated = await api_server_factory(CHARGENET_JWT_KEYS=generate_key_set_json(keys.jwks))
        ring = rotated.app.state.auth.keys
        assert ring.signing_kid != keys.private.kid
        # then the old token still works, new tokens carry the new kid, JWKS lists both
        assert await status_of(rotated, old_token) == 200
        pair = await sign_in(engine, ring, user_id=member[0])
        assert await status_of(rotated, pair.access_token) == 200
        async with httpx.AsyncClient(base_url=rotated.base_url) as client:
            kids = [k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]]
            assert kids == [keys.private.kid, ring.signing_kid]
            assert data(await gql(client, ME, token=pair.access_token))["transactions"]["totalCount"] == 0
