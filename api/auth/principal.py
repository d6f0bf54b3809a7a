"""The caller of a request or subscription, resolved once per request.

Until driver and operator accounts exist, two callers are known: anonymous (public data
only) and the platform operator holding the bootstrap token `CHARGENET_ADMIN_TOKEN`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum


class PrincipalKind(StrEnum):
    ANONYMOUS = "anonymous"
    PLATFORM_OPERATOR = "platform_operator"


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    # None for a platform operator means every organisation; later kinds carry their own.
    organization_id: int | None = None

    @property
    def is_operator(self) -> bool:
        return self.kind is PrincipalKind.PLATFORM_OPERATOR


ANONYMOUS = Principal(PrincipalKind.ANONYMOUS)


class TokenVerifier:
    """Checks bearer tokens in constant time against a digest; the token itself is not kept."""

    def __init__(self, admin_token: str | None) -> None:
        self._digest = hashlib.sha256(admin_token.encode()).digest() if admin_token else None

    def principal_for(self, authorization: str | None) -> Principal:
        if not authorization or self._digest is None:
            return ANONYMOUS
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return ANONYMOUS
        if hmac.compare_digest(hashlib.sha256(token.strip().encode()).digest(), self._digest):
            return Principal(PrincipalKind.PLATFORM_OPERATOR)
        return ANONYMOUS
