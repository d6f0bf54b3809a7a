"""NEVI port uptime (23 CFR 680.116(b)) as pure arithmetic: no database, no clock.

    µ = (525,600 − (T_outage − T_excluded)) / 525,600 × 100

per port over the trailing 12 months, and the same formula per calendar month with that
month's minutes. Decisions, so every figure ChargeNet shows means one thing:

- Months are UTC calendar months. One network figure (and one quarterly report to a state DOT)
  needs one calendar; a location's local months would put the same minute into different
  months for two stations of one report, and local months have DST hours that do not exist.
- The window is the last `months` complete months before the month of `now`: a reported year
  does not change while it is being read. An outage still open runs to `now` (clipped to the
  window like every other).
- The period P is the seconds of the window, which is 525,600 minutes for any twelve months
  without a 29 February — the rule's constant. With one, P has 527,040 minutes, so a port down
  all year reads 0 % and not −0.27 %.
- T_outage is the union of the port's outages (overlapping outages of different causes count
  once). T_excluded is the part of that union also covered by unrevoked exclusions of the port
  or of its whole station: an exclusion where there was no outage excludes nothing.
- A port whose station was created inside the window counts from its creation: its months
  before are left out and its period is shorter, so a new port is judged on the minutes it
  existed instead of being flattered by months it did not. A port created after the window has
  no figure.

Times are integer epoch seconds here (the repository hands them so), which keeps a merge over
hundreds of thousands of outages cheap.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

# The rule's year: 365 × 24 × 60.
RULE_MINUTES = 525_600
SECONDS_PER_MINUTE = 60

Span = tuple[int, int]  # [start, end) in epoch seconds


@dataclass(frozen=True, slots=True, order=True)
class Month:
    year: int
    month: int

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.next().start

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @classmethod
    def of(cls, at: datetime) -> Month:
        at = at.astimezone(UTC)
        return cls(at.year, at.month)


def trailing_months(now: datetime, count: int) -> list[Month]:
    """The `count` complete UTC months before the month of `now`, oldest first."""
    months: list[Month] = []
    m = Month.of(now)
    for _ in range(count):
        m = m.previous()
        months.append(m)
    return months[::-1]


def quarter_months(year: int, quarter: int) -> list[Month]:
    return [Month(year, 3 * (quarter - 1) + i) for i in (1, 2, 3)]


def epoch(at: datetime) -> int:
    return int(at.timestamp())


def union(spans: Iterable[Span]) -> list[Span]:
    """Sorted, disjoint spans covering exactly what `spans` cover (touching ones joined)."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def intersection(a: Sequence[Span], b: Sequence[Span]) -> list[Span]:
    """What two sorted, disjoint span lists both cover (one linear pass)."""
    out: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start = max(a[i][0], b[j][0])
        end = min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def seconds_per_bucket(spans: Sequence[Span], edges: Sequence[int]) -> list[int]:
    """Seconds of disjoint `spans` inside each [edges[k], edges[k+1]) (spans outside ignored)."""
    totals = [0] * (len(edges) - 1)
    for start, end in spans:
        start = max(start, edges[0])
        end = min(end, edges[-1])
        k = bisect_right(edges, start) - 1
        while start < end:
            cut = min(end, edges[k + 1])
            totals[k] += cut - start
            start = cut
            k += 1
    return totals


def percent(period_s: int, outage_s: int, excluded_s: int) -> float:
    """The rule's µ for a period of `period_s` seconds."""
    return (period_s - (outage_s - excluded_s)) / period_s * 100


@dataclass(frozen=True, slots=True)
class Window:
    """The months a report covers and the instant it is computed at."""

    months: tuple[Month, ...]
    now: datetime

    @classmethod
    def trailing(cls, now: datetime, count: int = 12) -> Window:
        return cls(tuple(trailing_months(now, count)), now)

    @property
    def start(self) -> datetime:
        return self.months[0].start

    @property
    def end(self) -> datetime:
        return min(self.months[-1].end, self.now)

    def edges(self) -> list[int]:
        """Month boundaries in epoch seconds, the last one capped at `now`."""
        cap = epoch(self.now)
        return [min(epoch(m.start), cap) for m in self.months] + [min(epoch(self.months[-1].end), cap)]


