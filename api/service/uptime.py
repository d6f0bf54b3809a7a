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

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate, islice
from operator import gt, lt, sub

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


def union(spans: Iterable[Span], floor: int | None = None) -> list[Span]:
    """Sorted, disjoint spans covering exactly what `spans` cover (touching ones joined), each
    start raised to `floor` if given."""
    merged: list[Span] = []
    cur_start = cur_end = 0
    started = False
    for start, end in sorted(spans):
        if floor is not None and start < floor:
            start = floor
        if end <= start:
            continue
        if started and start <= cur_end:
            if end > cur_end:
                cur_end = end
            continue
        if started:
            merged.append((cur_start, cur_end))
        cur_start, cur_end, started = start, end, True
    if started:
        merged.append((cur_start, cur_end))
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
    """Seconds of sorted, disjoint `spans` inside each [edges[k], edges[k+1]); what lies
    outside the edges is ignored."""
    return per_bucket([s for s, _ in spans], [e for _, e in spans], edges)


def per_bucket(starts: Sequence[int], ends: Sequence[int], edges: Sequence[int]) -> list[int]:
    """`seconds_per_bucket` for spans given as their starts and ends (sorted, disjoint).

    Through prefix sums: the seconds covered before t are the lengths of every span starting
    before t, less what the last of them reaches past t (disjoint: only the last can). The
    work per port is then a few C-level passes and one binary search per month edge, however
    many outages it had — what keeps a 10,000-port roll-up fast.
    """
    if not starts:
        return [0] * (len(edges) - 1)
    prefix = list(accumulate(map(sub, ends, starts), initial=0))
    at: list[int] = []
    for t in edges:
        i = bisect_left(starts, t)
        if i == 0:
            at.append(0)
            continue
        over = ends[i - 1] - t
        at.append(prefix[i] - over if over > 0 else prefix[i])
    return [at[k + 1] - at[k] for k in range(len(edges) - 1)]


def merge_sorted(starts: list[int], ends: list[int], floor: int) -> tuple[list[int], list[int]]:
    """Spans given sorted by start (overlapping allowed) as sorted, disjoint spans, starts
    raised to `floor`. Most ports' outages do not overlap: that is checked at C speed and the
    lists are then kept as they are."""
    if starts and starts[0] < floor:
        k = bisect_left(starts, floor)
        starts = [floor] * k + starts[k:]
        keep = [i for i in range(len(starts)) if ends[i] > starts[i]]
        starts, ends = [starts[i] for i in keep], [ends[i] for i in keep]
    if not any(map(gt, ends, islice(starts, 1, None))) and all(map(lt, starts, ends)):
        return starts, ends
    merged = union(zip(starts, ends, strict=True))
    return [s for s, _ in merged], [e for _, e in merged]


def intersect_sorted(starts: Sequence[int], ends: Sequence[int], spans: Sequence[Span]) -> list[Span]:
    """What disjoint sorted spans (starts, ends) share with disjoint sorted `spans` (few):
    each of those finds its first overlapping span by binary search."""
    out: list[Span] = []
    for x0, x1 in spans:
        i = bisect_right(ends, x0)
        while i < len(starts) and starts[i] < x1:
            lo, hi = max(starts[i], x0), min(ends[i], x1)
            if lo < hi:
                out.append((lo, hi))
            i += 1
    return out


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
    """One port's figures over a window, in total and per month of the window (seconds, the
    lists aligned with `window_months`). Months are plain integers until asked for, so a
    roll-up over 10,000 ports builds no per-month objects."""

    station_id: int
    connector_id: int
    window_months: tuple[Month, ...]
    period: tuple[int, ...]
    outage: tuple[int, ...]
    excluded: tuple[int, ...]
    period_s: int
    outage_s: int
    excluded_s: int

    @property
    def uptime(self) -> float:
        return percent(self.period_s, self.outage_s, self.excluded_s)

    @property
    def months(self) -> tuple[MonthFigure, ...]:
        """The months the port existed in (a month before its station was created has none)."""
        return tuple(
            MonthFigure(m, self.period[k], self.outage[k], self.excluded[k])
            for k, m in enumerate(self.window_months)
            if self.period[k] > 0
        )


