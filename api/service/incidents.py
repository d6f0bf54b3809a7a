"""The incident lifecycle every serviceability part shares: open (or recur), acknowledge,
comment, resolve — each with its timeline entry and the live `IncidentChanged` it announces.

Detection rules, work orders and people all go through these functions, so an incident has
one meaning wherever it came from. They take the caller's connection and never commit: an
incident opens in the same transaction as the fact that caused it, or not at all.

Deduplication is the database's: at most one unresolved incident per `dedup_key` (a partial
unique index), so two workers seeing the same fault at once still open one incident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schema.db import insert_on_conflict
from schema.errors import InvalidInput, NotFound
from schema.events import IncidentChanged
from schema.incident_models import (
    Incident,
    IncidentEntry,
    IncidentKind,
    IncidentSeverity,
    IncidentState,
)
from schema.models import ChargingStation

INCIDENT = Incident.__table__  # type: ignore[attr-defined]
ENTRY = IncidentEntry.__table__  # type: ignore[attr-defined]
STATION = ChargingStation.__table__  # type: ignore[attr-defined]

# Higher is worse: a recurrence never lowers an open incident's severity.
SEVERITY_RANK = {
    IncidentSeverity.LOW.value: 0,
    IncidentSeverity.MEDIUM.value: 1,
    IncidentSeverity.HIGH.value: 2,
    IncidentSeverity.CRITICAL.value: 3,
}
_UNRESOLVED = INCIDENT.c.state != IncidentState.RESOLVED.value
# The ON CONFLICT target spelt as the partial index's own predicate, with the value inline:
# PostgreSQL plans a prepared statement generically after five runs on a connection, and a
# bound 'resolved' then no longer proves the index applies ("no unique or exclusion constraint
# matching the ON CONFLICT specification").
_UNRESOLVED_LITERAL = text(f"state <> '{IncidentState.RESOLVED.value}'")


@dataclass(frozen=True, slots=True)
class Problem:
    """What a detection rule (or a person) saw: enough to open, or recur, one incident."""

    station_id: int
    connector_id: int | None
    kind: IncidentKind
    severity: IncidentSeverity
    dedup_key: str
    title: str
    error_code: str | None = None
    vendor_error_code: str | None = None
    # False: the station recovering is noted on the timeline, but a person must resolve it.
    auto_resolve: bool = True
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IncidentChange:
    incident_id: int
    change: str  # opened | recurred | acknowledged | commented | resolved | recovered
    event: IncidentChanged


def dedup_key(kind: IncidentKind, station_id: int, connector_id: int | None, *detail: str) -> str:
    """The one spelling of "the same problem": kind, station, connector and what identifies
    it further (an error code), so rules cannot disagree about duplicates."""
    parts = [kind.value, str(station_id), str(connector_id if connector_id is not None else 0), *detail]
    return ":".join(parts)[:200]


async def open_or_recur(conn: AsyncConnection, problem: Problem, *, at: datetime) -> IncidentChange:
    """Open an incident for `problem`, or — if one with its key is still unresolved — count a
    recurrence on it (occurrences, last seen, severity raised if worse)."""
    existing = await _unresolved_by_key(conn, problem.dedup_key)
    if existing is None:
        org = (
            await conn.execute(select(STATION.c.organization_id).where(STATION.c.id == problem.station_id))
        ).scalar()
        inserted = (
            await conn.execute(
                insert_on_conflict(conn, INCIDENT)
                .values(
                    organization_id=org,
                    station_id=problem.station_id,
                    connector_id=problem.connector_id,
                    kind=problem.kind.value,
                    severity=problem.severity.value,
                    state=IncidentState.OPEN.value,
                    dedup_key=problem.dedup_key,
                    title=problem.title[:200],
                    error_code=problem.error_code,
                    vendor_error_code=problem.vendor_error_code,
                    auto_resolve=problem.auto_resolve,
                    occurrences=1,
                    opened_at=at,
                    last_seen_at=at,
                    updated_at=at,
                )
                .on_conflict_do_nothing(index_elements=["dedup_key"], index_where=_UNRESOLVED_LITERAL)
                .returning(INCIDENT.c.id)
            )
        ).scalar()
        if inserted is not None:
            await add_entry(conn, inserted, "opened", at=at, detail=problem.evidence)
            return IncidentChange(inserted, "opened", await change_event(conn, inserted, "opened", at))
        existing = await _unresolved_by_key(conn, problem.dedup_key)  # lost a race: recur on it
        if existing is None:  # resolved in between: rare enough to let the caller's retry decide
            raise RuntimeError(f"incident {problem.dedup_key} vanished while opening")
    incident_id = int(existing.id)
    severity = existing.severity
    if SEVERITY_RANK[problem.severity.value] > SEVERITY_RANK.get(severity, 0):
        severity = problem.severity.value
    await conn.execute(
        update(INCIDENT)
        .where(INCIDENT.c.id == incident_id)
        .values(
            occurrences=INCIDENT.c.occurrences + 1,
            last_seen_at=max(existing.last_seen_at, at),
            severity=severity,
            updated_at=at,
        )
    )
    await add_entry(conn, incident_id, "evidence", at=at, detail=problem.evidence)
    return IncidentChange(incident_id, "recurred", await change_event(conn, incident_id, "recurred", at))


async def resolve_by_key(
    conn: AsyncConnection, key: str, *, at: datetime, resolution: str, detail: dict[str, Any] | None = None
) -> IncidentChange | None:
    """The station recovered from the problem `key` names. Incidents that resolve themselves
    are resolved (by nobody: `resolved_by` NULL); the others get a "recovered" entry and wait
    for a person. None when nothing was open."""
    row = await _unresolved_by_key(conn, key)
    if row is None:
        return None
    if not row.auto_resolve:
        await add_entry(conn, int(row.id), "recovered", at=at, text=resolution, detail=detail or {})
        return IncidentChange(
            int(row.id), "recovered", await change_event(conn, int(row.id), "recovered", at)
        )
    return await resolve(conn, int(row.id), at=at, user_id=None, resolution=resolution, detail=detail)


async def resolve(
    conn: AsyncConnection,
    incident_id: int,
    *,
    at: datetime,
    user_id: int | None,
    resolution: str,
    detail: dict[str, Any] | None = None,
) -> IncidentChange:
    """Resolve an unresolved incident (a person, or the system when `user_id` is None)."""
    done = await conn.execute(
        update(INCIDENT)
        .where(INCIDENT.c.id == incident_id, _UNRESOLVED)
        .values(
            state=IncidentState.RESOLVED.value,
            resolved_at=at,
            resolved_by=user_id,
            resolution=resolution[:500],
            updated_at=at,
        )
    )
    if done.rowcount == 0:
        await _require(conn, incident_id)
        raise InvalidInput("the incident is already resolved")
    await add_entry(
        conn, incident_id, "resolved", at=at, user_id=user_id, text=resolution, detail=detail or {}
    )
    return IncidentChange(incident_id, "resolved", await change_event(conn, incident_id, "resolved", at))


async def acknowledge(
    conn: AsyncConnection, incident_id: int, *, at: datetime, user_id: int
) -> IncidentChange:
    """Someone owns the problem now: an open incident becomes acknowledged (once)."""
    done = await conn.execute(
        update(INCIDENT)
        .where(INCIDENT.c.id == incident_id, INCIDENT.c.state == IncidentState.OPEN.value)
        .values(
            state=IncidentState.ACKNOWLEDGED.value, acknowledged_at=at, acknowledged_by=user_id, updated_at=at
        )
    )
    if done.rowcount == 0:
        row = await _require(conn, incident_id)
        raise InvalidInput(f"the incident is {row.state}, not open")
    await add_entry(conn, incident_id, "acknowledged", at=at, user_id=user_id)
    return IncidentChange(
        incident_id, "acknowledged", await change_event(conn, incident_id, "acknowledged", at)
    )


async def comment(
    conn: AsyncConnection, incident_id: int, *, at: datetime, user_id: int, text: str
) -> IncidentChange:
    body = text.strip()
    if not body:
        raise InvalidInput("a comment needs text")
    if len(body) > 2000:
        raise InvalidInput("a comment is at most 2,000 characters")
    await _require(conn, incident_id)
    await conn.execute(update(INCIDENT).where(INCIDENT.c.id == incident_id).values(updated_at=at))
    await add_entry(conn, incident_id, "comment", at=at, user_id=user_id, text=body)
    return IncidentChange(incident_id, "commented", await change_event(conn, incident_id, "commented", at))


async def add_entry(
    conn: AsyncConnection,
    incident_id: int,
    kind: str,
    *,
    at: datetime,
    user_id: int | None = None,
    text: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        ENTRY.insert().values(
            incident_id=incident_id, at=at, kind=kind, user_id=user_id, text=text, detail=detail or {}
        )
    )


async def change_event(conn: AsyncConnection, incident_id: int, change: str, at: datetime) -> IncidentChanged:
    row = (
        await conn.execute(
            select(
                INCIDENT.c.id,
                INCIDENT.c.organization_id,
                INCIDENT.c.station_id,
                INCIDENT.c.connector_id,
                INCIDENT.c.kind,
                INCIDENT.c.severity,
                INCIDENT.c.state,
                INCIDENT.c.title,
                STATION.c.charge_point_id,
                STATION.c.location_id,
            )
            .join(STATION, STATION.c.id == INCIDENT.c.station_id)
            .where(INCIDENT.c.id == incident_id)
        )
    ).one()
    return IncidentChanged(
        station_id=row.station_id,
        charge_point_id=row.charge_point_id,
        location_id=row.location_id,
        at=at,
        incident_id=int(row.id),
        organization_id=row.organization_id,
        connector_id=row.connector_id,
        incident_kind=row.kind,
        severity=row.severity,
        state=row.state,
        title=row.title,
        change=change,
    )


async def _unresolved_by_key(conn: AsyncConnection, key: str) -> Row[Any] | None:
    stmt = select(INCIDENT).where(INCIDENT.c.dedup_key == key, _UNRESOLVED)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return (await conn.execute(stmt)).first()


async def _require(conn: AsyncConnection, incident_id: int) -> Row[Any]:
    row = (await conn.execute(select(INCIDENT).where(INCIDENT.c.id == incident_id))).first()
    if row is None:
        raise NotFound(f"incident {incident_id} not found")
    return row
