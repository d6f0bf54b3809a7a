"""Sign in with Google / Apple: verifying the provider's ID token (OpenID Connect Core §3.1.3.7).

The app obtains an ID token from the provider's SDK and hands it to ChargeNet; ChargeNet trusts
it only after checking, in this order: the algorithm (RS256, fixed here and never read from
the token, which closes `alg: none` and HS256-signed-with-the-public-key), the signature
against the provider's published keys (JWKS), then `iss`, `aud` (one of our own client ids,
otherwise a token minted for any other app would sign in here), `exp`, `iat`, `sub` and the
`nonce` binding the token to the app's sign-in attempt.

The provider's keys are cached per provider (see `JwksCache`): verifying a token normally costs
no network round trip, and a flood of tokens naming unknown keys cannot make ChargeNet hammer
the provider.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from joserfc.jwt import JWTClaimsRegistry

from api.auth.deps import VerifiedIdentity
from schema.errors import ChargeNetError
from schema.settings import Settings

log = logging.getLogger(__name__)

# Google and Apple both sign ID tokens with RS256; nothing else is ever accepted.
ALGORITHM = "RS256"
GOOGLE = "google"
APPLE = "apple"
# Google documents both spellings of its issuer; Apple uses one.
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
APPLE_ISSUERS = ("https://appleid.apple.com",)
# Clocks of phones, providers and API replicas drift; a minute either way is still the same token.
CLOCK_SKEW_S = 60
# Real ID tokens are 1–2 KB; anything far larger is not one and is refused before parsing.
MAX_ID_TOKEN_CHARS = 8_192
MAX_KID_CHARS = 128
# external_identity.subject; Google's subjects are 21 digits, Apple's about 44 characters.
MAX_SUBJECT_CHARS = 255
# A nonce is a random value the app generated; bound its size like the token's.
MAX_NONCE_CHARS = 512

# --- the JWKS cache ---
# Without Cache-Control max-age the key set is kept this long (providers rotate keys over days).
DEFAULT_JWKS_MAX_AGE_S = 3_600.0
# A provider's max-age is honoured up to a day, so a revoked key does not linger for longer.
MAX_JWKS_MAX_AGE_S = 86_400.0
# The provider is asked at most this often per reason: for a token naming a key we do not know
# (a flood of random `kid`s must not turn into a flood of requests to Google), after a failed
# fetch, and for a max-age shorter than this.
MIN_REFETCH_INTERVAL_S = 30.0
JWKS_TIMEOUT_S = 5.0
# Google's and Apple's key sets are a few KB; refuse to buffer an unbounded answer.
MAX_JWKS_BYTES = 256 * 1024

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


class InvalidIdToken(ChargeNetError):
    """The ID token is not one the provider issued to our app for this sign-in. The message
    gives the reason; it never contains the token."""

    code = "INVALID_ID_TOKEN"


class ProviderDisabled(ChargeNetError):
    """This deployment has no client id configured for the provider."""

    code = "PROVIDER_DISABLED"


class JwksUnavailable(Exception):
    """The provider's key set could not be fetched or held no usable key."""


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    issuers: tuple[str, ...]
    client_ids: frozenset[str]
    jwks_url: str
    # Apple: the token may carry SHA-256(nonce) instead of the nonce, see `_check_nonce`.
    hashed_nonce: bool = False


