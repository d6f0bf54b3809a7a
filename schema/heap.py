"""Garbage-collector policy for processes that hold many long-lived objects.

A gateway keeps a few hundred Python objects per connected charger for hours, and an API
process keeps subscriptions and caches. CPython's full collection walks every one of them:
with 10,000 chargers that is a pause of most of a second that every charger and subscriber
feels at once. So, every few seconds, the young generations are collected and whatever
survived is frozen out of the collector's view (`gc.freeze`); later collections scan only what
is new. Frozen objects that die in reference cycles (a closed connection's) are reclaimed by a
rare, deliberate full pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time

log = logging.getLogger(__name__)

# Short enough that what survives the young generations is frozen before it piles up in the
# old one (a full collection of even a few seconds of survivors showed as 100+ ms pauses);
# each step costs one youngest-generation collection (well under a millisecond).
FREEZE_INTERVAL_S = 2.0
# How often frozen garbage is reclaimed with one full pass (about a second per 10,000 chargers).
RECLAIM_INTERVAL_S = 3600.0

_task: asyncio.Task[None] | None = None


class HeapPolicy:
    def __init__(self, *, reclaim_interval_s: float = RECLAIM_INTERVAL_S) -> None:
        self._reclaim_interval_s = reclaim_interval_s
        self._last_reclaim = time.monotonic()
        self.freezes = 0
        self.reclaims = 0

    def tick(self) -> None:
        if time.monotonic() - self._last_reclaim >= self._reclaim_interval_s:
            started = time.perf_counter()
            gc.unfreeze()
            gc.collect()
            self._last_reclaim = time.monotonic()
            self.reclaims += 1
            log.info("heap reclaim took %.0f ms", (time.perf_counter() - started) * 1000)
        else:
            # Only the youngest generation first: collecting the middle one too measured 15-45 ms
            # with 10,000 chargers, itself a tail-latency spike. Cyclic garbage that reached
            # the middle generation is frozen and waits for the reclaim.
            gc.collect(0)
        gc.freeze()
        self.freezes += 1


async def _run(policy: HeapPolicy, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        policy.tick()


def settle() -> None:
    """Freeze what start-up built (modules, schema, caches, pools): it lives as long as the
    process, and without this every full collection walks it again."""
    gc.collect()
    gc.freeze()


def install(interval_s: float = FREEZE_INTERVAL_S) -> None:
    """Settle now, then keep freezing survivors in this process's event loop (once)."""
    global _task
    if _task is not None and not _task.done():
        return
    settle()
    _task = asyncio.create_task(_run(HeapPolicy(), interval_s), name="chargenet-heap")


async def uninstall() -> None:
    global _task
    if _task is not None:
        _task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _task
        _task = None
    gc.unfreeze()
