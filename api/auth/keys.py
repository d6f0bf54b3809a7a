"""Access tokens: short-lived ES256 JWTs signed by a key ring with `kid`s.

Only ES256 is accepted, and the algorithm list is fixed here, never read from the token: that
closes `alg: none` and the HS256-with-the-public-key confusion. Claims are validated
explicitly (iss, aud, exp, nbf, iat), since decoding alone checks none of them.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet
from joserfc.jwt import JWTClaimsRegistry

from schema.errors import Unauthenticated
from schema.settings import Settings

log = logging.getLogger(__name__)

ALGORITHM = "ES256"
# Clocks of API replicas drift a little; a token from a second in the future is still fine.
CLOCK_SKEW_S = 30


class InvalidToken(Unauthenticated):
    pass


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    session_id: int
    expires_at: int


def generate_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"use": "sig", "alg": ALGORITHM}, auto_kid=True)


def generate_key_set_json(existing: str | None = None) -> str:
    """A private JWKS with one new key appended (the new signing key): `chargenet keys`."""
    keys = json.loads(existing)["keys"] if existing else []
    keys.append(generate_key().as_dict(private=True))
    return json.dumps({"keys": keys})


class KeyRing:
    """Signs with the newest key, verifies with any key in the ring."""

    def __init__(self, private_jwks: dict[str, Any], *, issuer: str, audience: str, ttl_s: int) -> None:
        keys = [ECKey.import_key(k) for k in private_jwks["keys"]]
        if not keys:
            raise ValueError("the JWT key set is empty")
        for key in keys:
            if key.kid is None:
                raise ValueError("every JWT key needs a kid")
            if not key.is_private:
                raise ValueError(f"JWT key {key.kid} has no private part")
        self._signing = keys[-1]
        self._verify = KeySet(keys)  # type: ignore[arg-type]
        self._public = {"keys": [k.as_dict(private=False) | {"use": "sig", "alg": ALGORITHM} for k in keys]}
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s
        self._registry = JWTClaimsRegistry(
            leeway=CLOCK_SKEW_S,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
            sid={"essential": True},
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        text = settings.jwt_keys
        if text is None and settings.jwt_keys_file:
            text = Path(settings.jwt_keys_file).read_text()
        if text is None:
            log.warning(
                "CHARGENET_JWT_KEYS is not set: signing with an ephemeral key; tokens die with "
                "this process and other replicas cannot verify them"
            )
            text = generate_key_set_json()
        return cls(
            json.loads(text),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_s=settings.access_token_ttl_s,
        )

    @property
    def signing_kid(self) -> str:
        return str(self._signing.kid)

    def public_jwks(self) -> dict[str, Any]:
        return self._public

    def issue(self, *, user_id: int, session_id: int, now: float | None = None) -> tuple[str, int]:
        """The token and its expiry (epoch seconds)."""
        issued = int(now if now is not None else time.time())
        exp = issued + self.ttl_s
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "sid": str(session_id),
            "iat": issued,
            "nbf": issued,
            "exp": exp,
        }
        header = {"alg": ALGORITHM, "kid": self.signing_kid, "typ": "at+jwt"}
        return jwt.encode(header, claims, self._signing, algorithms=[ALGORITHM]), exp

    def verify(self, token: str) -> AccessClaims:
        try:
            decoded = jwt.decode(token, self._verify, algorithms=[ALGORITHM])
            self._registry.validate(decoded.claims)
            return AccessClaims(
                user_id=int(decoded.claims["sub"]),
                session_id=int(decoded.claims["sid"]),
                expires_at=int(decoded.claims["exp"]),
            )
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise InvalidToken(f"invalid access token: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, JoseError):
        return exc.error
    return "malformed"
