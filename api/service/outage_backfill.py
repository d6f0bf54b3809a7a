"""Outage backfill: port outages rebuilt from the connector status history.

Detection (faults.py, offline.py) writes `port_outage` rows live, but only from the day it
existed and only while a worker ran. The status history (`connector_status_event`) goes back
further, so uptime can be made whole by replaying it: a Faulted or Unavailable status opens an
interval of that cause on its connector, the next status of that connector that is not the same
down status ends it (Faulted → Unavailable ends the faulted interval and opens an unavailable
one, as the live reconcile job does). A Faulted station (connector 0) is down on every one of
its connectors.

Guarantees:
- Only adds, never edits: a rebuilt interval is inserted only where no existing outage of the
  same cause on the same connector overlaps it, so live rows (with their incidents and the
  exclusions classified against them) stay as they are, and a second run adds nothing.
- An interval still open when the history ends stays open only if the connector (the station,
  for connector 0) still reports that status; otherwise the recovery went unrecorded and the
  interval ends at the station's next event, the first moment it was heard from again
  (falling back to the connector's `status_since`).
- With `since`, the status each connector had at `since` counts from `since` on, so a fault
  that began earlier is clipped rather than lost.
- Memory is bounded by one connector's outages, not by the history: events are read in keyset
  pages of EVENT_PAGE rows, a connector's intervals are written when its events end, and each
  station is its own transaction, so an interrupted run keeps the stations it finished.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schema.enums import ConnectorStatus
from schema.incident_models import OutageCause, PortOutage
from schema.models import ChargingStation, Connector, ConnectorStatusEvent
from schema.outbox import NO_ERROR

EVENT = ConnectorStatusEvent.__table__  # type: ignore[attr-defined]
OUTAGE = PortOutage.__table__  # type: ignore[attr-defined]
CONNECTOR = Connector.__table__  # type: ignore[attr-defined]
STATION = ChargingStation.__table__  # type: ignore[attr-defined]

DOWN = {
    ConnectorStatus.FAULTED.value: OutageCause.FAULTED,
    ConnectorStatus.UNAVAILABLE.value: OutageCause.UNAVAILABLE,
}
STATION_CONNECTOR = 0
# Status events read per query: a station with years of history is paged through, holding
# one page at a time (a few hundred kB).
EVENT_PAGE = 5_000
FOREVER = datetime.max.replace(tzinfo=UTC)  # the end of an outage still open


@dataclass(frozen=True, slots=True)
class StatusChange:
    connector_id: int
    status: str
    error_code: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Interval:
    """[start, end) on one connector; `end` None: down until now."""

    connector_id: int
    cause: OutageCause
    start: datetime
    end: datetime | None
    error_code: str | None


@dataclass(frozen=True, slots=True)
class BackfillResult:
    stations: int
    added: Mapping[OutageCause, int]


class IntervalTracker:
    """Turns one connector's status changes, fed in time order, into intervals.

    `feed` returns the interval a change finished, if any; `finish` the one still open when
    the changes ran out (`end` None), to be settled against the connector's current status."""

    def __init__(self) -> None:
        self._open: Interval | None = None

    def feed(self, change: StatusChange) -> Interval | None:
        current = self._open
        if current is not None and current.cause == DOWN.get(change.status):
            return None
        self._open = None
        self._start(change)
        return None if current is None else replace(current, end=change.at)

    def finish(self) -> Interval | None:
        current, self._open = self._open, None
        return current

    def _start(self, change: StatusChange) -> None:
        cause = DOWN.get(change.status)
        if cause is not None:
            code = None if change.error_code == NO_ERROR else change.error_code
            self._open = Interval(change.connector_id, cause, change.at, None, code)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Same-cause intervals on a connector that overlap or touch become one (a station fault
    during a connector fault is one outage), keeping the earlier one's error code."""
    merged: list[Interval] = []
    for i in sorted(intervals, key=lambda i: (i.connector_id, i.cause, i.start)):
        last = merged[-1] if merged else None
        if (
            last is not None
            and (last.connector_id, last.cause) == (i.connector_id, i.cause)
            and (last.end is None or i.start <= last.end)
        ):
            end = None if last.end is None or i.end is None else max(last.end, i.end)
            merged[-1] = replace(last, end=end)
        else:
            merged.append(i)
    return merged


class _Covered:
    """One port's existing outages of one cause, for overlap questions in O(log n): sorted by
    start with the running maximum of their ends, an interval [s, e) overlaps one of them iff
    the latest end among those starting before e lies after s. (Comparing every pair took
    minutes for a station with a hundred thousand outages.)"""

    def __init__(self, intervals: Iterable[Interval]) -> None:
        ordered = sorted(intervals, key=lambda i: i.start)
        self.starts = [i.start for i in ordered]
        self.reach = list(accumulate((i.end or FOREVER for i in ordered), max))

    def overlaps(self, start: datetime, end: datetime | None) -> bool:
        before = len(self.starts) if end is None else bisect_left(self.starts, end)
        return before > 0 and self.reach[before - 1] > start