@dataclass(frozen=True, slots=True)
class MonthFigure:
    month: Month
    period_s: int
    outage_s: int
    excluded_s: int

    @property
    def uptime(self) -> float:
        return percent(self.period_s, self.outage_s, self.excluded_s)


@dataclass(frozen=True, slots=True)
class PortFigure:
    """One port's figures over a window: per month (the months it existed) and in total."""

    station_id: int
    connector_id: int
    months: tuple[MonthFigure, ...]

    @property
    def period_s(self) -> int:
        return sum(m.period_s for m in self.months)

    @property
    def outage_s(self) -> int:
        return sum(m.outage_s for m in self.months)

    @property
    def excluded_s(self) -> int:
        return sum(m.excluded_s for m in self.months)

    @property
    def uptime(self) -> float:
        return percent(self.period_s, self.outage_s, self.excluded_s)


def port_figure(
    station_id: int,
    connector_id: int,
    *,
    edges: Sequence[int],
    months: Sequence[Month],
    outages: Iterable[Span],
    exclusions: Iterable[Span],
    active_from: int | None = None,
) -> PortFigure | None:
    """The port's figure, from its outage spans and the exclusion spans that apply to it
    (its own and its station's). Open outages must already end at `now`. None when the port
    did not exist during the window."""
    start = edges[0] if active_from is None else max(edges[0], active_from)
    if start >= edges[-1]:
        return None
    clipped = [(max(s, start), e) for s, e in outages]
    down = union(clipped)
    excused = intersection(down, union(exclusions))
    period = seconds_per_bucket([(start, edges[-1])], edges)
    outage = seconds_per_bucket(down, edges)
    excluded = seconds_per_bucket(excused, edges)
    return PortFigure(
        station_id,
        connector_id,
        tuple(
            MonthFigure(months[k], period[k], outage[k], excluded[k])
            for k in range(len(months))
            if period[k] > 0
        ),
    )


def mean_uptime(figures: Iterable[PortFigure]) -> float | None:
    """A roll-up: the mean of its ports' figures, each port counting once (NEVI's unit is the
    port, so a station with four ports weighs four times one with one)."""
    values = [f.uptime for f in figures]
    return sum(values) / len(values) if values else None


@dataclass(frozen=True, slots=True)
class Port:
    station_id: int
    connector_id: int
    active_from: int | None = None  # epoch seconds its station was created


@dataclass(frozen=True, slots=True)
class OutageSpan:
    station_id: int
    connector_id: int
    start: int
    end: int | None  # None: still open


@dataclass(frozen=True, slots=True)
class ExclusionSpan:
    station_id: int
    connector_id: int | None  # None: every port of the station
    start: int
    end: int | None  # None: open-ended
    revoked: bool = False


def figures(
    ports: Iterable[Port],
    outages: Iterable[OutageSpan],
    exclusions: Iterable[ExclusionSpan],
    window: Window,
) -> list[PortFigure]:
    """Every port's figure over `window`, in the order of `ports`. Revoked exclusions count
    for nothing; open outages and exclusions run to the window's `now`."""
    now = epoch(window.now)
    edges = window.edges()
    months = window.months
    by_port: dict[tuple[int, int], list[Span]] = {}
    for o in outages:
        by_port.setdefault((o.station_id, o.connector_id), []).append(
            (o.start, now if o.end is None else o.end)
        )
    station_wide: dict[int, list[Span]] = {}
    per_port: dict[tuple[int, int], list[Span]] = {}
    for x in exclusions:
        if x.revoked:
            continue
        span = (x.start, now if x.end is None else x.end)
        if x.connector_id is None:
            station_wide.setdefault(x.station_id, []).append(span)
        else:
            per_port.setdefault((x.station_id, x.connector_id), []).append(span)
    out: list[PortFigure] = []
    for p in ports:
        key = (p.station_id, p.connector_id)
        figure = port_figure(
            p.station_id,
            p.connector_id,
            edges=edges,
            months=months,
            outages=by_port.get(key, ()),
            exclusions=[*station_wide.get(p.station_id, ()), *per_port.get(key, ())],
            active_from=p.active_from,
        )
        if figure is not None:
            out.append(figure)
    return out
