"""Brute-force protection for sign-in and reset: per account and per client address.

Each key gets a budget of failures in a window; beyond it, every further attempt is refused for
a delay that doubles with each failure (capped). Success clears the account's counter, never
the address's (one address guessing many accounts must still slow down).

In-memory, per process: with several API replicas each enforces its own budget, which still
bounds an attacker to replicas × budget per window.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from schema.errors import RateLimited

# Failures allowed per window before backoff starts.
ACCOUNT_BUDGET = 5
ADDRESS_BUDGET = 20
WINDOW_S = 15 * 60.0
BASE_DELAY_S = 1.0
MAX_DELAY_S = 15 * 60.0
MAX_KEYS = 100_000  # memory bound: the oldest keys are forgotten first


@dataclass(slots=True)
class _Bucket:
    failures: int
    window_start: float
    blocked_until: float


class RateLimiter:
    def __init__(self, *, clock: object = time.monotonic) -> None:
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _now(self) -> float:
        return self._clock()  # type: ignore[operator,no-any-return]

    def check(self, *keys: str) -> None:
        """Raise RateLimited if any key is in backoff."""
        now = self._now()
        wait = 0.0
        for key in keys:
            b = self._buckets.get(key)
            if b is not None and b.blocked_until > now:
                wait = max(wait, b.blocked_until - now)
        if wait > 0:
            raise RateLimited("too many attempts; try again later", retry_after_s=wait)

    def failure(self, key: str, budget: int) -> None:
        now = self._now()
        b = self._buckets.get(key)
        if b is None or now - b.window_start > WINDOW_S:
            b = _Bucket(0, now, 0.0)
            self._buckets[key] = b
        self._buckets.move_to_end(key)
        b.failures += 1
        over = b.failures - budget
        if over > 0:
            b.blocked_until = now + min(MAX_DELAY_S, BASE_DELAY_S * 2 ** (over - 1))
        while len(self._buckets) > MAX_KEYS:
            self._buckets.popitem(last=False)

    def success(self, key: str) -> None:
        self._buckets.pop(key, None)


def account_key(purpose: str, email: str) -> str:
    return f"{purpose}:account:{email.strip().lower()}"


def address_key(purpose: str, ip: str | None) -> str:
    return f"{purpose}:ip:{ip or 'unknown'}"