def port_figure(
    station_id: int,
    connector_id: int,
    *,
    edges: Sequence[int],
    months: Sequence[Month],
    outage_starts: list[int],
    outage_ends: list[int],
    exclusions: Sequence[Span],
    active_from: int | None = None,
    full_period: Sequence[int] | None = None,
) -> PortFigure | None:
    """The port's figure, from its outages (starts and ends, sorted by start; open ones ending
    at `now`) and the exclusion spans that apply to it (its own and its station's). None when
    the port did not exist during the window. `full_period`: the seconds of each month, when
    the caller has them already."""
    start = edges[0] if active_from is None else max(edges[0], active_from)
    if start >= edges[-1]:
        return None
    if start == edges[0] and full_period is not None:
        period = list(full_period)
    else:
        period = per_bucket([start], [edges[-1]], edges)
    starts, ends = merge_sorted(outage_starts, outage_ends, start)
    outage = per_bucket(starts, ends, edges)
    if starts and exclusions:
        excluded = seconds_per_bucket(intersect_sorted(starts, ends, union(exclusions)), edges)
    else:
        excluded = [0] * len(months)
    return PortFigure(
        station_id,
        connector_id,
        tuple(months),
        tuple(period),
        tuple(outage),
        tuple(excluded),
        sum(period),
        sum(outage),
        sum(excluded),
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


PortKey = tuple[int, int]  # (station id, connector id)
# A port's outages as two lists sorted by start: what the repository hands over.
Timeline = tuple[list[int], list[int]]


def figures(
    ports: Iterable[Port],
    outages: Iterable[OutageSpan],
    exclusions: Iterable[ExclusionSpan],
    window: Window,
) -> list[PortFigure]:
    """Every port's figure over `window`, in the order of `ports`. Revoked exclusions count
    for nothing; open outages and exclusions run to the window's `now`."""
    now = epoch(window.now)
    by_port: dict[PortKey, list[Span]] = {}
    for o in outages:
        by_port.setdefault((o.station_id, o.connector_id), []).append(
            (o.start, now if o.end is None else o.end)
        )
    timelines = {key: timeline(spans) for key, spans in by_port.items()}
    return figures_by_port(ports, timelines, exclusions, window)


def timeline(spans: Iterable[Span]) -> Timeline:
    ordered = sorted(spans)
    return [s for s, _ in ordered], [e for _, e in ordered]


def figures_by_port(
    ports: Iterable[Port],
    outages: Mapping[PortKey, Timeline],
    exclusions: Iterable[ExclusionSpan],
    window: Window,
) -> list[PortFigure]:
    """`figures` for outages already grouped by port and sorted, open ones ending at `now`."""
    now = epoch(window.now)
    edges = window.edges()
    months = window.months
    station_wide: dict[int, list[Span]] = {}
    per_port: dict[PortKey, list[Span]] = {}
    for x in exclusions:
        if x.revoked:
            continue
        span = (x.start, now if x.end is None else x.end)
        if x.connector_id is None:
            station_wide.setdefault(x.station_id, []).append(span)
        else:
            per_port.setdefault((x.station_id, x.connector_id), []).append(span)
    full_period = [edges[k + 1] - edges[k] for k in range(len(months))]
    out: list[PortFigure] = []
    empty: Timeline = ([], [])
    for p in ports:
        key = (p.station_id, p.connector_id)
        starts, ends = outages.get(key, empty)
        figure = port_figure(
            p.station_id,
            p.connector_id,
            edges=edges,
            months=months,
            outage_starts=starts,
            outage_ends=ends,
            exclusions=[*station_wide.get(p.station_id, ()), *per_port.get(key, ())],
            active_from=p.active_from,
            full_period=full_period,
        )
        if figure is not None:
            out.append(figure)
    return out
