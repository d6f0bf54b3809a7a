"""Sessions that run far beyond any real charge ("eternal" transactions): stopped remotely.

A transaction left Active for days usually means the station lost its stop (a reboot, a
firmware bug) while the connector is long free again; billing and utilization figures would
count it for ever. Past CHARGENET_MAX_SESSION_HOURS the worker asks the station to stop it
and flags it (stuck_session, reason `over_max_duration`) so an operator sees what happened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.worker import repository as repo
from schema.bus import Bus
from schema.commands import RemoteStop
from schema.enums import TransactionState
from schema.errors import ChargeNetError
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

OVER_MAX_DURATION = "over_max_duration"
TRANSACTION, STATION = repo.TRANSACTION, repo.STATION
# Stops sent per run: a backlog (the setting just switched on) drains over a few runs instead
# of one burst of commands.
MAX_STOPS_PER_RUN = 100


@dataclass(frozen=True, slots=True)
class OverlongResult:
    found: int
    stopped: int


async def stop_overlong_sessions(
    engine: AsyncEngine, bus: Bus, *, max_age_s: float, command_timeout_s: float, now: datetime | None = None
) -> OverlongResult:
    now = now or utcnow()
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(TRANSACTION.c.id, STATION.c.charge_point_id)
                .select_from(TRANSACTION.join(STATION, STATION.c.id == TRANSACTION.c.station_id))
                .where(
                    TRANSACTION.c.state == TransactionState.ACTIVE.value,
                    TRANSACTION.c.started_at < now - timedelta(seconds=max_age_s),
                )
                .order_by(TRANSACTION.c.id)
                .limit(MAX_STOPS_PER_RUN)
            )
        ).all()
    if not rows:
        return OverlongResult(0, 0)
    async with engine.begin() as conn:
        await repo.flag_stuck(conn, [(int(r.id), OVER_MAX_DURATION) for r in rows], now)
    stopped = 0
    for r in rows:
        try:
            reply = await bus.request(
                r.charge_point_id, RemoteStop(transaction_id=int(r.id)), timeout=command_timeout_s
            )
        except ChargeNetError as exc:  # offline, timed out, refused by the protocol: next run
            log.info("could not stop overlong session %s on %s: %s", r.id, r.charge_point_id, exc)
            continue
        stopped += reply.accepted
    log.warning(
        "%d sessions ran longer than %.0f h; %d stop requests accepted", len(rows), max_age_s / 3600, stopped
    )
    return OverlongResult(len(rows), stopped)
