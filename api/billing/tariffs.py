"""What a tariff is: its price components, time-of-use windows, tax and limits.

A tariff is a value. Stored tariffs are versioned (an edit makes a new version) and a session
keeps the version in force when it started, so the same `Tariff` prices a session on the day
it starts and on the day its receipt is printed again.

Unit prices are exact decimals in the currency's minor units (39 = €0.39, 39.5 = €0.395); only
amounts are rounded, once per line (see api.billing.pricing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal
from enum import StrEnum

from schema.errors import InvalidInput

# Unit prices carry at most this many decimals of a minor unit (0.0001 cent per kWh is far
# below any real tariff), so the engine can work in exact integers.
PRICE_DECIMALS = 4
PRICE_SCALE = 10**PRICE_DECIMALS
# A million minor units (€10,000) per kWh or minute: anything above is a typo, not a price.
MAX_UNIT_PRICE = 1_000_000
# 0–100 % in basis points.
MAX_TAX_BASIS_POINTS = 10_000
MAX_WINDOWS = 24
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# ISO 4217 currencies without a minor unit are still priced in integer "minor" units (= major).
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "HUF", "ISK", "CLP", "VND"})
_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF ", "JPY": "¥"}


class Component(StrEnum):
    ENERGY = "energy"
    TIME = "time"
    IDLE = "idle"
    FLAT = "flat"
    MEMBERSHIP = "membership"
    MINIMUM = "minimum"
    MAXIMUM = "maximum"
    # Not from the engine: the sponsor's share of a stored bill (api.sponsorships), negative.
    SPONSORED = "sponsored"


@dataclass(frozen=True, slots=True)
class Prices:
    """Per-unit prices in minor units: per kWh, per minute charging, per idle minute."""

    energy_per_kwh: Decimal = Decimal(0)
    time_per_minute: Decimal = Decimal(0)
    idle_per_minute: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Window:
    """A time-of-use window in the location's local time. `days` are 0 (Monday) … 6 (Sunday);
    empty means every day. `end` <= `start` runs past midnight into the next day. A price left
    None keeps the tariff's base price inside the window."""

    name: str
    start: time
    end: time
    days: frozenset[int] = frozenset()
    energy_per_kwh: Decimal | None = None
    time_per_minute: Decimal | None = None
    idle_per_minute: Decimal | None = None

    def prices(self, base: Prices) -> Prices:
        return Prices(
            energy_per_kwh=base.energy_per_kwh if self.energy_per_kwh is None else self.energy_per_kwh,
            time_per_minute=base.time_per_minute if self.time_per_minute is None else self.time_per_minute,
            idle_per_minute=base.idle_per_minute if self.idle_per_minute is None else self.idle_per_minute,
        )


@dataclass(frozen=True, slots=True)
class Tariff:
    currency: str
    base: Prices = field(default_factory=Prices)
    # The first window that contains an instant sets its prices; none: the base prices.
    windows: tuple[Window, ...] = ()
    session_fee: int = 0
    # Idle minutes are charged only after this many minutes past the end of charging.
    idle_grace_minutes: int = 0
    # The most the idle component of one session may cost (None: no cap).
    idle_cap: int | None = None
    min_price: int | None = None
    max_price: int | None = None
    tax_basis_points: int = 0
    prices_include_tax: bool = True
    time_zone: str = "UTC"

    def __post_init__(self) -> None:
        validate(self)


