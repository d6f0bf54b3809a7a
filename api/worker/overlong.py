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

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from api.audit.service import SYSTEM_ACTOR
from api.control import operations
from api.control.service import CommandOutcome
from api.worker import repository as repo
from schema.bus import Bus
from schema.commands import RemoteStop
from schema.db import session_factory
from schema.enums import TransactionState
from schema.models import ChargingStation
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

OVER_MAX_DURATION = "over_max_duration"
TRANSACTION = repo.TRANSACTION
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
    """Flag (a durable `SessionFlagged`, once) and ask the station to stop each session past
    the limit; every stop is in the command log as sent by the system."""
    now = now or utcnow()
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(TRANSACTION.c.id, TRANSACTION.c.station_id)
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
    db = session_factory(engine)
    async with db() as s:
        stations = {
            st.id: st
            for st in (
                await s.exec(
                    select(ChargingStation).where(col(ChargingStation.id).in_({r.station_id for r in rows}))
                )
            ).all()
        }
    stopped = 0
    for r in rows:
        result = await operations.send_logged(
            db,
            bus,
            SYSTEM_ACTOR,
            stations[r.station_id],
            RemoteStop(transaction_id=int(r.id)),
            command_timeout_s,
        )
        if result.outcome is CommandOutcome.ACCEPTED:
            stopped += 1
        else:  # offline, timed out, refused: the next run asks again
            log.info("could not stop overlong session %s: %s", r.id, result.message)
    log.warning(
        "%d sessions ran longer than %.0f h; %d stop requests accepted", len(rows), max_age_s / 3600, stopped
    )
    return OverlongResult(len(rows), stopped)
