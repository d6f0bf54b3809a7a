"""The station health score: an early warning from what a station did over a trailing window,
before anything is broken enough for detection to open a fault or offline incident.

Pure functions only (the inputs are gathered by `health_repository`, the job is
`health_job`). Five inputs each give a sub-score from 100 (nothing wrong) falling linearly to
0 at a level that means "clearly broken"; the score is their weighted mean, rounded half up:

| input            | measured as                                   | sub-score 0 at (default) |
| ---------------- | --------------------------------------------- | ------------------------ |
| faults           | fault status changes per day                  | 2 a day                  |
| failed sessions  | failed / attempts (padded to a minimum)       | half of them             |
| reboots          | distinct BootNotifications per day            | 1 a day                  |
| heartbeat gaps   | offline episodes per day                      | 2 a day                  |
| low power        | underpowered / low-SoC sessions (padded)      | half of them             |

Shares are divided by at least a minimum number of attempts, as if the missing ones had gone
well: one failed session out of one is not yet a pattern, and this keeps the score monotone
(one more failure never raises it), which plain exclusion of thin evidence would not.

Arithmetic is exact (fractions), so hand-computed cases hold to the last digit and rounding
never flips on a float's last bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from fractions import Fraction
from typing import Any

from api.service.failure_rules import MIN_ENERGY_WH


class FactorKind(StrEnum):
    FAULTS = "faults"
    FAILED_SESSIONS = "failed_sessions"
    REBOOTS = "reboots"
    HEARTBEAT_GAPS = "heartbeat_gaps"
    LOW_POWER = "low_power"


# Percent of the score; faults and failed sessions are what drivers meet first.
DEFAULT_WEIGHTS: Mapping[FactorKind, int] = {
    FactorKind.FAULTS: 30,
    FactorKind.FAILED_SESSIONS: 30,
    FactorKind.REBOOTS: 15,
    FactorKind.HEARTBEAT_GAPS: 15,
    FactorKind.LOW_POWER: 10,
}


@dataclass(frozen=True, slots=True)
class HealthInputs:
    """What one station did in the window (raw counts, as gathered)."""

    faults: int = 0
    failed_sessions: int = 0
    session_attempts: int = 0  # ended sessions plus start requests that never became one
    reboots: int = 0
    heartbeat_gaps: int = 0
    underpowered_sessions: int = 0
    low_soc_sessions: int = 0  # sessions with power samples while the SoC was low


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """How inputs are gathered and scored, and when a score is an early warning."""

    window_days: int = 7
    threshold: int = 60
    # Recovered only at threshold + hysteresis: a score wobbling around 60 is one incident.
    hysteresis: int = 10
    weights: Mapping[FactorKind, int] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    faults_per_day_at_zero: float = 2.0
    failed_share_at_zero: float = 0.5
    min_session_attempts: int = 4
    reboots_per_day_at_zero: float = 1.0
    gaps_per_day_at_zero: float = 2.0
    underpowered_share_at_zero: float = 0.5
    min_low_soc_sessions: int = 4
    # Gathering: a session "ends failed" below this energy (0.1 kWh) or with an error reason.
    min_session_energy_wh: int = MIN_ENERGY_WH
    # Low power: a session averaging under this share of rated power while the SoC was low
    # (the low-SoC level applies when the session ends: api/service/health_sessions.py).
    low_power_fraction: float = 0.25
    # BootNotifications closer together than this are one reboot (a Pending station retrying).
    reboot_merge_s: float = 600.0

    def __post_init__(self) -> None:
        if self.window_days < 1:
            raise ValueError("the health window is at least one day")
        if not 0 <= self.threshold <= 100 or self.hysteresis < 0:
            raise ValueError("the threshold is 0..100 and the hysteresis not negative")
        if set(self.weights) != set(FactorKind) or min(self.weights.values()) < 0:
            raise ValueError("every health input needs a weight, none negative")
        if sum(self.weights.values()) <= 0:
            raise ValueError("the health weights must not all be zero")
        zero_ats = (
            self.faults_per_day_at_zero,
            self.failed_share_at_zero,
            self.reboots_per_day_at_zero,
            self.gaps_per_day_at_zero,
            self.underpowered_share_at_zero,
        )
        if min(zero_ats) <= 0:
            raise ValueError("each sub-score's zero point must be above 0")


@dataclass(frozen=True, slots=True)
class Factor:
    """One input's part in the score: the raw count, what it was divided by, the resulting
    value (per day, or a share), where its sub-score reaches 0, the sub-score and its weight."""

    kind: FactorKind
    count: int
    out_of: int | None  # attempts or low-SoC sessions; None for per-day rates
    value: float
    zero_at: float
    sub_score: float
    weight: int

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "count": self.count,
            "out_of": self.out_of,
            "value": self.value,
            "zero_at": self.zero_at,
            "sub_score": self.sub_score,
            "weight": self.weight,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Factor:
        return cls(
            kind=FactorKind(d["kind"]),
            count=int(d["count"]),
            out_of=None if d.get("out_of") is None else int(d["out_of"]),
            value=float(d["value"]),
            zero_at=float(d["zero_at"]),
            sub_score=float(d["sub_score"]),
            weight=int(d["weight"]),
        )


@dataclass(frozen=True, slots=True)
class HealthScore:
    score: int
    factors: tuple[Factor, ...]

    def factors_json(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.factors]


def _sub_score(value: Fraction, zero_at: float) -> Fraction:
    return 100 * max(Fraction(0), 1 - value / Fraction(zero_at))


def _factor(
    kind: FactorKind, count: int, out_of: int | None, value: Fraction, zero_at: float, weight: int
) -> tuple[Factor, Fraction]:
    sub = _sub_score(value, zero_at)
    shown = Factor(kind, count, out_of, round(float(value), 4), zero_at, round(float(sub), 1), weight)
    return shown, sub


def score(inputs: HealthInputs, policy: HealthPolicy) -> HealthScore:
    """The station's score 0..100 and each input's part in it."""
    days = Fraction(policy.window_days)
    w = policy.weights
    attempts = max(inputs.session_attempts, inputs.failed_sessions)
    parts = [
        _factor(
            FactorKind.FAULTS,
            inputs.faults,
            None,
            inputs.faults / days,
            policy.faults_per_day_at_zero,
            w[FactorKind.FAULTS],
        ),
        _factor(
            FactorKind.FAILED_SESSIONS,
            inputs.failed_sessions,
            attempts,
            Fraction(inputs.failed_sessions, max(attempts, policy.min_session_attempts, 1)),
            policy.failed_share_at_zero,
            w[FactorKind.FAILED_SESSIONS],
        ),
        _factor(
            FactorKind.REBOOTS,
            inputs.reboots,
            None,
            inputs.reboots / days,
            policy.reboots_per_day_at_zero,
            w[FactorKind.REBOOTS],
        ),
        _factor(
            FactorKind.HEARTBEAT_GAPS,
            inputs.heartbeat_gaps,
            None,
            inputs.heartbeat_gaps / days,
            policy.gaps_per_day_at_zero,
            w[FactorKind.HEARTBEAT_GAPS],
        ),
        _factor(
            FactorKind.LOW_POWER,
            inputs.underpowered_sessions,
            max(inputs.low_soc_sessions, inputs.underpowered_sessions),
            Fraction(
                inputs.underpowered_sessions,
                max(inputs.low_soc_sessions, inputs.underpowered_sessions, policy.min_low_soc_sessions, 1),
            ),
            policy.underpowered_share_at_zero,
            w[FactorKind.LOW_POWER],
        ),
    ]
    total_weight = sum(f.weight for f, _ in parts)
    weighted = sum((f.weight * sub for f, sub in parts), Fraction(0)) / total_weight
    return HealthScore(math.floor(weighted + Fraction(1, 2)), tuple(f for f, _ in parts))


def next_degraded(was_degraded: bool, score: int, policy: HealthPolicy) -> bool:
    """The hysteresis: degraded once below the threshold, healthy again only at or above
    threshold + hysteresis."""
    if was_degraded:
        return score < policy.threshold + policy.hysteresis
    return score < policy.threshold


def distinct_reboots(boots: Iterable[datetime], merge_s: float) -> int:
    """BootNotifications counted as reboots: one closer than `merge_s` to the last counted one
    is the same reboot (a Pending or Rejected station retries its boot every interval)."""
    count = 0
    last: datetime | None = None
    for at in sorted(boots):
        if last is None or (at - last).total_seconds() >= merge_s:
            count += 1
            last = at
    return count
