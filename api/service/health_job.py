"""The worker's health job: score every station, keep the scores, and turn a score crossing
the threshold into an early-warning incident (and a recovery into its resolution).

Runs once per interval across replicas (the scheduler's lock) and, on PostgreSQL, under a
transaction-level advisory lock too: a replica whose interval lock expired mid-run skips
instead of scoring twice at once. Scores, incidents and their timeline entries commit in one
transaction; the `IncidentChanged` events go on the bus only after that commit.

An incident opens when a station *crosses* into degraded (the hysteresis in
`health.next_degraded`), not on every run while it stays there: an operator who resolved it
by hand is not contradicted an hour later. It resolves itself when the station recovers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.service import health_repository as repo
from api.service import incidents
from api.service.health import HealthPolicy, HealthScore, next_degraded, score
from api.service.incidents import IncidentChange, Problem
from schema.bus import Bus
from schema.errors import BusUnavailable
from schema.incident_models import IncidentKind, IncidentSeverity
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

# pg_try_advisory_xact_lock key of the health job ("health" in ASCII).
HEALTH_LOCK_KEY = 0x6865616C7468
# Inputs named in an incident's title, the worst first.
TITLE_FACTORS = 2


@dataclass(frozen=True, slots=True)
class HealthRun:
    scored: int = 0
    opened: tuple[int, ...] = ()  # incident ids
    resolved: tuple[int, ...] = ()
    skipped: bool = False


def degraded_key(station_id: int) -> str:
    return incidents.dedup_key(IncidentKind.DEGRADED, station_id, None)


async def refresh_health(
    engine: AsyncEngine, policy: HealthPolicy, *, bus: Bus | None = None, now: datetime | None = None
) -> HealthRun:
    """One run; `now` (default: the clock) ends the window, so tests replay a week at once."""
    now = now or utcnow()
    window = repo.Window(now - timedelta(days=policy.window_days), now)
    changes: list[IncidentChange] = []
    opened: list[int] = []
    resolved: list[int] = []
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            got = await conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": HEALTH_LOCK_KEY})
            if not got.scalar():
                return HealthRun(skipped=True)
        inputs = await repo.gather_inputs(conn, policy, window)
        previous = await repo.previous_states(conn)
        rows: list[dict[str, Any]] = []
        for station_id, station_inputs in inputs.items():
            result = score(station_inputs, policy)
            was, since = previous.get(station_id, (False, None))
            degraded = next_degraded(was, result.score, policy)
            if degraded and not was:
                since = now
                change = await incidents.open_or_recur(conn, _problem(station_id, result, policy), at=now)
                changes.append(change)
                if change.change == "opened":  # else one was still open: it recurred
                    opened.append(change.incident_id)
            elif was and not degraded:
                since = None
                done = await incidents.resolve_by_key(
                    conn,
                    degraded_key(station_id),
                    at=now,
                    resolution=f"health score recovered to {result.score}",
                    detail=_evidence(result, policy),
                )
                if done is not None:
                    changes.append(done)
                    resolved.append(done.incident_id)
            rows.append(
                {
                    "station_id": station_id,
                    "score": result.score,
                    "degraded": degraded,
                    "degraded_since": since,
                    "threshold": policy.threshold,
                    "window_start": window.since,
                    "computed_at": now,
                    "factors": result.factors_json(),
                }
            )
        await repo.store(conn, rows)
    await _publish(bus, changes)
    if opened or resolved:
        log.info("station health: %d degraded incidents opened, %d resolved", len(opened), len(resolved))
    return HealthRun(len(rows), tuple(opened), tuple(resolved))


def _evidence(result: HealthScore, policy: HealthPolicy) -> dict[str, Any]:
    return {
        "score": result.score,
        "threshold": policy.threshold,
        "window_days": policy.window_days,
        "factors": result.factors_json(),
    }


def _problem(station_id: int, result: HealthScore, policy: HealthPolicy) -> Problem:
    worst = sorted((f for f in result.factors if f.sub_score < 100), key=lambda f: f.sub_score)
    named = ", ".join(f.kind.value.replace("_", " ") for f in worst[:TITLE_FACTORS])
    return Problem(
        station_id=station_id,
        connector_id=None,
        kind=IncidentKind.DEGRADED,
        severity=IncidentSeverity.LOW,
        dedup_key=degraded_key(station_id),
        title=f"Health score {result.score} below {policy.threshold}" + (f" ({named})" if named else ""),
        evidence=_evidence(result, policy),
    )


async def _publish(bus: Bus | None, changes: list[IncidentChange]) -> None:
    if bus is None or not changes:
        return
    try:
        await bus.publish([c.event for c in changes])
    except BusUnavailable:  # committed: live views catch up on their next read
        log.warning("%d health incident changes not announced live: the bus is unavailable", len(changes))
