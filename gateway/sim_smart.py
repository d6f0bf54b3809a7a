"""Smart charging on the simulated charger (OCPP 1.6 §3.13; SetChargingProfile §5.16,
ClearChargingProfile §5.5, GetCompositeSchedule §5.7).

Profiles are kept per connector as received. At any instant a connector's limit is:

* the transaction level: the TxProfile of the running transaction if one is active, else the
  connector's own TxDefaultProfile, else connector 0's TxDefaultProfile (the default for all);
* capped by connector 0's ChargePointMaxProfile;
* capped by the connector's rated power (what the hardware can do without any profile).

Within one purpose the highest stackLevel that is active at that instant wins; when its
schedule has not started, has ended or is outside validFrom/validTo, the next one down
applies (§3.13.2). Limits given in amperes are compared in watts at 230 V per phase.

Simplifications a real charger may not share: the ChargePointMaxProfile caps each connector
rather than their sum, and the composite for connector 0 is the ChargePointMaxProfile capped
by the sum of the connectors' ratings.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from gateway.sim_config import (
    CHARGE_PROFILE_MAX_STACK_LEVEL,
    CHARGING_SCHEDULE_MAX_PERIODS,
    MAX_CHARGING_PROFILES_INSTALLED,
)
from schema.timeutil import parse_ocpp_datetime, to_ocpp

VOLTAGE_V = 230.0  # nominal phase voltage (EN 50160) for converting A to W
DEFAULT_PHASES = 3  # OCPP 1.6 §7.13: numberPhases is 3 when absent
# Periods in one composite schedule: bounds the work a long duration over daily recurring
# profiles costs (a year of half-hourly periods would be 17 520).
MAX_COMPOSITE_PERIODS = 1_000
RECURRENCE = {"Daily": timedelta(days=1), "Weekly": timedelta(weeks=1)}

TX_PROFILE = "TxProfile"
TX_DEFAULT_PROFILE = "TxDefaultProfile"
CHARGE_POINT_MAX_PROFILE = "ChargePointMaxProfile"


class TooManyPeriods(Exception):
    """The composite over the requested duration would exceed MAX_COMPOSITE_PERIODS."""


@dataclass(frozen=True)
class Limit:
    watts: float
    phases: int
    unit: str  # the unit the limit was given in ("A" or "W")
    value: float  # the limit as given


def to_watts(value: float, unit: str, phases: int) -> float:
    return value * VOLTAGE_V * phases if unit == "A" else value


def in_unit(limit: Limit, unit: str) -> float:
    if limit.unit == unit:
        return round(limit.value, 1)
    return round(limit.watts / (VOLTAGE_V * limit.phases) if unit == "A" else limit.watts, 1)


def _when(value: str | None) -> datetime | None:
    return parse_ocpp_datetime(value) if value else None


@dataclass
class Installed:
    connector_id: int
    profile: dict[str, Any]  # csChargingProfiles as received
    installed_at: datetime

    @property
    def id(self) -> int:
        return int(self.profile["chargingProfileId"])

    @property
    def purpose(self) -> str:
        return str(self.profile["chargingProfilePurpose"])

    @property
    def stack_level(self) -> int:
        return int(self.profile["stackLevel"])

    @property
    def schedule(self) -> dict[str, Any]:
        return self.profile["chargingSchedule"]  # type: ignore[no-any-return]

    def _base(self) -> datetime:
        return (
            _when(self.schedule.get("startSchedule"))
            or _when(self.profile.get("validFrom"))
            or self.installed_at
        )

    def start_at(self, at: datetime, origin: datetime) -> datetime:
        """When the occurrence of the schedule that covers `at` began."""
        kind = self.profile["chargingProfileKind"]
        if kind == "Relative":
            return origin  # §7.10: relative to the transaction's start (or now, without one)
        base = self._base()
        if kind == "Recurring":
            step = RECURRENCE[self.profile["recurrencyKind"]]
            return base + step * math.floor((at - base) / step)
        return base

    def limit_at(self, at: datetime, origin: datetime) -> Limit | None:
        """This profile's limit at `at`, or None when it does not apply then."""
        valid_from, valid_to = _when(self.profile.get("validFrom")), _when(self.profile.get("validTo"))
        if (valid_from is not None and at < valid_from) or (valid_to is not None and at >= valid_to):
            return None
        start = self.start_at(at, origin)
        offset = (at - start).total_seconds()
        duration = self.schedule.get("duration")
        if offset < 0 or (duration is not None and offset >= duration):
            return None
        current = None
        for period in self.schedule["chargingSchedulePeriod"]:  # ascending (checked at install)
            if period["startPeriod"] > offset:
                break
            current = period
        if current is None:
            return None
        unit = self.schedule["chargingRateUnit"]
        phases = int(current.get("numberPhases", DEFAULT_PHASES))
        return Limit(to_watts(float(current["limit"]), unit, phases), phases, unit, float(current["limit"]))

    def edges(self, start: datetime, end: datetime, origin: datetime) -> Iterator[datetime]:
        """Instants in [start, end) at which this profile's limit may change."""
        for bound in (self.profile.get("validFrom"), self.profile.get("validTo")):
            if bound:
                yield parse_ocpp_datetime(bound)
        first = self.start_at(start, origin)
        occurrences = [first]
        if self.profile["chargingProfileKind"] == "Recurring":
            step = RECURRENCE[self.profile["recurrencyKind"]]
            count = math.ceil((end - first) / step)
            if count > MAX_COMPOSITE_PERIODS:
                raise TooManyPeriods
            occurrences = [first + step * k for k in range(count + 1)]
        duration = self.schedule.get("duration")
        for occurrence in occurrences:
            for period in self.schedule["chargingSchedulePeriod"]:
                yield occurrence + timedelta(seconds=period["startPeriod"])
            if duration is not None:
                yield occurrence + timedelta(seconds=duration)