def missing(candidates: Iterable[Interval], existing: Iterable[Interval]) -> list[Interval]:
    """The candidates no existing outage of their cause on their connector overlaps."""
    by_port: dict[tuple[int, OutageCause], list[Interval]] = {}
    for e in existing:
        by_port.setdefault((e.connector_id, e.cause), []).append(e)
    covered = {port: _Covered(intervals) for port, intervals in by_port.items()}
    empty = _Covered(())
    return [
        c
        for c in candidates
        if c.end != c.start and not covered.get((c.connector_id, c.cause), empty).overlaps(c.start, c.end)
    ]


# -- reading and writing -----------------------------------------------------------------------


async def backfill_outages(
    engine: AsyncEngine,
    *,
    since: datetime | None = None,
    organization_id: int | None = None,
    page: int = EVENT_PAGE,
) -> BackfillResult:
    """Rebuild and insert the missing faulted/unavailable outages of every station (of one
    organisation), one station per transaction."""
    async with engine.connect() as conn:
        stmt = select(STATION.c.id).order_by(STATION.c.id)
        if organization_id is not None:
            stmt = stmt.where(STATION.c.organization_id == organization_id)
        station_ids: list[int] = list((await conn.execute(stmt)).scalars())
    added: Counter[OutageCause] = Counter()
    for sid in station_ids:
        async with engine.begin() as conn:
            added.update(await backfill_station(conn, sid, since=since, page=page))
    return BackfillResult(len(station_ids), {c: added[c] for c in OutageCause if c in DOWN.values()})


async def backfill_station(
    conn: AsyncConnection, station_id: int, *, since: datetime | None, page: int = EVENT_PAGE
) -> Counter[OutageCause]:
    """One connector at a time (connector 0, the station, first, so its faults are known when
    its connectors' turn comes): memory holds one connector's intervals, not the station's."""
    station = _Station(conn, station_id)
    await station.load()
    tracker, cid, intervals = IntervalTracker(), None, list[Interval]()
    async for change in _history(conn, station_id, since, page):
        if change.connector_id != cid:
            if cid is not None:
                await station.connector_done(cid, [*intervals, *_some(tracker.finish())])
            tracker, cid, intervals = IntervalTracker(), change.connector_id, []
        intervals += _some(tracker.feed(change))
    if cid is not None:
        await station.connector_done(cid, [*intervals, *_some(tracker.finish())])
    for quiet in sorted(set(station.connectors) - station.done):  # no history: station faults only
        await station.connector_done(quiet, [])
    return station.added


def _some(interval: Interval | None) -> list[Interval]:
    return [] if interval is None else [interval]


class _Station:
    """What one station's backfill needs to remember between its connectors."""

    def __init__(self, conn: AsyncConnection, station_id: int) -> None:
        self.conn, self.station_id = conn, station_id
        self.connectors: dict[int, Any] = {}
        self.status: str | None = None
        self.faults: list[Interval] = []  # the station's own (connector 0)
        self.done: set[int] = set()
        self.added: Counter[OutageCause] = Counter()

    async def load(self) -> None:
        rows = await self.conn.execute(
            select(CONNECTOR.c.connector_id, CONNECTOR.c.status, CONNECTOR.c.status_since).where(
                CONNECTOR.c.station_id == self.station_id
            )
        )
        self.connectors = {r.connector_id: r for r in rows}
        stmt = select(STATION.c.status).where(STATION.c.id == self.station_id)
        self.status = (await self.conn.execute(stmt)).scalar()

    async def connector_done(self, cid: int, intervals: list[Interval]) -> None:
        settled = [s for s in [await self._settle(i) for i in intervals] if s is not None]
        if cid == STATION_CONNECTOR:
            # A station-level Unavailable is not spread: OCPP stations report each connector's
            # availability on its own, which the connectors' histories already hold.
            self.faults = [i for i in settled if i.cause is OutageCause.FAULTED]
            return
        self.done.add(cid)
        if cid not in self.connectors:  # a connector number the station no longer has
            return
        candidates = merge(settled + [replace(i, connector_id=cid) for i in self.faults])
        if not candidates:
            return
        new = missing(candidates, await _existing(self.conn, self.station_id, cid))
        if new:
            await self.conn.execute(
                OUTAGE.insert(),
                [
                    {
                        "station_id": self.station_id,
                        "connector_id": i.connector_id,
                        "cause": i.cause.value,
                        "started_at": i.start,
                        "ended_at": i.end,
                        "error_code": i.error_code,
                    }
                    for i in new
                ],
            )
        self.added.update(i.cause for i in new)

    async def _settle(self, i: Interval) -> Interval | None:
        """An interval open at the end of the history: open while its status still holds, else
        ended by the station's next word (or the connector's `status_since`)."""
        if i.end is not None:
            return i
        row = self.connectors.get(i.connector_id)
        now = self.status if i.connector_id == STATION_CONNECTOR else getattr(row, "status", None)
        if DOWN.get(now or "") is i.cause:
            return i
        end = await _next_event_after(self.conn, self.station_id, i.start) or getattr(
            row, "status_since", None
        )
        if end is None or end <= i.start:
            return None  # recovered at an unknown time: nothing to place
        return replace(i, end=end)


