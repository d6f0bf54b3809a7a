"""Everything the account services need at run time, built once per process by the app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from api.auth.authenticator import Authenticator
from api.auth.keys import KeyRing
from api.auth.ratelimit import RateLimiter
from api.notify.email import Mailer


@dataclass(frozen=True, slots=True)
class VerifiedIdentity:
    """What an external identity provider vouches for after its ID token was verified."""

    provider: str  # "google" or "apple"
    subject: str
    email: str | None
    email_verified: bool
    # Google puts the person's name in the token; Apple gives it only to the app, once.
    name: str | None = None


class IdentityVerifier(Protocol):
    async def verify(self, provider: str, id_token: str, *, nonce: str | None) -> VerifiedIdentity: ...


@dataclass(slots=True)
class AuthDeps:
    authenticator: Authenticator
    keys: KeyRing
    mailer: Mailer
    limiter: RateLimiter
    identity: IdentityVerifier | None = None