def schedule_problem(profile: dict[str, Any]) -> str | None:
    """Why a profile's schedule cannot be used, or None (§7.13, §7.14)."""
    schedule = profile["chargingSchedule"]
    periods = schedule["chargingSchedulePeriod"]
    starts = [p["startPeriod"] for p in periods]
    if not periods or len(periods) > CHARGING_SCHEDULE_MAX_PERIODS:
        return f"1 to {CHARGING_SCHEDULE_MAX_PERIODS} periods"
    if starts[0] != 0 or any(b <= a for a, b in pairwise(starts)):
        return "periods start at 0 and ascend"
    if any(p["limit"] < 0 or not 1 <= p.get("numberPhases", DEFAULT_PHASES) <= 3 for p in periods):
        return "limits are not negative, phases are 1 to 3"
    if schedule.get("duration") is not None and schedule["duration"] <= 0:
        return "a duration is positive"
    if profile["chargingProfileKind"] == "Recurring" and profile.get("recurrencyKind") not in RECURRENCE:
        return "a recurring profile names its recurrencyKind"
    valid_from, valid_to = _when(profile.get("validFrom")), _when(profile.get("validTo"))
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        return "validTo is after validFrom"
    return None


class ChargingProfiles:
    """The profiles installed on one charger."""

    def __init__(self) -> None:
        self.installed: list[Installed] = []

    def install(
        self,
        connector_id: int,
        profile: dict[str, Any],
        *,
        active_transaction: int | None,
        connector_ids: Collection[int],
        rate_units: Collection[str],
        now: datetime,
    ) -> str:
        """SetChargingProfile.conf status. A profile with the same id, or the same purpose and
        stackLevel on the same connector, is replaced (§5.16)."""
        purpose, stack = profile["chargingProfilePurpose"], profile["stackLevel"]
        if profile["chargingSchedule"]["chargingRateUnit"] not in rate_units:
            return "NotSupported"  # ChargingScheduleAllowedChargingRateUnit does not list it
        if connector_id != 0 and connector_id not in connector_ids:
            return "Rejected"
        if purpose == CHARGE_POINT_MAX_PROFILE and connector_id != 0:
            return "Rejected"  # §7.11: the charge point's maximum is set on connector 0
        if purpose == TX_PROFILE and connector_id == 0:
            return "Rejected"  # a transaction runs on a connector
        if purpose == TX_PROFILE and (
            active_transaction is None or profile.get("transactionId") not in (None, active_transaction)
        ):
            return "Rejected"  # a TxProfile belongs to the transaction running on its connector
        if not 0 <= stack <= CHARGE_PROFILE_MAX_STACK_LEVEL or schedule_problem(profile) is not None:
            return "Rejected"
        kept = [
            p
            for p in self.installed
            if p.id != profile["chargingProfileId"]
            and not (p.connector_id == connector_id and p.purpose == purpose and p.stack_level == stack)
        ]
        if len(kept) >= MAX_CHARGING_PROFILES_INSTALLED:
            return "Rejected"
        kept.append(Installed(connector_id, profile, now))
        self.installed = kept
        return "Accepted"

    def clear(
        self,
        *,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> str:
        """ClearChargingProfile.conf status: an id selects that profile alone; otherwise the
        given criteria filter (none given: every profile). Unknown when nothing matched."""

        def doomed(p: Installed) -> bool:
            if profile_id is not None:
                return p.id == profile_id
            return (
                (connector_id is None or p.connector_id == connector_id)
                and (purpose is None or p.purpose == purpose)
                and (stack_level is None or p.stack_level == stack_level)
            )

        kept = [p for p in self.installed if not doomed(p)]
        if len(kept) == len(self.installed):
            return "Unknown"
        self.installed = kept
        return "Accepted"

    def end_transaction(self, connector_id: int) -> None:
        """A TxProfile lives as long as its transaction (§3.13.1)."""
        self.installed = [
            p for p in self.installed if not (p.purpose == TX_PROFILE and p.connector_id == connector_id)
        ]

    def _top(self, purpose: str, connector_id: int, at: datetime, origin: datetime) -> Limit | None:
        stack = sorted(
            (p for p in self.installed if p.purpose == purpose and p.connector_id == connector_id),
            key=lambda p: p.stack_level,
            reverse=True,
        )
        for profile in stack:
            limit = profile.limit_at(at, origin)
            if limit is not None:
                return limit
        return None

    def limit(
        self, connector_id: int, at: datetime, *, transaction_start: datetime | None, rated_w: float
    ) -> Limit:
        """The limit in force on a connector at `at` (the module docstring says how)."""
        origin = transaction_start or at
        levels: list[Limit | None] = []
        if connector_id != 0:
            tx = self._top(TX_PROFILE, connector_id, at, origin) if transaction_start is not None else None
            levels.append(
                tx
                or self._top(TX_DEFAULT_PROFILE, connector_id, at, origin)
                or self._top(TX_DEFAULT_PROFILE, 0, at, origin)
            )
        levels.append(self._top(CHARGE_POINT_MAX_PROFILE, 0, at, origin))
        levels.append(Limit(rated_w, DEFAULT_PHASES, "W", rated_w))
        # min keeps the first of equal limits: a profile's own unit wins over the rating's.
        return min((lv for lv in levels if lv is not None), key=lambda lv: lv.watts)

    def composite(
        self,
        connector_id: int,
        *,
        start: datetime,
        duration_s: int,
        unit: str | None,
        transaction_start: datetime | None,
        rated_w: float,
    ) -> dict[str, Any]:
        """GetCompositeSchedule's chargingSchedule over [start, start + duration_s).

        Raises TooManyPeriods when the answer would be unreasonably long.
        """
        end = start + timedelta(seconds=duration_s)
        origin = transaction_start or start
        relevant = [p for p in self.installed if p.connector_id in (0, connector_id)]
        instants = {start}
        for profile in relevant:
            instants.update(t for t in profile.edges(start, end, origin) if start < t < end)
        if len(instants) > MAX_COMPOSITE_PERIODS:
            raise TooManyPeriods

        def at(t: datetime) -> Limit:
            return self.limit(connector_id, t, transaction_start=transaction_start, rated_w=rated_w)

        first = at(start)
        unit = unit or first.unit
        periods: list[dict[str, Any]] = []
        for instant in sorted(instants):
            limit = at(instant)
            entry = {
                "startPeriod": int((instant - start).total_seconds()),
                "limit": in_unit(limit, unit),
                "numberPhases": limit.phases,
            }
            if periods and periods[-1]["startPeriod"] == entry["startPeriod"]:
                periods.pop()  # two changes within one second: the later one holds
            if not periods or (periods[-1]["limit"], periods[-1]["numberPhases"]) != (
                entry["limit"],
                entry["numberPhases"],
            ):
                periods.append(entry)
        return {
            "duration": duration_s,
            "startSchedule": to_ocpp(start),
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": periods,
        }
