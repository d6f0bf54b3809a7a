"""Hashing of station passwords and other shared secrets (Argon2 via pwdlib)."""

from __future__ import annotations

import hashlib
import secrets

from pwdlib import PasswordHash

_hasher = PasswordHash.recommended()

# OCPP 1.6 security whitepaper: AuthorizationKey is 16–40 bytes; 2.0.1 BasicAuthPassword ≤ 40.
STATION_PASSWORD_BYTES = 24


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(secret: str, hashed: str) -> bool:
    try:
        return _hasher.verify(secret, hashed)
    except Exception:  # a malformed stored hash must fail closed, not crash the handshake
        return False


def new_station_password() -> str:
    return secrets.token_urlsafe(STATION_PASSWORD_BYTES)[:32]


def fingerprint(secret: str, stored_hash: str) -> str:
    """A cache key for a verified secret that is useless without the stored hash."""
    return hashlib.sha256(f"{stored_hash}\0{secret}".encode()).hexdigest()
