"""Drift: how a station's stored configuration differs from its template. Pure functions.

The stored configuration is what the station last reported (1.6 GetConfiguration, or the 2.0.1
device model mirrored under "Component.Variable" keys), so drift is only as fresh as that read:
every result carries when it was read and whether that is too long ago to trust.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

# The gateway re-reads a station's configuration after a boot when its copy is older than a day
# (gateway/station_setup.py CONFIGURATION_REFRESH); a copy older than that may well have been
# changed on the station's display or by another system since.
STALE_AFTER = timedelta(days=1)
# Configuration values that chargers spell in more than one way but mean the same.
_BOOLEANS = frozenset({"true", "false"})
# Keys holding the station's credentials (api.control.operations.SECRET_KEYS): set only by
# password rotation, never reported by a station, so never part of a template.
SECRET_KEY_NAMES = frozenset({"authorizationkey", "basicauthpassword"})


class KeyState(StrEnum):
    DRIFTED = "DRIFTED"  # reported, writable, with another value
    MISSING = "MISSING"  # the station did not report the key
    READ_ONLY = "READ_ONLY"  # reported read-only with another value: cannot be fixed remotely


class DriftStatus(StrEnum):
    IN_SYNC = "IN_SYNC"
    DRIFTED = "DRIFTED"
    NOT_READ = "NOT_READ"  # ChargeNet has not read the configuration yet: nothing to compare
    NO_TEMPLATE = "NO_TEMPLATE"  # no template of its organisation matches the station


class Expected(Protocol):
    key: str
    value: str
    apply: bool


class Reported(Protocol):
    key: str
    value: str | None
    readonly: bool


@dataclass(frozen=True, slots=True)
class KeyDrift:
    key: str
    expected: str
    actual: str | None
    state: KeyState
    apply: bool
    # The station's own spelling of the key (chargers compare without case, ChargeNet sends
    # and stores the spelling the station reported); None when missing.
    station_key: str | None = None

    @property
    def fixable(self) -> bool:
        """applyConfigurationTemplate would send it: drifted, writable and apply-flagged."""
        return self.state is KeyState.DRIFTED and self.apply


@dataclass(frozen=True, slots=True)
class StationDrift:
    station_id: int
    template_id: int
    read_at: datetime | None
    stale: bool
    keys: list[KeyDrift] = field(default_factory=list)

    @property
    def status(self) -> DriftStatus:
        if self.read_at is None:
            return DriftStatus.NOT_READ
        return DriftStatus.DRIFTED if self.keys else DriftStatus.IN_SYNC

    def count(self, state: KeyState) -> int:
        return sum(1 for k in self.keys if k.state is state)


def is_secret_key(key: str) -> bool:
    """Case-insensitive, and a 2.0.1 key naming the variable (SecurityCtrlr.BasicAuthPassword,
    with an instance or attribute type) counts too."""
    name = key.strip().lower().rsplit(".", 1)[-1].split("/", 1)[0].split("[", 1)[0]
    return name in SECRET_KEY_NAMES


def normalize_key(key: str) -> str:
    return key.strip().lower()


def same_value(expected: str, actual: str | None) -> bool:
    """Values as chargers report them: surrounding blanks do not count, and booleans compare
    without case ("True" on one firmware, "true" on the next)."""
    if actual is None:
        return False
    a, b = expected.strip(), actual.strip()
    if a.lower() in _BOOLEANS and b.lower() in _BOOLEANS:
        return a.lower() == b.lower()
    return a == b


def compute_drift(
    *,
    station_id: int,
    template_id: int,
    entries: Iterable[Expected],
    reported: Sequence[Reported],
    read_at: datetime | None,
    now: datetime,
) -> StationDrift:
    """Template keys the station differs on; keys it agrees on are not listed."""
    stale = read_at is None or now - read_at > STALE_AFTER
    if read_at is None:
        return StationDrift(station_id, template_id, None, stale)
    by_key = {normalize_key(r.key): r for r in reported}
    keys: list[KeyDrift] = []
    for e in sorted(entries, key=lambda e: normalize_key(e.key)):
        found = by_key.get(normalize_key(e.key))
        if found is None:
            keys.append(KeyDrift(e.key, e.value, None, KeyState.MISSING, e.apply))
        elif not same_value(e.value, found.value):
            state = KeyState.READ_ONLY if found.readonly else KeyState.DRIFTED
            keys.append(KeyDrift(e.key, e.value, found.value, state, e.apply, found.key))
    return StationDrift(station_id, template_id, read_at, stale, keys)


def matches(template: Any, station: Any) -> bool:
    """Exact vendor and model as the station booted with; the firmware prefix, when set,
    must begin the station's firmware version."""
    if station.vendor != template.vendor or station.model != template.model:
        return False
    prefix = template.firmware_prefix
    return not prefix or (station.firmware_version or "").startswith(prefix)


def best_template(templates: Iterable[Any], station: Any) -> Any | None:
    """The most specific template that matches: a longer firmware prefix wins (a template for
    firmware 2.1 overrides the model's general one), then the oldest."""
    found = [t for t in templates if matches(t, station)]
    if not found:
        return None
    return min(found, key=lambda t: (-len(t.firmware_prefix or ""), t.id))