def validate(t: Tariff) -> None:
    """Reject what would make a price meaningless: negative prices (cost must never fall as a
    session grows), a cap below the minimum, too many windows, an unknown zone."""
    if len(t.currency) != 3 or not t.currency.isalpha() or not t.currency.isupper():
        raise InvalidInput("currency must be an ISO 4217 code such as EUR")
    prices = [t.base.energy_per_kwh, t.base.time_per_minute, t.base.idle_per_minute]
    for w in t.windows:
        prices += [p for p in (w.energy_per_kwh, w.time_per_minute, w.idle_per_minute) if p is not None]
        if not w.name or len(w.name) > 40:
            raise InvalidInput("a window needs a name of 1–40 characters")
        if any(d not in range(7) for d in w.days):
            raise InvalidInput("window days are 0 (Monday) to 6 (Sunday)")
        if w.start == w.end:
            raise InvalidInput(f"window {w.name} is empty (start equals end)")
    for p in prices:
        if not p.is_finite() or not 0 <= p <= MAX_UNIT_PRICE:
            raise InvalidInput(f"unit prices are 0–{MAX_UNIT_PRICE} minor units")
        if p * PRICE_SCALE != int(p * PRICE_SCALE):
            raise InvalidInput(f"unit prices have at most {PRICE_DECIMALS} decimals of a minor unit")
    if len(t.windows) > MAX_WINDOWS:
        raise InvalidInput(f"at most {MAX_WINDOWS} time-of-use windows")
    amounts = [t.session_fee, t.idle_grace_minutes, t.idle_cap, t.min_price, t.max_price]
    if any(a is not None and a < 0 for a in amounts):
        raise InvalidInput("fees, caps, limits and the grace period cannot be negative")
    if t.min_price is not None and t.max_price is not None and t.max_price < t.min_price:
        raise InvalidInput("the maximum price is below the minimum price")
    if not 0 <= t.tax_basis_points <= MAX_TAX_BASIS_POINTS:
        raise InvalidInput("the tax rate is 0–100 %")
    from api.billing.localtime import zone  # late: keeps this module free of zone data loading

    zone(t.time_zone)


def scaled(price: Decimal) -> int:
    """A unit price as an exact integer in 1/PRICE_SCALE minor units."""
    return int(price * PRICE_SCALE)


def money(amount: int, currency: str) -> str:
    """Minor units as the driver reads them: 1234 EUR → "€12.34"."""
    if currency in ZERO_DECIMAL_CURRENCIES:
        text = f"{amount:,}"
    else:
        sign = "-" if amount < 0 else ""
        text = f"{sign}{abs(amount) // 100:,}.{abs(amount) % 100:02d}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


def unit_money(price: Decimal, currency: str) -> str:
    """A unit price in major units, without trailing zeros beyond the cents: 39.5 → €0.395."""
    if currency in ZERO_DECIMAL_CURRENCIES:
        major = price
    else:
        major = price / 100
    text = f"{major.normalize():f}"
    whole, _, frac = text.partition(".")
    if currency not in ZERO_DECIMAL_CURRENCIES:
        frac = (frac + "00")[: max(2, len(frac))]
        text = f"{whole}.{frac}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


def summary(t: Tariff) -> str:
    """What the app shows before the cable goes in: "€0.39/kWh, €0.10/min idle after 15 min"."""
    parts = _price_parts(t.base, t)
    if t.session_fee:
        parts.append(f"{money(t.session_fee, t.currency)} per session")
    for w in t.windows:
        inner = _price_parts(w.prices(t.base), t, only=w)
        if inner:
            parts.append(f"{w.name} ({_window_span(w)}): {', '.join(inner)}")
    if t.min_price:
        parts.append(f"minimum {money(t.min_price, t.currency)}")
    if t.max_price is not None:
        parts.append(f"at most {money(t.max_price, t.currency)} per session")
    if t.tax_basis_points:
        rate = f"{Decimal(t.tax_basis_points) / 100:f}".rstrip("0").rstrip(".")
        parts.append(f"{'incl.' if t.prices_include_tax else 'plus'} {rate}% tax")
    return ", ".join(parts) if parts else "free"


def _price_parts(p: Prices, t: Tariff, only: Window | None = None) -> list[str]:
    parts = []
    c = t.currency
    if (only is None or only.energy_per_kwh is not None) and p.energy_per_kwh:
        parts.append(f"{unit_money(p.energy_per_kwh, c)}/kWh")
    if (only is None or only.time_per_minute is not None) and p.time_per_minute:
        parts.append(f"{unit_money(p.time_per_minute, c)}/min charging")
    if (only is None or only.idle_per_minute is not None) and p.idle_per_minute:
        idle = f"{unit_money(p.idle_per_minute, c)}/min idle"
        if only is None and t.idle_grace_minutes:
            idle += f" after {t.idle_grace_minutes} min"
        if only is None and t.idle_cap is not None:
            idle += f" (at most {money(t.idle_cap, c)})"
        parts.append(idle)
    return parts


def _window_span(w: Window) -> str:
    days = ""
    if w.days and len(w.days) < 7:
        days = "/".join(WEEKDAYS[d] for d in sorted(w.days)) + " "
    return f"{days}{w.start:%H:%M}–{w.end:%H:%M}"
