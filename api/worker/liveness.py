"""Liveness of a portless worker: a file touched while the process does its work.

An orchestrator restarts a container whose process exits, but not one whose event loop is
stuck in a blocking call or whose loops died of an uncaught error while the process lives
on. The beat is written from the event loop and only while every loop still runs, so either
failure makes the file grow old and infra/healthcheck.py `worker` report it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

# Beat period; the health check allows several missed beats (infra/healthcheck.py).
BEAT_INTERVAL_S = 10.0


async def beat(path: Path, alive: Callable[[], bool], *, interval_s: float = BEAT_INTERVAL_S) -> None:
    """Touch `path` every `interval_s` while `alive()`; remove it when cancelled."""
    try:
        while True:
            if alive():
                _touch(path)
            else:
                log.error("a worker loop stopped; liveness file %s is no longer refreshed", path)
            await asyncio.sleep(interval_s)
    finally:
        with contextlib.suppress(OSError):
            _remove(path)


# On the event loop on purpose: the beat is proof that the loop itself still turns (a
# metadata write to the container's tmpfs takes microseconds).
def _touch(path: Path) -> None:
    try:
        path.touch()
        os.utime(path)
    except OSError:
        log.warning("cannot write the liveness file %s", path, exc_info=True)


def _remove(path: Path) -> None:
    path.unlink()
