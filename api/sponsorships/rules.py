"""The pure rules of sponsored charging: when a sponsorship applies, what a session reserves,
and what the sponsor finally covers. No database here, so every rule is testable by value.

Definitions (what the driver app, the sponsor's statement and the bill agree on):
- Windows are local wall-clock time of the session's location (the same containment rule as
  tariff windows, api.billing.localtime.contains: a window past midnight belongs to the day it
  starts on). A session is sponsored when it STARTS inside a window; it stays sponsored to its
  end.
- Money cap C: the session reserves min(C, budget left) at its start; the sponsor covers
  min(total, reserved). When less than a full cap is left, the session still gets what is left
  (a partial sponsorship is better for the driver than none, and the budget is used fully);
  nothing left → no claim and the sponsorship is exhausted.
- Energy cap N Wh: the sponsor covers the session's total price × min(1, N / energy_wh)
  (rounded down to the minor unit: the sponsor never pays a fraction more than its share), i.e.
  the first N Wh of the session at its average price including time and fees. What it reserves
  at the start is the most N Wh can cost with the frozen tariff — N at its highest energy unit
  price plus the session fee, plus tax when prices exclude it — and the cover is never more
  than that reservation, so a budget can never be overspent whatever the session does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from api.billing.localtime import contains, zone
from api.billing.tariffs import MAX_WINDOWS, Tariff, money
from schema.errors import InvalidInput

MAX_MESSAGE = 200
MAX_PLACES = 500  # locations + stations of one sponsorship; a campaign, not the whole network
_TAX_SCALE = 10_000


@dataclass(frozen=True, slots=True)
class SponsorWindow:
    start: time
    end: time
    days: frozenset[int] = frozenset()


def _clock(value: Any) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(f"not a time of day (HH:MM): {value!r}") from None


def parse_windows(raw: list[dict[str, Any]]) -> tuple[SponsorWindow, ...]:
    """Stored or submitted windows, validated: HH:MM times, days 0–6, not empty."""
    if len(raw) > MAX_WINDOWS:
        raise InvalidInput(f"at most {MAX_WINDOWS} windows")
    windows = []
    for w in raw:
        days = frozenset(int(d) for d in w.get("days") or ())
        if any(d not in range(7) for d in days):
            raise InvalidInput("window days are 0 (Monday) to 6 (Sunday)")
        found = SponsorWindow(_clock(w["start"]), _clock(w["end"]), days)
        if found.start == found.end:
            raise InvalidInput("a window's start equals its end")
        windows.append(found)
    return tuple(windows)


def windows_json(windows: tuple[SponsorWindow, ...]) -> list[dict[str, Any]]:
    return [
        {"start": w.start.strftime("%H:%M"), "end": w.end.strftime("%H:%M"), "days": sorted(w.days)}
        for w in windows
    ]


def check_message(message: str) -> str:
    message = message.strip()
    if not 1 <= len(message) <= MAX_MESSAGE:
        raise InvalidInput(f"message: 1–{MAX_MESSAGE} characters")
    return message


def in_window(windows: tuple[SponsorWindow, ...], at: datetime, time_zone: str) -> bool:
    """Whether the instant falls inside a window in the location's local time (no windows:
    always)."""
    if not windows:
        return True
    local = at.astimezone(zone(time_zone))
    wall = local.time().replace(tzinfo=None)
    return any(contains(w.start, w.end, w.days, local.weekday(), wall) for w in windows)


def applies(row: Any, *, station_id: int, location_id: int | None, at: datetime, time_zone: str) -> bool:
    """Whether a sponsorship row covers a session starting at `at` at this station."""
    if row.state != "active" or at < row.starts_at or (row.ends_at is not None and at >= row.ends_at):
        return False
    if station_id not in row.station_ids and (location_id is None or location_id not in row.location_ids):
        return False
    return in_window(parse_windows(row.windows), at, time_zone)


def energy_cap_reserve(cap_wh: int, tariff: Tariff | None) -> int:
    """The most `cap_wh` of energy can cost under the tariff (see the module docstring)."""
    if tariff is None:
        return 0
    prices = [tariff.base.energy_per_kwh] + [w.energy_per_kwh for w in tariff.windows if w.energy_per_kwh]
    highest = max(prices)
    # ceil(cap_wh / 1000 × price): reserve the whole minor unit a rounded line could reach
    energy = -(-int(highest * cap_wh) // 1000)
    amount = energy + tariff.session_fee
    if not tariff.prices_include_tax:
        amount = -(-amount * (_TAX_SCALE + tariff.tax_basis_points) // _TAX_SCALE)
    return amount


def cover(*, total: int, energy_wh: int, reserved: int, cap_wh: int | None) -> int:
    """What the sponsor pays of a session's bill (0 ≤ cover ≤ min(total, reserved))."""
    if total <= 0 or reserved <= 0:
        return 0
    share = total
    if cap_wh is not None and energy_wh > cap_wh:
        share = total * cap_wh // energy_wh
    return min(share, reserved)


def cap_description(*, cap_amount: int | None, cap_wh: int | None, currency: str) -> str:
    """What the app shows under the sponsor's message."""
    if cap_wh is not None:
        kwh = f"{cap_wh / 1000:.3f}".rstrip("0").rstrip(".")
        return f"The first {kwh} kWh of your session are free"
    return f"Up to {money(cap_amount or 0, currency)} of your session is free"
