"""Opaque secrets ChargeNet hands out (refresh, reset, invitation tokens, API keys).

They carry 256 bits from the OS's CSPRNG, so a plain SHA-256 is a sufficient and fast hash for
storing them: there is no dictionary to attack, unlike passwords people choose.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32


def new_token() -> tuple[str, str]:
    """(the secret to hand out once, the hash to store)."""
    plain = secrets.token_urlsafe(TOKEN_BYTES)
    return plain, hash_token(plain)


def hash_token(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def same_hash(plain: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(plain), stored_hash)
