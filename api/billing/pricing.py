"""The price engine: tariff + session timeline → line items and totals. Pure and exact.

Guarantees (tests/test_pricing.py checks them with hypothesis):
- Integer minor units; unit prices are exact to 1/10,000 of a minor unit. Quantities are summed
  exactly (energy in mWh, time in ms) and each line is rounded once, half up.
- Energy comes from the meter register, interpolated linearly between readings where a
  time-of-use boundary falls between two of them; a register that goes backwards (a replaced
  meter) adds no energy rather than a negative one.
- A session is cut wherever a price can change (window edges in the location's local time, the
  end of charging, the end of the idle grace) and quantities are grouped per component and unit
  price, so adding a cut anywhere else — another reading, a live re-price at any instant —
  never changes the total.
- With non-negative prices (validated), cost never falls as energy or time grows.

Phases: from the start until charging ended, minutes cost the time price; after that the car
only occupies the connector, and idle minutes cost the idle price once the grace has passed,
up to the idle cap. Energy costs the energy price in every phase. Then the session fee, the
minimum and maximum price, and tax (prices tax-inclusive or exclusive).
"""

from __future__ import annotations

import operator
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from itertools import accumulate

from api.billing.localtime import EPOCH, ONE_MS, Schedule, to_ms
from api.billing.tariffs import PRICE_SCALE, Component, Prices, Tariff, scaled
from schema.errors import InvalidInput

MS_PER_MINUTE = 60_000
MWH_PER_KWH = 1_000_000
TAX_SCALE = 10_000  # basis points
# A session longer than this is not priced (a stuck session is an operator's case, not a bill).
MAX_SESSION_MS = 31 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Timeline:
    """What happened in a session, as the price engine needs it.

    `readings` are (instant, register Wh), in time order, including the register at the start
    and at the stop; `charging_ended_at` is when the car stopped drawing power for good (None:
    it charged until the end).
    """

    started_at: datetime
    ended_at: datetime
    readings: tuple[tuple[datetime, int], ...]
    charging_ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Benefits:
    """What a membership takes off a session: the first `free_wh` of its energy are included in
    the plan (at the session's own average energy price), and `discount_basis_points` off the
    rest, session fee included, before the minimum and maximum price."""

    plan: str
    free_wh: int = 0
    discount_basis_points: int = 0


@dataclass(frozen=True, slots=True)
class LineItem:
    component: Component
    label: str
    unit: str  # "kWh", "min" or "session"
    amount: int
    # The exact quantity the amount was computed from: mWh, ms, or 1 per session.
    base_quantity: int = 1
    # Minor units per unit × PRICE_SCALE; None for adjustments (minimum, maximum, idle cap).
    scaled_price: int | None = None

    @property
    def quantity(self) -> Decimal:
        """kWh to the Wh, minutes to the second, as a receipt shows them."""
        if self.unit == "kWh":
            return Decimal(_round_half_up(self.base_quantity, 1000)) / 1000
        if self.unit == "min":
            return _minutes(self.base_quantity)
        return Decimal(self.base_quantity)

    @property
    def unit_price(self) -> Decimal | None:
        return None if self.scaled_price is None else Decimal(self.scaled_price) / PRICE_SCALE


@dataclass(frozen=True, slots=True)
class Price:
    currency: str
    lines: tuple[LineItem, ...]
    # Sum of the lines, in the tariff's basis (tax-inclusive or not).
    subtotal: int
    net: int
    tax: int
    total: int  # what the driver pays
    tax_basis_points: int
    prices_include_tax: bool
    energy_mwh: int
    charging_ms: int
    idle_ms: int
    # Included energy of a membership this session used up, in Wh.
    free_wh_used: int = 0

    @property
    def energy_wh(self) -> int:
        return _round_half_up(self.energy_mwh, 1000)

    @property
    def charging_minutes(self) -> Decimal:
        return _minutes(self.charging_ms)

    @property
    def idle_minutes(self) -> Decimal:
        return _minutes(self.idle_ms)


def _round_half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


# Per window (and the base prices last): the (scaled unit price, window name) key of each of
# energy, charging time and idle time, prepared once per tariff.
_Keys = tuple[tuple[int, str | None], tuple[int, str | None], tuple[int, str | None]]


