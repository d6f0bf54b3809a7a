"""A tariff version's stored form: plain JSON with prices as decimal strings.

Decimal strings, not floats: "39.5" must come back as exactly 39.5 minor units years later, when
a receipt is printed again from the version the session froze. The currency (the
organisation's) and the time zone (the location's) are not part of it: they are the context
the version is priced in.
"""

from __future__ import annotations

from datetime import time
from decimal import Decimal, InvalidOperation
from typing import Any

from api.billing.tariffs import Prices, Tariff, Window
from schema.errors import InvalidInput

FORMAT = 1


def _price(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise InvalidInput(f"not a price: {value!r}") from None


def _optional_price(value: Any) -> Decimal | None:
    return None if value is None else _price(value)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _clock(value: str) -> time:
    try:
        return time.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"not a time of day (HH:MM): {value!r}") from None


def to_json(t: Tariff) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "energy_per_kwh": _text(t.base.energy_per_kwh),
        "time_per_minute": _text(t.base.time_per_minute),
        "idle_per_minute": _text(t.base.idle_per_minute),
        "session_fee": t.session_fee,
        "idle_grace_minutes": t.idle_grace_minutes,
        "idle_cap": t.idle_cap,
        "min_price": t.min_price,
        "max_price": t.max_price,
        "tax_basis_points": t.tax_basis_points,
        "prices_include_tax": t.prices_include_tax,
        "windows": [
            {
                "name": w.name,
                "start": w.start.strftime("%H:%M"),
                "end": w.end.strftime("%H:%M"),
                "days": sorted(w.days),
                "energy_per_kwh": _text(w.energy_per_kwh),
                "time_per_minute": _text(w.time_per_minute),
                "idle_per_minute": _text(w.idle_per_minute),
            }
            for w in t.windows
        ],
    }


def from_json(d: dict[str, Any], *, currency: str, time_zone: str) -> Tariff:
    return Tariff(
        currency=currency,
        base=Prices(_price(d["energy_per_kwh"]), _price(d["time_per_minute"]), _price(d["idle_per_minute"])),
        windows=tuple(
            Window(
                name=w["name"],
                start=_clock(w["start"]),
                end=_clock(w["end"]),
                days=frozenset(int(x) for x in w.get("days", ())),
                energy_per_kwh=_optional_price(w.get("energy_per_kwh")),
                time_per_minute=_optional_price(w.get("time_per_minute")),
                idle_per_minute=_optional_price(w.get("idle_per_minute")),
            )
            for w in d.get("windows", ())
        ),
        session_fee=int(d.get("session_fee", 0)),
        idle_grace_minutes=int(d.get("idle_grace_minutes", 0)),
        idle_cap=d.get("idle_cap"),
        min_price=d.get("min_price"),
        max_price=d.get("max_price"),
        tax_basis_points=int(d.get("tax_basis_points", 0)),
        prices_include_tax=bool(d.get("prices_include_tax", True)),
        time_zone=time_zone,
    )
