"""Time-of-use windows on the UTC time line, in a location's local time.

Windows are written in wall-clock time ("22:00–06:00, Mon–Fri") and the engine works in UTC
milliseconds; each local day's window changes are computed once per zone and window set and
cached, because a month of sessions at one location touches only about thirty days.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schema.errors import InvalidInput

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)
ONE_DAY = timedelta(days=1)
DAY_MS = 86_400_000
# Local days whose window changes are kept per schedule: a year of days for a few zones.
MAX_CACHED_DAYS = 4_096


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from None


def to_ms(at: datetime) -> int:
    """Exact UTC milliseconds (no float rounding): the engine's unit of time."""
    return (at - EPOCH) // ONE_MS


def contains(start: time, end: time, days: frozenset[int], weekday: int, at: time) -> bool:
    """Whether a window holds the local (weekday, time). A window past midnight (end <= start)
    belongs to the day it starts on: Friday 22:00–06:00 holds Saturday 03:00."""
    if start < end:
        return (not days or weekday in days) and start <= at < end
    if at >= start:
        return not days or weekday in days
    return at < end and (not days or (weekday - 1) % 7 in days)


class Schedule:
    """Which window (index, or -1 for none) is in force from each instant of a local day."""

    __slots__ = ("_days", "_tz", "_utc", "_windows")

    def __init__(self, time_zone: str, windows: Sequence[tuple[time, time, frozenset[int]]]) -> None:
        self._tz = zone(time_zone)
        self._windows = tuple(windows)
        self._days: dict[int, tuple[tuple[int, int], ...]] = {}
        self._utc: dict[int, tuple[int, tuple[tuple[int, int], ...]]] = {}

    def active(self, weekday: int, at: time) -> int:
        for i, (start, end, days) in enumerate(self._windows):
            if contains(start, end, days, weekday, at):
                return i
        return -1

    def changes(self, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """(instant, window) pairs: the window in force at `start_ms`, then every change
        strictly inside (start_ms, end_ms)."""
        first_day, last_day = start_ms // DAY_MS, end_ms // DAY_MS
        current, points = self._utc_day(first_day)
        result: list[tuple[int, int]] = []
        for k in range(first_day, last_day + 1):
            if k != first_day:
                points = self._utc_day(k)[1]
            for at, window in points:
                if at <= start_ms:
                    current = window
                elif at >= end_ms:
                    break
                elif window != (result[-1][1] if result else current):
                    result.append((at, window))
        return [(start_ms, current), *result]

    def _utc_day(self, k: int) -> tuple[int, tuple[tuple[int, int], ...]]:
        """For UTC day `k` (days since 1970-01-01): the window in force at its midnight and
        the changes within it, from the local days it overlaps."""
        found = self._utc.get(k)
        if found is not None:
            return found
        begin, end = k * DAY_MS, (k + 1) * DAY_MS
        day = datetime.fromtimestamp(begin / 1000, self._tz).date()
        last = datetime.fromtimestamp((end - 1) / 1000, self._tz).date()
        initial, within = -1, []
        while day <= last:
            for at, window in self._day(day):
                if at <= begin:
                    initial = window
                elif at < end:
                    within.append((at, window))
            day += ONE_DAY
        if len(self._utc) >= MAX_CACHED_DAYS:
            self._utc.clear()
        found = self._utc[k] = (initial, tuple(within))
        return found

    def _day(self, day: date) -> tuple[tuple[int, int], ...]:
        key = day.toordinal()
        found = self._days.get(key)
        if found is None:
            if len(self._days) >= MAX_CACHED_DAYS:
                self._days.clear()
            found = self._days[key] = self._compute(day)
        return found

    def _compute(self, day: date) -> tuple[tuple[int, int], ...]:
        """Midnight and every window edge of the local day, with the window from there on.
        Wall-clock times a DST change skips or repeats resolve as zoneinfo does (fold=0)."""
        clock = {time(0)} | {t for start, end, _ in self._windows for t in (start, end)}
        weekday = day.weekday()
        points = []
        for t in sorted(clock):
            at = to_ms(datetime.combine(day, t, self._tz))
            points.append((at, self.active(weekday, t)))
        points.sort()
        return tuple(points)
