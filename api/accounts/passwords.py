"""Passwords people choose: the policy they must meet, and Argon2 hashing off the event loop.

Policy (NIST SP 800-63B §3.1.1.2): a minimum length instead of composition rules, a maximum
that bounds hashing cost, and a block list of passwords attackers try first.

Hashing is deliberately slow (≥ 50 ms). It runs on a small dedicated thread pool, so a storm of
sign-ins queues there instead of stalling every other request on the event loop; argon2-cffi
releases the GIL while it hashes.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import resources

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from schema.errors import InvalidInput

MIN_LENGTH = 10
# Long passphrases are welcome; beyond this the input is abuse (hash cost grows with length).
MAX_LENGTH = 256
# One Argon2 hash with p=4 lanes runs on several threads (about 1.4 cores busy here), so
# half as many hashes at a time as cores leaves CPU for the event loop; the rest queue.
HASH_WORKERS = max(1, (os.cpu_count() or 2) // 2)

_hasher = PasswordHash((Argon2Hasher(),))
_pool = ThreadPoolExecutor(max_workers=HASH_WORKERS, thread_name_prefix="argon2")
_dummy_lock = threading.Lock()
_dummy_hash: str | None = None


@cache
def common_passwords() -> frozenset[str]:
    text = resources.files("api.accounts").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def check_policy(password: str, *, email: str) -> None:
    """Raise InvalidInput (with the reason) unless `password` may be used for `email`."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"the password must have at most {MAX_LENGTH} characters")
    lowered = password.lower()
    if lowered in common_passwords():
        raise InvalidInput("this password is too common; choose another one")
    address = email.strip().lower()
    if lowered in (address, address.partition("@")[0]):
        raise InvalidInput("the password must not be your email address")


def _dummy() -> str:
    """A hash of a random secret: unknown accounts cost the same verification as known ones."""
    global _dummy_hash
    with _dummy_lock:
        if _dummy_hash is None:
            _dummy_hash = _hasher.hash(secrets.token_urlsafe(24))
        return _dummy_hash


def _verify_sync(password: str, stored: str | None) -> tuple[bool, str | None]:
    if stored is None or len(password) > MAX_LENGTH:  # no password set can be that long
        _hasher.verify(password[:MAX_LENGTH], _dummy())
        return False, None
    try:
        return _hasher.verify_and_update(password, stored)
    except Exception:  # a malformed or foreign stored hash fails closed
        return False, None


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_pool, _hasher.hash, password)


async def verify_password(password: str, stored: str | None) -> tuple[bool, str | None]:
    """(matches, a new hash to store when the parameters changed). `stored=None` (no account,
    or one without a password) still costs one verification and never matches."""
    return await asyncio.get_running_loop().run_in_executor(_pool, _verify_sync, password, stored)
