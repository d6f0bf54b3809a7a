"""Garbage-collector policy for a process holding thousands of long-lived connections.

Each charger connection is a few hundred Python objects that live for hours. CPython's full
collection walks all of them: with 10,000 chargers that is a pause of most of a second, felt
as a latency spike by every charger at once. Connections that have settled are therefore
moved out of the collector's view (`gc.freeze`), so collections only scan young objects.
Frozen objects that later die in reference cycles are reclaimed in a rare, deliberate full
collection.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)

# Freeze again once this many connections arrived since the last freeze (a boot storm is
# frozen in a few steps; a steady trickle once a minute or so).
FREEZE_AFTER_NEW_CONNECTIONS = 200
# How often frozen garbage (closed connections' cycles) is reclaimed with one full pass.
RECLAIM_INTERVAL_S = 3600.0


class HeapPolicy:
    def __init__(self, *, reclaim_interval_s: float = RECLAIM_INTERVAL_S) -> None:
        self._connections_at_freeze = 0
        self._reclaim_interval_s = reclaim_interval_s
        self._last_reclaim = time.monotonic()
        self.freezes = 0
        self.reclaims = 0

    def tick(self, connections_opened: int) -> None:
        """Call periodically with the running count of connections ever opened."""
        now = time.monotonic()
        if now - self._last_reclaim >= self._reclaim_interval_s:
            started = time.perf_counter()
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self._last_reclaim = now
            self._connections_at_freeze = connections_opened
            self.reclaims += 1
            log.info("heap reclaim took %.0f ms", (time.perf_counter() - started) * 1000)
            return
        if connections_opened - self._connections_at_freeze >= FREEZE_AFTER_NEW_CONNECTIONS:
            # Collect the young generations first so garbage is not frozen with the survivors.
            gc.collect(1)
            gc.freeze()
            self._connections_at_freeze = connections_opened
            self.freezes += 1
