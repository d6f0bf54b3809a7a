"""Normalising what drivers type: names, phone numbers, locales, card numbers, vehicles.

Every function returns the value to store or raises InvalidInput naming the field, so the app
can show the message next to it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from enum import Enum
from typing import Final

from api.invoicing.postal import clean_address
from schema.enums import ConnectorType
from schema.errors import InvalidInput


class _Unset(Enum):
    UNSET = "unset"


# A field the caller did not send: keep the stored value (None means "clear it").
UNSET: Final = _Unset.UNSET
Unset = _Unset

# Column sizes of user_account and vehicle; a longer value is refused, never cut.
MAX_DISPLAY_NAME = 120
MAX_VEHICLE_TEXT = 60
MAX_CARD_LABEL = 60
# The largest traction battery on sale (heavy trucks) is below 1 MWh; more is a typo.
MAX_BATTERY_KWH = 1_000.0
# OCPP 1.6 IdToken is CiString20Type.
MAX_CARD_TOKEN = 20

# E.164: a country code and at most 15 digits in all; 7 is the shortest real number.
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_PHONE_SEPARATORS = re.compile(r"[\s().\-/]")
# BCP 47 as apps use it: a language, optionally a script and a region ("en", "de-DE", "es-419").
_LOCALE = re.compile(r"^([a-z]{2,3})(?:-([A-Z][a-z]{3}))?(?:-([A-Z]{2}|[0-9]{3}))?$")
# Card readers print UIDs as "04:A2:3B:…" or "04 a2 3b …"; the charger sends the bare hex.
_CARD_SEPARATORS = re.compile(r"[\s:\-]")
_CARD_TOKEN = re.compile(rf"^[A-Z0-9]{{1,{MAX_CARD_TOKEN}}}$")


def _text(value: str, field: str, *, max_length: int) -> str:
    """Trimmed, printable, 1..max_length characters."""
    cleaned = value.strip()
    if not cleaned:
        raise InvalidInput(f"{field} must not be empty")
    if len(cleaned) > max_length:
        raise InvalidInput(f"{field} must be at most {max_length} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in cleaned):
        raise InvalidInput(f"{field} must not contain control characters")
    return cleaned


def optional_text(value: str | None, field: str, *, max_length: int) -> str | None:
    """None or an empty string clears the field."""
    if value is None or not value.strip():
        return None
    return _text(value, field, max_length=max_length)


def required_text(value: str, field: str, *, max_length: int) -> str:
    return _text(value, field, max_length=max_length)


def display_name(value: str | None) -> str | None:
    return optional_text(value, "displayName", max_length=MAX_DISPLAY_NAME)


def phone(value: str | None) -> str | None:
    """Stored as E.164 (`+4915112345678`); spaces, dashes, dots and brackets are dropped."""
    if value is None or not value.strip():
        return None
    compact = _PHONE_SEPARATORS.sub("", value.strip())
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not _PHONE.match(compact):
        raise InvalidInput("phone must be an international number such as +49 151 23456789")
    return compact


def billing_address(value: str | None) -> str | None:
    return None if value is None else clean_address(value, "billingAddress")


def locale(value: str | None) -> str:
    """Canonical case: language lower, script title, region upper (`de_de` → `de-DE`)."""
    if value is None:
        raise InvalidInput("locale must not be null")
    parts = value.strip().replace("_", "-").split("-")
    canonical = "-".join(
        [parts[0].lower()] + [p.title() if len(p) == 4 else p.upper() for p in parts[1:]]  # script or region
    )
    if not _LOCALE.match(canonical):
        raise InvalidInput('locale must be a language tag such as "en" or "de-DE"')
    return canonical


def card_token(value: str) -> str:
    """The idTag as a charger sends it: separators dropped, upper case, 1–20 letters or digits."""
    compact = _CARD_SEPARATORS.sub("", value).upper()
    if not _CARD_TOKEN.match(compact):
        raise InvalidInput(f"card number must be 1–{MAX_CARD_TOKEN} letters or digits")
    return compact


def battery_wh(kwh: float | None) -> int | None:
    if kwh is None:
        return None
    if not 0 < kwh <= MAX_BATTERY_KWH:
        raise InvalidInput(f"batteryKwh must be above 0 and at most {MAX_BATTERY_KWH:g}")
    return round(kwh * 1000)


def connector_types(values: Iterable[ConnectorType]) -> str:
    """Space-separated, each type once, in the order given."""
    return " ".join(dict.fromkeys(ConnectorType(v).value for v in values))


def parse_connector_types(stored: str) -> list[ConnectorType]:
    """Stored names that are no longer known are skipped rather than failing the read."""
    known = {c.value: c for c in ConnectorType}
    return [known[v] for v in stored.split() if v in known]