def _keys(p: Prices, name: str | None) -> _Keys:
    return (
        (scaled(p.energy_per_kwh), name),
        (scaled(p.time_per_minute), name),
        (scaled(p.idle_per_minute), name),
    )


class PricePlan:
    """A tariff prepared for pricing many sessions: scaled prices and its local-time schedule."""

    __slots__ = ("_grace_ms", "_keys", "_schedule", "tariff")

    def __init__(self, tariff: Tariff) -> None:
        self.tariff = tariff
        base = tariff.base
        # index -1 (no window in force) is the base prices
        self._keys = (*(_keys(w.prices(base), w.name) for w in tariff.windows), _keys(base, None))
        self._grace_ms = tariff.idle_grace_minutes * MS_PER_MINUTE
        self._schedule = (
            Schedule(tariff.time_zone, [(w.start, w.end, w.days) for w in tariff.windows])
            if tariff.windows
            else None
        )

    def price(self, timeline: Timeline, benefits: Benefits | None = None) -> Price:
        t = self.tariff
        start, end = to_ms(timeline.started_at), to_ms(timeline.ended_at)
        if end < start:
            raise InvalidInput("the session ends before it starts")
        if end - start > MAX_SESSION_MS:
            raise InvalidInput("sessions longer than 31 days are not priced")
        charge_end = end if timeline.charging_ended_at is None else to_ms(timeline.charging_ended_at)
        charge_end = min(max(charge_end, start), end)
        grace_end = min(charge_end + self._grace_ms, end)

        if self._schedule is None:
            changes = [(start, -1)]
        else:
            changes = self._schedule.changes(start, end)
        cuts = sorted({start, end, charge_end, grace_end, *(at for at, _ in changes)})
        register = _Register(timeline.readings).values(cuts)
        # quantity (mWh or ms) per (scaled unit price, window name), one table per component
        energy: dict[tuple[int, str | None], int] = {}
        charging: dict[tuple[int, str | None], int] = {}
        idle: dict[tuple[int, str | None], int] = {}
        energy_mwh = charging_ms = idle_ms = 0
        keys = self._keys
        window_at, last_change = 0, len(changes) - 1
        for i in range(len(cuts) - 1):
            a, b = cuts[i], cuts[i + 1]
            while window_at < last_change and changes[window_at + 1][0] <= a:
                window_at += 1
            e_key, t_key, i_key = keys[changes[window_at][1]]
            mwh = register[i + 1] - register[i]
            if mwh:
                energy_mwh += mwh
                if e_key[0]:
                    energy[e_key] = energy.get(e_key, 0) + mwh
            if b <= charge_end:
                charging_ms += b - a
                if t_key[0]:
                    charging[t_key] = charging.get(t_key, 0) + (b - a)
            elif a >= grace_end:
                idle_ms += b - a
                if i_key[0]:
                    idle[i_key] = idle.get(i_key, 0) + (b - a)
        lines = _lines(Component.ENERGY, "Energy", "kWh", MWH_PER_KWH, energy) if energy else []
        if charging:
            lines += _lines(Component.TIME, "Charging time", "min", MS_PER_MINUTE, charging)
        idle_lines = _lines(Component.IDLE, "Idle time", "min", MS_PER_MINUTE, idle) if idle else []
        lines += idle_lines
        if t.idle_cap is not None:
            idle_total = sum(li.amount for li in idle_lines)
            if idle_total > t.idle_cap:
                lines.append(LineItem(Component.IDLE, "Idle fee cap", "session", t.idle_cap - idle_total))
        free_wh_used = 0
        if benefits is not None and benefits.free_wh and energy_mwh:
            covered = min(benefits.free_wh * 1000, energy_mwh)
            energy_amount = sum(li.amount for li in lines if li.component is Component.ENERGY)
            off = _round_half_up(energy_amount * covered, energy_mwh)
            free_wh_used = covered // 1000
            if off:
                label = f"Included energy ({benefits.plan})"
                lines.append(LineItem(Component.MEMBERSHIP, label, "kWh", -off, covered))
        if t.session_fee:
            fee = t.session_fee
            lines.append(LineItem(Component.FLAT, "Session fee", "session", fee, 1, fee * PRICE_SCALE))
        subtotal = sum(li.amount for li in lines)
        if benefits is not None and benefits.discount_basis_points and subtotal > 0:
            off = _round_half_up(subtotal * benefits.discount_basis_points, TAX_SCALE)
            if off:
                label = f"Member discount ({benefits.plan})"
                lines.append(LineItem(Component.MEMBERSHIP, label, "session", -off))
                subtotal -= off
        if t.min_price is not None and subtotal < t.min_price:
            lines.append(
                LineItem(Component.MINIMUM, "Minimum session price", "session", t.min_price - subtotal)
            )
            subtotal = t.min_price
        if t.max_price is not None and subtotal > t.max_price:
            lines.append(
                LineItem(Component.MAXIMUM, "Maximum session price", "session", t.max_price - subtotal)
            )
            subtotal = t.max_price
        net, tax, total = _tax(subtotal, t.tax_basis_points, t.prices_include_tax)
        return Price(
            currency=t.currency,
            lines=tuple(lines),
            subtotal=subtotal,
            net=net,
            tax=tax,
            total=total,
            tax_basis_points=t.tax_basis_points,
            prices_include_tax=t.prices_include_tax,
            energy_mwh=energy_mwh,
            charging_ms=charging_ms,
            idle_ms=idle_ms,
            free_wh_used=free_wh_used,
        )


