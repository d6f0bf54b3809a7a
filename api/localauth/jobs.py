"""The worker's part: managed stations follow their organisation's tokens by themselves.

Each run finds the stations whose list is owed an update (repository.due_stations: a token of
their organisation added, changed or deleted since the last attempt, or an earlier attempt
still pending) and syncs the online ones as the system actor; offline ones are only marked
pending, and synced as soon as they are back online (no command is sent into the void).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy.ext.asyncio import AsyncEngine

from api.audit.service import SYSTEM_ACTOR
from api.localauth import repository as repo
from api.localauth import service
from schema.bus import Bus
from schema.db import session_factory
from schema.models import ChargingStation
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

# Token changes reach stations within about this long; each run costs one query when nothing
# changed.
SYNC_INTERVAL_S = 60.0
# A station that answered Failed or timed out is asked again after this long, not every run:
# a station that refuses its list will not change its mind within a minute.
RETRY_AFTER_S = 600.0
# Stations synced per run; a large backlog (every station of an organisation after a bulk
# token import) drains over a few runs.
MAX_SYNCS_PER_RUN = 200


@dataclass(frozen=True, slots=True)
class JobResult:
    synced: int
    failed: int
    waiting_offline: int


async def sync_due_lists(
    engine: AsyncEngine,
    bus: Bus,
    *,
    command_timeout_s: float,
    retry_after_s: float = RETRY_AFTER_S,
    now: datetime | None = None,
) -> JobResult:
    now = now or utcnow()
    async with engine.begin() as conn:
        due = await repo.due_stations(
            conn, now=now, retry_before=now - timedelta(seconds=retry_after_s), limit=MAX_SYNCS_PER_RUN
        )
        offline = [int(r.station_id) for r in due if not r.online]
        await repo.mark_pending(conn, offline)
        online = [int(r.station_id) for r in due if r.online]
        stations = await repo.stations(conn, online) if online else []
    if not stations:
        return JobResult(0, 0, len(offline))
    results = await service.sync_many(
        session_factory(engine),
        bus,
        SYSTEM_ACTOR,
        [cast(ChargingStation, st) for st in stations],
        timeout_s=command_timeout_s,
    )
    failed = sum(r.pending for r in results)
    log.info("local lists: %d stations synced, %d still pending", len(results) - failed, failed)
    return JobResult(len(results) - failed, failed, len(offline))
