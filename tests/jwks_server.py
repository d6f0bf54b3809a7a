"""A stand-in for Google's or Apple's sign-in: RSA keys, a real JWKS endpoint over HTTP, and
the ID tokens it signs.

The endpoint counts its requests, can rotate or replace the published keys, set Cache-Control,
answer with an error status, or answer slowly (to make concurrent fetches overlap).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from functools import cache
from typing import Any

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import _QuietServer

JWKS_PATH = "/certs"
TOKEN_LIFETIME_S = 3_600


@cache
def rsa_key(kid: str) -> RSAKey:
    """One 2048-bit key per kid, generated once per test run."""
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


class FakeProvider:
    """An identity provider: `issuer` signs ID tokens with its current key and publishes the
    public halves of `published` keys at `jwks_url`."""

    def __init__(self, *, issuer: str, audience: str, kid: str) -> None:
        self.issuer = issuer
        self.audience = audience
        self.signing_kid = kid
        self.published: list[str] = [kid]
        self.cache_control: str | None = "public, max-age=3600"
        self.status = 200
        self.delay_s = 0.0
        self.requests = 0
        self.jwks_url = ""

    # --- the provider's operations ---

    def rotate(self, new_kid: str) -> None:
        """Publish a new key and sign with it; the old key stays published."""
        self.published.append(new_kid)
        self.signing_kid = new_kid

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "1000001",
            "email": "driver@example.com",
            "email_verified": True,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_S,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}  # None removes a claim

    def id_token(self, *, kid: str | None = None, signed_by: str | None = None, **claims: Any) -> str:
        """An RS256 ID token naming the key `kid` (default: the current signing key), signed by
        that key or by the key `signed_by`."""
        kid = kid or self.signing_kid
        return jwt.encode(
            {"alg": "RS256", "kid": kid, "typ": "JWT"},
            self.claims(**claims),
            rsa_key(signed_by or kid),
            algorithms=["RS256"],
        )

    def unsigned_token(self, **claims: Any) -> str:
        """`alg: none`: no signature at all."""
        return f"{_segment({'alg': 'none', 'kid': self.signing_kid})}.{_segment(self.claims(**claims))}."

    def hs256_with_public_key(self, **claims: Any) -> str:
        """The algorithm-confusion attack: HMAC keyed with the provider's *public* key."""
        public_pem = rsa_key(self.signing_kid).as_pem(private=False)
        signing_input = (
            f"{_segment({'alg': 'HS256', 'kid': self.signing_kid})}.{_segment(self.claims(**claims))}"
        )
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"

    @staticmethod
    def tampered(token: str, **changes: Any) -> str:
        """The same header and signature over a payload with `changes` applied."""
        header, payload, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims.update(changes)
        return f"{header}.{_segment(claims)}.{signature}"

    # --- the JWKS endpoint ---

    async def jwks(self, _request: Request) -> Response:
        self.requests += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return Response("unavailable", status_code=self.status)
        body = {"keys": [rsa_key(kid).as_dict(private=False) for kid in self.published]}
        headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
        return Response(json.dumps(body), media_type="application/json", headers=headers)


@contextlib.asynccontextmanager
async def serving(*providers: FakeProvider) -> AsyncIterator[None]:
    """One local HTTP server publishing each provider's JWKS at its own `jwks_url`."""
    app = Starlette(routes=[Route(f"/{i}{JWKS_PATH}", p.jwks) for i, p in enumerate(providers)])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        for i, provider in enumerate(providers):
            provider.jwks_url = f"http://127.0.0.1:{port}/{i}{JWKS_PATH}"
        yield
    finally:
        server.should_exit = True
        await task