def _lines(
    component: Component, name: str, unit: str, per_unit: int, quantities: dict[tuple[int, str | None], int]
) -> list[LineItem]:
    """One line per unit price and window, rounded once; in the order the prices first applied."""
    return [
        LineItem(
            component,
            name if window is None else f"{name} ({window})",
            unit,
            _round_half_up(quantity * price, per_unit * PRICE_SCALE),
            quantity,
            price,
        )
        for (price, window), quantity in quantities.items()
    ]


def _minutes(ms: int) -> Decimal:
    """Minutes to the second, as a receipt shows them."""
    return Decimal(_round_half_up(ms, 1000)) / 60


def _tax(subtotal: int, basis_points: int, included: bool) -> tuple[int, int, int]:
    """(net, tax, total). Tax-inclusive prices: the tax is the part of the total above the net;
    exclusive: it is added on top. Rounded once, on the session's total."""
    if included:
        net = _round_half_up(subtotal * TAX_SCALE, TAX_SCALE + basis_points)
        return net, subtotal - net, subtotal
    tax = _round_half_up(subtotal * basis_points, TAX_SCALE)
    return subtotal, tax, subtotal + tax


class _Register:
    """The meter register as a function of time, in mWh: flat before the first and after the
    last reading, linear between readings, never decreasing. Only the readings around each cut
    are converted, so a session with hundreds of readings costs little more than one with two."""

    __slots__ = ("_regs", "_times")

    def __init__(self, readings: Sequence[tuple[datetime, int]]) -> None:
        times = [r[0] for r in readings]
        regs = [r[1] for r in readings]
        if not all(map(operator.le, times, times[1:])):
            ordered = sorted(readings, key=lambda r: r[0])
            times, regs = [r[0] for r in ordered], [r[1] for r in ordered]
        if not all(map(operator.le, regs, regs[1:])):
            regs = list(accumulate(regs, max))  # a replaced meter: no negative energy
        self._times, self._regs = times, regs

    def values(self, instants: Sequence[int]) -> list[int]:
        times, regs = self._times, self._regs
        if not times:
            return [0] * len(instants)
        out = []
        for ms in instants:
            i = bisect_right(times, EPOCH + ms * ONE_MS)
            if i == 0:
                out.append(regs[0] * 1000)
            elif i == len(times):
                out.append(regs[-1] * 1000)
            else:
                x0, x1 = to_ms(times[i - 1]), to_ms(times[i])
                y0, y1 = regs[i - 1] * 1000, regs[i] * 1000
                # readings within one millisecond: the earlier one holds until the later one
                out.append(y0 if x1 <= x0 else y0 + (y1 - y0) * (ms - x0) // (x1 - x0))
        return out


@lru_cache(maxsize=1_024)
def plan(tariff: Tariff) -> PricePlan:
    """Prepared once per tariff version and reused for every session priced with it."""
    return PricePlan(tariff)


def price(tariff: Tariff, timeline: Timeline, benefits: Benefits | None = None) -> Price:
    return plan(tariff).price(timeline, benefits)
