"""NEVI uptime arithmetic on constructed histories, against numbers computed by hand.

The window in most tests is calendar 2025 (asked on 15 January 2026): 365 days, so the
period is exactly the rule's 525,600 minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.service.uptime import (
    RULE_MINUTES,
    ExclusionSpan,
    Month,
    MonthFigure,
    OutageSpan,
    Port,
    PortFigure,
    Span,
    Window,
    epoch,
    figures,
    intersection,
    mean_uptime,
    merge_sorted,
    per_bucket,
    seconds_per_bucket,
    timeline,
    union,
)

MIN = 60
MARCH_MINUTES = 31 * 24 * 60


def t(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2025) -> int:
    return epoch(datetime(year, month, day, hour, minute, tzinfo=UTC))


def year_2025() -> Window:
    return Window.trailing(datetime(2026, 1, 15, 9, 30, tzinfo=UTC))


def one_port(
    outages: Sequence[tuple[int, int | None]],
    exclusions: Sequence[ExclusionSpan] = (),
    *,
    window: Window | None = None,
    active_from: int | None = None,
) -> PortFigure:
    """Port 1 of station 1 alone (it must have a figure)."""
    window = window or year_2025()
    port = Port(1, 1, active_from)
    result = figures([port], [OutageSpan(1, 1, s, e) for s, e in outages], list(exclusions), window)
    assert len(result) == 1
    return result[0]


def month(figure: PortFigure, m: int) -> MonthFigure:
    return next(f for f in figure.months if f.month == Month(2025, m))


class TestWindow:
    def test_the_twelve_complete_months_before_now(self) -> None:
        w = year_2025()
        assert [m.label() for m in w.months] == [f"2025-{k:02d}" for k in range(1, 13)]
        assert (epoch(w.end) - epoch(w.start)) // MIN == RULE_MINUTES

    def test_a_leap_year_has_a_day_more(self) -> None:
        w = Window.trailing(datetime(2025, 1, 1, tzinfo=UTC))
        assert w.months[0] == Month(2024, 1)
        assert one_port([], window=w).period_s // MIN == RULE_MINUTES + 24 * 60

    def test_no_outage_is_full_uptime(self) -> None:
        f = one_port([])
        assert f.period_s == RULE_MINUTES * MIN
        assert f.uptime == 100.0
        assert len(f.months) == 12


class TestOutages:
    def test_overlapping_outages_count_once(self) -> None:
        # 10:00–12:00 faulted and 11:00–13:00 offline: three hours down, not four
        f = one_port([(t(3, 1, 10), t(3, 1, 12)), (t(3, 1, 11), t(3, 1, 13))])
        assert f.outage_s == 180 * MIN
        assert f.uptime == pytest.approx((525_600 - 180) / 525_600 * 100)
        assert month(f, 3).uptime == pytest.approx((MARCH_MINUTES - 180) / MARCH_MINUTES * 100)
        assert month(f, 4).uptime == 100.0

    def test_an_outage_inside_another_adds_nothing(self) -> None:
        f = one_port([(t(3, 1, 10), t(3, 1, 14)), (t(3, 1, 11), t(3, 1, 12))])
        assert f.outage_s == 240 * MIN

    def test_an_outage_crossing_a_month_boundary_is_split(self) -> None:
        # 31 Jan 23:00 → 1 Feb 02:00
        f = one_port([(t(1, 31, 23), t(2, 1, 2))])
        assert month(f, 1).outage_s == 60 * MIN
        assert month(f, 2).outage_s == 120 * MIN
        assert month(f, 2).uptime == pytest.approx((28 * 1440 - 120) / (28 * 1440) * 100)
        assert f.outage_s == 180 * MIN

    def test_outages_outside_the_window_are_clipped(self) -> None:
        # 31 Dec 2024 22:00 → 1 Jan 2025 01:00, and 31 Dec 2025 23:00 → 1 Jan 2026 05:00
        f = one_port([(t(12, 31, 22, year=2024), t(1, 1, 1)), (t(12, 31, 23), t(1, 1, 5, year=2026))])
        assert month(f, 1).outage_s == 60 * MIN
        assert month(f, 12).outage_s == 60 * MIN

    def test_an_open_outage_runs_to_now(self) -> None:
        # still down since 31 Dec 22:00; asked on 15 Jan: December counts two hours
        f = one_port([(t(12, 31, 22), None)])
        assert month(f, 12).outage_s == 120 * MIN
        # a window that includes the current month counts it to now (09:30 on 15 Jan)
        now = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
        current = Window((Month(2025, 12), Month(2026, 1)), now)
        g = one_port([(t(12, 31, 22), None)], window=current)
        assert g.months[1].period_s == (14 * 1440 + 9 * 60 + 30) * MIN
        assert g.months[1].outage_s == g.months[1].period_s
        assert g.months[1].uptime == 0.0


class TestExclusions:
    def test_an_exclusion_partly_overlapping_an_outage_excludes_the_overlap(self) -> None:
        # down 08:00–12:00; utility interruption declared 10:00–14:00: 2 h excluded of 4 h
        f = one_port([(t(4, 10, 8), t(4, 10, 12))], [ExclusionSpan(1, 1, t(4, 10, 10), t(4, 10, 14))])
        assert f.outage_s == 240 * MIN
        assert f.excluded_s == 120 * MIN
        assert f.uptime == pytest.approx((525_600 - (240 - 120)) / 525_600 * 100)
        assert month(f, 4).uptime == pytest.approx((30 * 1440 - 120) / (30 * 1440) * 100)

    def test_an_exclusion_with_no_outage_excludes_nothing(self) -> None:
        f = one_port([(t(5, 1, 0), t(5, 1, 1))], [ExclusionSpan(1, 1, t(6, 1), t(6, 3))])
        assert f.excluded_s == 0
        assert f.uptime == pytest.approx((525_600 - 60) / 525_600 * 100)

    def test_overlapping_exclusions_are_not_counted_twice(self) -> None:
        f = one_port(
            [(t(4, 10, 8), t(4, 10, 12))],
            [
                ExclusionSpan(1, 1, t(4, 10, 7), t(4, 10, 10)),
                ExclusionSpan(1, None, t(4, 10, 9), t(4, 10, 11)),
            ],
        )
        assert f.excluded_s == 180 * MIN

    def test_a_revoked_exclusion_is_ignored(self) -> None:
        f = one_port(
            [(t(4, 10, 8), t(4, 10, 12))], [ExclusionSpan(1, 1, t(4, 10, 8), t(4, 10, 12), revoked=True)]
        )
        assert f.excluded_s == 0

    def test_a_station_wide_exclusion_covers_every_port_of_that_station_only(self) -> None:
        ports = [Port(1, 1), Port(1, 2), Port(2, 1)]
        outages = [OutageSpan(s, c, t(7, 4, 12), t(7, 4, 18)) for s, c in ((1, 1), (1, 2), (2, 1))]
        # a storm cut the power of station 1 from 14:00 to 20:00; vandalism on port 2 13:00-15:00
        exclusions = [
            ExclusionSpan(1, None, t(7, 4, 14), t(7, 4, 20)),
            ExclusionSpan(1, 2, t(7, 4, 13), t(7, 4, 15)),
        ]
        a, b, c = figures(ports, outages, exclusions, year_2025())
        assert (a.outage_s, a.excluded_s) == (360 * MIN, 240 * MIN)
        assert (b.outage_s, b.excluded_s) == (360 * MIN, 300 * MIN)
        assert (c.outage_s, c.excluded_s) == (360 * MIN, 0)

    def test_an_open_ended_exclusion_runs_to_now(self) -> None:
        f = one_port([(t(12, 30), None)], [ExclusionSpan(1, 1, t(12, 31), None)])
        assert (f.outage_s, f.excluded_s) == (2 * 1440 * MIN, 1440 * MIN)


class TestPortsAndRollUps:
    def test_a_port_created_mid_window_counts_from_its_creation(self) -> None:
        # station created 1 Dec 2025 12:00, down one hour since: December only, from noon
        f = one_port([(t(12, 2), t(12, 2, 1))], active_from=t(12, 1, 12))
        assert [m.month for m in f.months] == [Month(2025, 12)]
        period = 30 * 1440 + 12 * 60
        assert f.period_s == period * MIN
        assert f.uptime == pytest.approx((period - 60) / period * 100)

    def test_a_port_created_after_the_window_has_no_figure(self) -> None:
        later = Port(1, 1, t(1, 2, year=2026))
        assert figures([later], [], [], year_2025()) == []

    def test_roll_ups_weigh_each_port_once(self) -> None:
        ports = [Port(1, 1), Port(1, 2)]
        outages = [OutageSpan(1, 1, t(1, 1), t(1, 1) + 5256 * MIN)]  # 1 % of the year
        a, b = figures(ports, outages, [], year_2025())
        assert a.uptime == pytest.approx(99.0)
        assert mean_uptime([a, b]) == pytest.approx(99.5)
        assert mean_uptime([]) is None


spans = st.lists(
    st.tuples(st.integers(0, 200), st.integers(1, 60)).map(lambda p: (p[0], p[0] + p[1])), max_size=8
)


class TestProperties:
    @given(spans, spans)
    @settings(max_examples=200, deadline=None)
    def test_union_and_intersection_match_counting_seconds(self, a: list[Span], b: list[Span]) -> None:
        covered_a = {s for x, y in a for s in range(x, y)}
        covered_b = {s for x, y in b for s in range(x, y)}
        ua, ub = union(a), union(b)
        assert sum(y - x for x, y in ua) == len(covered_a)
        assert sum(y - x for x, y in intersection(ua, ub)) == len(covered_a & covered_b)
        assert all(ua[k][1] < ua[k + 1][0] for k in range(len(ua) - 1))

    @given(spans, st.lists(st.integers(0, 270), min_size=2, max_size=6, unique=True).map(sorted))
    @settings(max_examples=200, deadline=None)
    def test_seconds_per_month_match_counting_seconds(self, a: list[Span], edges: list[int]) -> None:
        covered = {s for x, y in a for s in range(x, y)}
        expected = [len([s for s in covered if edges[k] <= s < edges[k + 1]]) for k in range(len(edges) - 1)]
        assert seconds_per_bucket(union(a), edges) == expected
        starts, ends = merge_sorted(*timeline(a), floor=edges[0])
        assert per_bucket(starts, ends, edges) == expected

    @given(spans, spans)
    @settings(max_examples=100, deadline=None)
    def test_uptime_is_between_the_bounds_and_exclusions_only_help(
        self, o: list[Span], x: list[Span]
    ) -> None:
        base = t(3, 31, 20)  # minutes around the March/April boundary
        outages = [(base + s * MIN, base + e * MIN) for s, e in o]
        exclusions = [ExclusionSpan(1, 1, base + s * MIN, base + e * MIN) for s, e in x]
        with_x = one_port(outages, exclusions)
        without = one_port(outages)
        assert 0 <= with_x.excluded_s <= with_x.outage_s == without.outage_s
        assert 0 <= without.uptime <= with_x.uptime <= 100
        assert sum(m.outage_s for m in with_x.months) == with_x.outage_s
