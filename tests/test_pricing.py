"""The price engine: hand-computed sessions (time-of-use boundaries, DST, idle grace and cap,
limits, tax) and properties that must hold for every tariff and session (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.billing.pricing import Benefits, Price, Timeline, price
from api.billing.tariffs import Component, Prices, Tariff, Window, summary
from schema.errors import InvalidInput

D = Decimal
T0 = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)  # a Tuesday; Berlin is UTC+1 then


def linear(start: datetime, minutes: float, wh: int, *, steps: int = 1, from_wh: int = 0) -> tuple:
    """Readings of a meter that rose evenly by `wh` over `minutes`."""
    return tuple(
        (start + timedelta(minutes=minutes * i / steps), from_wh + wh * i // steps) for i in range(steps + 1)
    )


def session(
    minutes: float, wh: int, *, charging_minutes: float | None = None, start: datetime = T0
) -> Timeline:
    charge = minutes if charging_minutes is None else charging_minutes
    return Timeline(
        started_at=start,
        ended_at=start + timedelta(minutes=minutes),
        readings=linear(start, charge, wh),
        charging_ended_at=None if charging_minutes is None else start + timedelta(minutes=charging_minutes),
    )


def amounts(p: Price) -> dict[str, int]:
    return {li.label: li.amount for li in p.lines}


class TestHandComputed:
    def test_energy_is_priced_from_the_register_and_rounded_once(self) -> None:
        p = price(Tariff("EUR", Prices(energy_per_kwh=D(39))), session(60, 23_400))
        # 23.4 kWh × 39 ct = 912.6 ct → 913
        assert amounts(p) == {"Energy": 913}
        assert (p.total, p.energy_wh, p.lines[0].quantity) == (913, 23_400, D("23.4"))

    def test_a_session_across_a_time_of_use_boundary_is_split_there(self) -> None:
        # Berlin 21:00–23:00 local; the night price starts at 22:00 local (21:00 UTC)
        tariff = Tariff(
            "EUR",
            Prices(energy_per_kwh=D(39)),
            windows=(Window("night", time(22), time(6), energy_per_kwh=D(29)),),
            time_zone="Europe/Berlin",
        )
        p = price(tariff, session(120, 20_000))
        assert amounts(p) == {"Energy": 390, "Energy (night)": 290}

    def test_idle_minutes_after_the_grace_up_to_the_cap(self) -> None:
        tariff = Tariff(
            "EUR", Prices(time_per_minute=D(2), idle_per_minute=D(10)), idle_grace_minutes=15, idle_cap=200
        )
        # charging 60 min, plugged in until 100 min: 25 idle minutes past the grace = 250 → cap 200
        p = price(tariff, session(100, 10_000, charging_minutes=60))
        assert amounts(p) == {"Charging time": 120, "Idle time": 250, "Idle fee cap": -50}
        assert (p.total, p.charging_minutes, p.idle_minutes) == (320, 60, 25)

    def test_the_grace_is_free_and_a_short_stay_costs_no_idle(self) -> None:
        tariff = Tariff("EUR", Prices(idle_per_minute=D(10)), idle_grace_minutes=15)
        assert price(tariff, session(70, 10_000, charging_minutes=60)).total == 0

    def test_windows_follow_local_time_across_the_dst_change(self) -> None:
        # Berlin springs forward on 2026-03-29 at 02:00 local. Night 00:00–06:00 local ends at
        # 04:00 UTC that day (not 05:00): a session 00:00–06:00 UTC has 4 night hours, 2 day hours.
        tariff = Tariff(
            "EUR",
            Prices(time_per_minute=D(5)),
            windows=(Window("night", time(0), time(6), time_per_minute=D(1)),),
            time_zone="Europe/Berlin",
        )
        start = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
        p = price(tariff, session(360, 0, start=start))
        assert amounts(p) == {"Charging time (night)": 240, "Charging time": 600}

    def test_weekday_windows_and_a_window_past_midnight_belongs_to_its_first_day(self) -> None:
        tariff = Tariff(
            "EUR",
            Prices(time_per_minute=D(10)),
            windows=(Window("friday night", time(22), time(6), days=frozenset({4}), time_per_minute=D(1)),),
        )
        saturday_3am = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
        sunday_3am = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
        assert amounts(price(tariff, session(60, 0, start=saturday_3am))) == {
            "Charging time (friday night)": 60
        }
        assert amounts(price(tariff, session(60, 0, start=sunday_3am))) == {"Charging time": 600}

    def test_fee_minimum_and_maximum(self) -> None:
        base = Prices(energy_per_kwh=D(50))
        small = Tariff("EUR", base, session_fee=100, min_price=300)
        assert amounts(price(small, session(10, 1_000))) == {
            "Energy": 50,
            "Session fee": 100,
            "Minimum session price": 150,
        }
        capped = Tariff("EUR", base, max_price=1_000)
        p = price(capped, session(60, 30_000))
        assert (amounts(p)["Maximum session price"], p.total) == (-500, 1_000)

    @pytest.mark.parametrize(
        ("included", "net", "tax", "total"), [(True, 840, 160, 1_000), (False, 1_000, 190, 1_190)]
    )
    def test_tax_inclusive_or_exclusive(self, included: bool, net: int, tax: int, total: int) -> None:
        tariff = Tariff(
            "EUR", Prices(energy_per_kwh=D(100)), tax_basis_points=1_900, prices_include_tax=included
        )
        p = price(tariff, session(60, 10_000))
        assert (p.subtotal, p.net, p.tax, p.total) == (1_000, net, tax, total)

    def test_a_register_that_goes_backwards_adds_nothing(self) -> None:
        readings = ((T0, 5_000), (T0 + timedelta(minutes=10), 100), (T0 + timedelta(minutes=20), 1_100))
        tl = Timeline(T0, T0 + timedelta(minutes=20), readings)
        # the meter was replaced: the 1,000 Wh after the drop are below the earlier 5,000 high
        assert price(Tariff("EUR", Prices(energy_per_kwh=D(10))), tl).energy_wh == 0

    def test_sub_cent_unit_prices_are_exact(self) -> None:
        p = price(Tariff("EUR", Prices(energy_per_kwh=D("39.5"))), session(60, 10_000))
        assert (p.total, p.lines[0].unit_price) == (395, D("39.5"))


class TestMembershipBenefits:
    def test_included_energy_then_the_discount_on_the_rest(self) -> None:
        tariff = Tariff("EUR", Prices(energy_per_kwh=D(40)), session_fee=50)
        p = price(tariff, session(60, 10_000), Benefits("Plus", free_wh=4_000, discount_basis_points=1_000))
        # 10 kWh = 400; 4 kWh included = -160; 10 % off the remaining 290 = -29
        assert amounts(p) == {
            "Energy": 400,
            "Included energy (Plus)": -160,
            "Session fee": 50,
            "Member discount (Plus)": -29,
        }
        assert (p.total, p.free_wh_used) == (261, 4_000)

    def test_an_allowance_larger_than_the_session_makes_the_energy_free(self) -> None:
        p = price(
            Tariff("EUR", Prices(energy_per_kwh=D(40))), session(60, 3_000), Benefits("Plus", free_wh=50_000)
        )
        assert (p.total, p.free_wh_used) == (0, 3_000)


class TestSummary:
    def test_the_app_reads_the_price_in_words(self) -> None:
        tariff = Tariff("EUR", Prices(energy_per_kwh=D(39), idle_per_minute=D(10)), idle_grace_minutes=15)
        assert summary(tariff) == "€0.39/kWh, €0.10/min idle after 15 min"

    def test_windows_fees_limits_and_tax_are_named(self) -> None:
        tariff = Tariff(
            "EUR",
            Prices(energy_per_kwh=D("39.5")),
            windows=(Window("night", time(22), time(6), days=frozenset({0, 1}), energy_per_kwh=D(29)),),
            session_fee=50,
            max_price=5_000,
            tax_basis_points=1_900,
        )
        assert summary(tariff) == (
            "€0.395/kWh, €0.50 per session, night (Mon/Tue 22:00–06:00): €0.29/kWh, "
            "at most €50.00 per session, incl. 19% tax"
        )


class TestValidation:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"base": Prices(energy_per_kwh=D(-1))},
            {"base": Prices(energy_per_kwh=D("0.00001"))},
            {"time_zone": "Mars/Olympus"},
            {"min_price": 500, "max_price": 100},
            {"tax_basis_points": 10_001},
            {"windows": (Window("x", time(1), time(1)),)},
        ],
    )
    def test_meaningless_tariffs_are_refused(self, kwargs: dict) -> None:
        with pytest.raises(InvalidInput):
            Tariff("EUR", **kwargs)

    def test_a_session_ending_before_it_starts_is_refused(self) -> None:
        tl = Timeline(T0, T0 - timedelta(minutes=1), ())
        with pytest.raises(InvalidInput):
            price(Tariff("EUR"), tl)


# -- properties -------------------------------------------------------------------------------

unit_prices = st.integers(0, 10_000).map(lambda cents_x100: D(cents_x100) / 100)
clock = st.times().map(lambda t: t.replace(second=0, microsecond=0))


@st.composite
def tariffs(draw: st.DrawFn, *, fixed_parts: bool = True) -> Tariff:
    windows = tuple(
        Window(
            f"w{i}",
            start,
            draw(clock.filter(lambda t, s=start: t != s)),
            frozenset(draw(st.sets(st.integers(0, 6), max_size=3))),
            draw(st.none() | unit_prices),
            draw(st.none() | unit_prices),
            draw(st.none() | unit_prices),
        )
        for i, start in enumerate(draw(st.lists(clock, max_size=3)))
    )
    return Tariff(
        "EUR",
        Prices(draw(unit_prices), draw(unit_prices), draw(unit_prices)),
        windows=windows,
        session_fee=draw(st.integers(0, 500)) if fixed_parts else 0,
        idle_grace_minutes=draw(st.integers(0, 30)) if fixed_parts else 0,
        idle_cap=draw(st.none() | st.integers(0, 5_000)) if fixed_parts else None,
        max_price=draw(st.none() | st.integers(0, 50_000)) if fixed_parts else None,
        tax_basis_points=draw(st.integers(0, 2_500)),
        prices_include_tax=draw(st.booleans()),
        time_zone=draw(st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])),
    )


@st.composite
def timelines(draw: st.DrawFn, *, even: bool = False) -> Timeline:
    """Sessions up to two days long, with 1–8 readings of a rising register."""
    start = draw(st.datetimes(datetime(2026, 1, 1), datetime(2027, 1, 1))).replace(tzinfo=UTC)
    step = st.integers(1, 3 * 3600 * 1000).map(lambda ms: ms * 2 if even else ms)
    gaps = draw(st.lists(step, min_size=1, max_size=8))
    rises = draw(
        st.lists(
            st.integers(0, 20_000).map(lambda wh: wh * 2 if even else wh),
            min_size=len(gaps),
            max_size=len(gaps),
        )
    )
    at, wh = start, draw(st.integers(0, 10**7))
    readings = [(at, wh)]
    for gap, rise in zip(gaps, rises, strict=True):
        at, wh = at + timedelta(milliseconds=gap), wh + rise
        readings.append((at, wh))
    end = at + timedelta(milliseconds=draw(st.integers(0, 3 * 3600 * 1000)))
    charging_end = draw(st.none() | st.sampled_from([r[0] for r in readings]))
    return Timeline(start, end, tuple(readings), charging_end)


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestProperties:
    @PROPERTY
    @given(tariffs(), timelines(), st.integers(1, 50_000))
    def test_more_energy_never_costs_less(self, tariff: Tariff, tl: Timeline, extra: int) -> None:
        more = tuple(
            (at, wh + extra) if i == len(tl.readings) - 1 else (at, wh)
            for i, (at, wh) in enumerate(tl.readings)
        )
        assert (
            price(tariff, Timeline(tl.started_at, tl.ended_at, more, tl.charging_ended_at)).total
            >= price(tariff, tl).total
        )

    @PROPERTY
    @given(tariffs(), timelines(), st.integers(1, 50_000), st.integers(0, 100_000), st.integers(0, 10_000))
    def test_members_pay_no_more_and_more_energy_still_never_costs_less(
        self, tariff: Tariff, tl: Timeline, extra: int, free_wh: int, discount: int
    ) -> None:
        plan = Benefits("P", free_wh=free_wh, discount_basis_points=discount)
        more = tuple(
            (at, wh + extra) if i == len(tl.readings) - 1 else (at, wh)
            for i, (at, wh) in enumerate(tl.readings)
        )
        longer = Timeline(tl.started_at, tl.ended_at, more, tl.charging_ended_at)
        assert price(tariff, tl, plan).total <= price(tariff, tl).total
        assert price(tariff, longer, plan).total >= price(tariff, tl, plan).total

    @PROPERTY
    @given(tariffs(), timelines(), st.integers(1, 6 * 3600 * 1000))
    def test_more_time_never_costs_less(self, tariff: Tariff, tl: Timeline, extra_ms: int) -> None:
        longer = Timeline(
            tl.started_at, tl.ended_at + timedelta(milliseconds=extra_ms), tl.readings, tl.charging_ended_at
        )
        assert price(tariff, longer).total >= price(tariff, tl).total

    @PROPERTY
    @given(tariffs(), timelines())
    def test_no_energy_and_no_time_costs_only_the_session_fee(self, tariff: Tariff, tl: Timeline) -> None:
        nothing = Timeline(tl.started_at, tl.started_at, ((tl.started_at, tl.readings[0][1]),))
        p = price(tariff, nothing)
        expected = (
            tariff.session_fee if tariff.max_price is None else min(tariff.session_fee, tariff.max_price)
        )
        assert p.subtotal == expected
        assert [li.component for li in p.lines if li.amount] in (
            [],
            [Component.FLAT],
            [Component.FLAT, Component.MAXIMUM],
        )

    @PROPERTY
    @given(tariffs(), timelines(even=True))
    def test_cutting_the_timeline_anywhere_changes_nothing(self, tariff: Tariff, tl: Timeline) -> None:
        # a reading at the midpoint of every pair, exactly on the register's line: the same
        # session, observed more often (as a live re-price at any instant sees it)
        finer = [tl.readings[0]]
        for (a, wa), (b, wb) in zip(tl.readings, tl.readings[1:], strict=False):
            finer += [(a + (b - a) / 2, (wa + wb) // 2), (b, wb)]
        assert price(
            tariff, Timeline(tl.started_at, tl.ended_at, tuple(finer), tl.charging_ended_at)
        ) == price(tariff, tl)

    @PROPERTY
    @given(tariffs(fixed_parts=False), timelines(), st.floats(0, 1))
    def test_two_halves_add_up_to_the_whole(self, tariff: Tariff, tl: Timeline, where: float) -> None:
        # split the session at any instant: energy and minutes add up exactly; money to within
        # the rounding of each line (every line is rounded once, to the minor unit)
        cut = tl.started_at + (tl.ended_at - tl.started_at) * where
        cut = cut.replace(microsecond=cut.microsecond // 1000 * 1000)
        whole = price(tariff, tl)
        at_cut = _register_at(tl, cut)
        first = Timeline(
            tl.started_at,
            cut,
            (*[r for r in tl.readings if r[0] < cut], (cut, at_cut)),
            None if tl.charging_ended_at is None else min(tl.charging_ended_at, cut),
        )
        second = Timeline(
            cut,
            tl.ended_at,
            ((cut, at_cut), *[r for r in tl.readings if r[0] > cut]),
            None if tl.charging_ended_at is None else max(tl.charging_ended_at, cut),
        )
        a, b = price(tariff, first), price(tariff, second)
        assert a.energy_mwh + b.energy_mwh == whole.energy_mwh
        assert (a.charging_ms + b.charging_ms, a.idle_ms + b.idle_ms) == (whole.charging_ms, whole.idle_ms)
        if not tariff.windows:  # a window edge between two readings moves a fraction of a Wh
            assert abs(a.subtotal + b.subtotal - whole.subtotal) <= len(a.lines) + len(b.lines)


def _register_at(tl: Timeline, at: datetime) -> int:
    """The register at `at`, interpolated and rounded down to the Wh (as a meter would show)."""
    before = [r for r in tl.readings if r[0] <= at]
    after = [r for r in tl.readings if r[0] > at]
    if not before:
        return tl.readings[0][1]
    high = max(wh for _, wh in before)
    if not after:
        return high
    (a, wa), (b, wb) = before[-1], after[0]
    return max(
        high,
        wa + (wb - wa) * ((at - a) // timedelta(milliseconds=1)) // ((b - a) // timedelta(milliseconds=1)),
    )