async def _history(
    conn: AsyncConnection, station_id: int, since: datetime | None, page: int
) -> AsyncIterator[StatusChange]:
    """The station's changes in connector-then-time order; with `since`, each connector's last
    status before it comes first, as if reported at `since`."""
    seeds = deque([] if since is None else await _status_at(conn, station_id, since))
    async for rows in _pages(conn, station_id, since, page):
        for change in rows:
            # A seed (dated `since`) goes before its connector's changes, which are all later.
            while seeds and seeds[0].connector_id <= change.connector_id:
                yield seeds.popleft()
            yield change
    while seeds:
        yield seeds.popleft()


async def _pages(
    conn: AsyncConnection, station_id: int, since: datetime | None, page: int
) -> AsyncIterator[list[StatusChange]]:
    """Keyset pages over the (station, connector, time) index: each page starts after the last
    row of the one before, so a page costs the same however deep into the history it is."""
    after: tuple[int, datetime, int] | None = None
    while True:
        stmt = (
            select(EVENT.c.id, EVENT.c.connector_id, EVENT.c.status, EVENT.c.error_code, EVENT.c.received_at)
            .where(EVENT.c.station_id == station_id)
            .order_by(EVENT.c.connector_id, EVENT.c.received_at, EVENT.c.id)
            .limit(page)
        )
        if since is not None:
            stmt = stmt.where(EVENT.c.received_at >= since)
        if after is not None:
            cid, at, eid = after
            stmt = stmt.where(
                or_(
                    EVENT.c.connector_id > cid,
                    and_(
                        EVENT.c.connector_id == cid,
                        or_(EVENT.c.received_at > at, and_(EVENT.c.received_at == at, EVENT.c.id > eid)),
                    ),
                )
            )
        rows = (await conn.execute(stmt)).all()
        if not rows:
            return
        yield [StatusChange(r.connector_id, r.status, r.error_code, r.received_at) for r in rows]
        if len(rows) < page:
            return
        after = (rows[-1].connector_id, rows[-1].received_at, rows[-1].id)


async def _status_at(conn: AsyncConnection, station_id: int, since: datetime) -> list[StatusChange]:
    """Each connector's last reported status before `since`, dated `since`."""
    last = (
        select(EVENT.c.connector_id, func.max(EVENT.c.received_at).label("at"))
        .where(EVENT.c.station_id == station_id, EVENT.c.received_at < since)
        .group_by(EVENT.c.connector_id)
        .subquery()
    )
    rows = await conn.execute(
        select(EVENT.c.connector_id, EVENT.c.status, EVENT.c.error_code)
        .join(last, and_(EVENT.c.connector_id == last.c.connector_id, EVENT.c.received_at == last.c.at))
        .where(EVENT.c.station_id == station_id)
        .order_by(EVENT.c.connector_id, EVENT.c.id)
    )
    # Two events at the same instant: the later id is the later report.
    latest = {r.connector_id: StatusChange(r.connector_id, r.status, r.error_code, since) for r in rows}
    return [latest[c] for c in sorted(latest)]


async def _next_event_after(conn: AsyncConnection, station_id: int, at: datetime) -> datetime | None:
    stmt = select(func.min(EVENT.c.received_at)).where(
        EVENT.c.station_id == station_id, EVENT.c.received_at > at
    )
    value: datetime | None = (await conn.execute(stmt)).scalar()
    return value


async def _existing(conn: AsyncConnection, station_id: int, connector_id: int) -> list[Interval]:
    rows = await conn.execute(
        select(OUTAGE.c.connector_id, OUTAGE.c.cause, OUTAGE.c.started_at, OUTAGE.c.ended_at).where(
            OUTAGE.c.station_id == station_id,
            OUTAGE.c.connector_id == connector_id,
            OUTAGE.c.cause.in_([c.value for c in DOWN.values()]),
        )
    )
    return [Interval(r.connector_id, OutageCause(r.cause), r.started_at, r.ended_at, None) for r in rows]