def _client_ids(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def providers_from(settings: Settings) -> dict[str, ProviderConfig]:
    return {
        GOOGLE: ProviderConfig(
            GOOGLE, GOOGLE_ISSUERS, _client_ids(settings.google_client_ids), settings.google_jwks_url
        ),
        APPLE: ProviderConfig(
            APPLE,
            APPLE_ISSUERS,
            _client_ids(settings.apple_client_ids),
            settings.apple_jwks_url,
            hashed_nonce=True,
        ),
    }


def max_age_of(cache_control: str | None) -> float:
    """How long to keep a key set, from the response's Cache-Control (RFC 9111 §5.2.2.1)."""
    match = _MAX_AGE.search(cache_control or "")
    seconds = float(match.group(1)) if match else DEFAULT_JWKS_MAX_AGE_S
    return min(MAX_JWKS_MAX_AGE_S, max(MIN_REFETCH_INTERVAL_S, seconds))


def parse_jwks(body: bytes) -> dict[str, RSAKey]:
    """The usable signing keys by kid. Keys of another type, use or algorithm are skipped
    (RFC 7517 §5), as is a malformed key, so one odd entry does not take down the rest."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise JwksUnavailable("the key set is not JSON") from exc
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksUnavailable("the key set has no keys")
    keys: dict[str, RSAKey] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("alg", ALGORITHM) != ALGORITHM:
            continue
        try:
            keys[kid] = RSAKey.import_key(entry)
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("skipping a malformed key %r in a provider key set: %s", kid, exc)
    if not keys:
        raise JwksUnavailable("the key set holds no RS256 signing key")
    return keys


class JwksCache:
    """One provider's signing keys, fetched over HTTPS and cached.

    Guarantees: the set is kept for the response's max-age (default 1 h, at most 24 h); a token
    naming an unknown `kid` triggers at most one refetch per `MIN_REFETCH_INTERVAL_S` (a
    provider rotating keys is picked up at once, a flood of made-up kids is not forwarded);
    concurrent callers share one fetch (single flight); a failed fetch keeps the cached set in
    service and is retried no sooner than `MIN_REFETCH_INTERVAL_S`.
    """

    def __init__(self, url: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self._clock = clock
        self._keys: dict[str, RSAKey] = {}
        self._fresh_until = -math.inf
        self._no_retry_before = -math.inf
        self._no_kid_refetch_before = -math.inf
        self._attempts = 0
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> RSAKey | None:
        fetched = False
        if self._clock() >= self._fresh_until:
            fetched = await self._refresh(None)
        key = self._keys.get(kid)
        if key is None and not fetched:
            # Perhaps the provider rotated its keys since our last fetch.
            await self._refresh(kid)
            key = self._keys.get(kid)
        return key

    async def _refresh(self, unknown_kid: str | None) -> bool:
        """Fetch unless not due; True when a fetch was made by this or a concurrent caller."""
        attempts_seen = self._attempts
        async with self._lock:
            if self._attempts != attempts_seen:
                return True  # a concurrent caller fetched while we waited: share its result
            now = self._clock()
            if now < self._no_retry_before:
                return False
            if unknown_kid is None:
                if now < self._fresh_until:
                    return False
            elif unknown_kid in self._keys or now < self._no_kid_refetch_before:
                return False
            else:
                self._no_kid_refetch_before = now + MIN_REFETCH_INTERVAL_S
            self._attempts += 1
            try:
                keys, max_age = await self._fetch()
            except (httpx.HTTPError, JwksUnavailable) as exc:
                self._no_retry_before = now + MIN_REFETCH_INTERVAL_S
                log.warning(
                    "could not fetch %s (%s); %s",
                    self.url,
                    exc,
                    "still using the cached keys" if self._keys else "no keys to verify with",
                )
                return True
            self._keys = keys
            self._fresh_until = now + max_age
            return True

    async def _fetch(self) -> tuple[dict[str, RSAKey], float]:
        async with (
            httpx.AsyncClient(timeout=JWKS_TIMEOUT_S) as client,
            client.stream("GET", self.url, headers={"Accept": "application/json"}) as response,
        ):
            response.raise_for_status()
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksUnavailable(f"the key set is larger than {MAX_JWKS_BYTES} bytes")
            return parse_jwks(bytes(body)), max_age_of(response.headers.get("cache-control"))


class OidcVerifier:
    """Verifies Google and Apple ID tokens (an `IdentityVerifier`)."""

    def __init__(
        self, providers: Mapping[str, ProviderConfig], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._providers = dict(providers)
        self._caches = {name: JwksCache(p.jwks_url, clock=clock) for name, p in providers.items()}
        self._registries = {
            name: JWTClaimsRegistry(
                leeway=CLOCK_SKEW_S,
                iss={"essential": True, "values": list(p.issuers)},
                aud={"essential": True, "values": sorted(p.client_ids)},
                exp={"essential": True},
                iat={"essential": True},
                sub={"essential": True},
            )
            for name, p in providers.items()
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcVerifier:
        return cls(providers_from(settings))

    def enabled(self, provider: str) -> bool:
        config = self._providers.get(provider)
        return config is not None and bool(config.client_ids)

    async def verify(self, provider: str, id_token: str, *, nonce: str | None) -> VerifiedIdentity:
        config = self._providers.get(provider)
        if config is None or not config.client_ids:
            raise ProviderDisabled(f"sign in with {provider} is not enabled on this server")
        if len(id_token) > MAX_ID_TOKEN_CHARS:
            raise InvalidIdToken("ID token is too long")
        if nonce is not None and len(nonce) > MAX_NONCE_CHARS:
            raise InvalidIdToken("nonce is too long")
        try:
            signed = jws.extract_compact(id_token.encode())
        except (JoseError, ValueError, TypeError):
            raise InvalidIdToken("ID token is not a signed JWT") from None
        kid = _checked_header(signed.headers())
        key = await self._caches[provider].key(kid)
        if key is None:
            raise InvalidIdToken(f"ID token is signed with a key {provider} does not publish")
        try:
            if not jws.validate_compact(signed, key, algorithms=[ALGORITHM]):
                raise InvalidIdToken("ID token signature does not verify")
            claims = json.loads(signed.payload)
            if not isinstance(claims, dict):
                raise InvalidIdToken("ID token payload is not a JSON object")
            self._registries[provider].validate(claims)
        except JoseError as exc:
            raise InvalidIdToken(f"ID token refused: {_reason(exc)}") from None
        except ValueError:
            raise InvalidIdToken("ID token payload is not JSON") from None
        if len(str(claims["sub"])) > MAX_SUBJECT_CHARS:
            raise InvalidIdToken("ID token subject is too long")
        _check_authorized_party(claims, config)
        _check_nonce(claims.get("nonce"), nonce, hashed_allowed=config.hashed_nonce)
        return VerifiedIdentity(
            provider=provider,
            subject=str(claims["sub"]),
            email=_email(claims.get("email")),
            email_verified=claims.get("email_verified") in (True, "true"),
            name=claims["name"] if isinstance(claims.get("name"), str) else None,
        )


def _checked_header(header: Mapping[str, Any]) -> str:
    """The header's kid, after refusing anything but RS256 before any key is looked up (so a
    token with a bogus algorithm costs no fetch)."""
    if header.get("alg") != ALGORITHM:
        raise InvalidIdToken(f"ID token algorithm must be {ALGORITHM}")
    if "crit" in header:
        raise InvalidIdToken("ID token has critical header extensions")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_CHARS:
        raise InvalidIdToken("ID token names no signing key (kid)")
    return kid


def _check_authorized_party(claims: Mapping[str, Any], config: ProviderConfig) -> None:
    """OIDC Core §3.1.3.7: with several audiences, the party it was issued to must be ours."""
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") not in config.client_ids:
        raise InvalidIdToken("ID token was issued to another client (azp)")


def _check_nonce(in_token: object, sent: str | None, *, hashed_allowed: bool) -> None:
    """The nonce binds the token to this sign-in attempt, so a token captured elsewhere (another
    app's backend, a log) cannot be replayed here.

    A token carrying a nonce the app does not present is refused: only whoever started that
    sign-in knows it. Apple: the iOS guidance (and Firebase's) is to hand Apple SHA-256(raw
    nonce) as hex and send the raw nonce to the backend; Apple then puts the hash in the token.
    So for Apple the token's nonce may be the raw value or its SHA-256 hex digest.
    """
    if sent is None:
        if in_token is not None:
            raise InvalidIdToken("ID token carries a nonce but none was sent")
        return
    if not isinstance(in_token, str):
        raise InvalidIdToken("ID token carries no nonce")
    candidates = [sent]
    if hashed_allowed:
        candidates.append(hashlib.sha256(sent.encode()).hexdigest())
    # Compare every candidate in constant time, without an early exit.
    matches = [hmac.compare_digest(in_token.encode(), c.encode()) for c in candidates]
    if not any(matches):
        raise InvalidIdToken("ID token nonce does not match")


def _email(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    return email if 3 <= len(email) <= 254 and "@" in email else None


def _reason(exc: JoseError) -> str:
    if exc.error == "expired_token":
        return "expired"
    claim = getattr(exc, "claim", None)
    return f"{exc.error} {claim}" if claim else exc.error or "invalid"
