"""Reading OCPP sampled values (1.6 strings, 2.0.1 numbers): units, measurands and the energy register."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schema.timeutil import parse_ocpp_datetime

ENERGY_REGISTER = "Energy.Active.Import.Register"
POWER_IMPORT = "Power.Active.Import"
SOC = "SoC"

# OCPP 1.6 §7.31: a sampled value without a measurand is the import energy register, in Wh.
# OCPP 2.0.1: values are numbers with an optional unitOfMeasure {unit (default Wh), multiplier}.
DEFAULT_UNIT_201 = "Wh"
_SCALE = {"kWh": 1000.0, "kW": 1000.0, "kvarh": 1000.0, "kvar": 1000.0, "kVA": 1000.0}


class BadSample(ValueError):
    """A sampled value that is not a number where ChargeNet needs one."""


@dataclass(frozen=True, slots=True)
class Sample:
    sampled_at: datetime
    measurand: str
    phase: str | None
    location: str | None
    context: str | None
    unit: str | None
    value: float


@dataclass(frozen=True, slots=True)
class Reading:
    """What a MeterValues message says about a session at its latest timestamp."""

    at: datetime | None
    register_wh: int | None
    power_w: int | None
    soc_percent: int | None


def parse_samples(meter_values: list[dict[str, Any]]) -> list[Sample]:
    samples: list[Sample] = []
    for mv in meter_values:
        at = parse_ocpp_datetime(mv["timestamp"])
        for sv in mv["sampledValue"]:
            if sv.get("format") == "SignedData":
                # Signed (eichrecht) blobs are kept in the raw message log, not as numbers.
                continue
            try:
                value = float(sv["value"])
            except ValueError:
                raise BadSample(f"sampled value {str(sv['value'])[:20]!r} is not a number") from None
            if not math.isfinite(value):
                raise BadSample("sampled value is not finite")
            unit = sv.get("unit")
            measure = sv.get("unitOfMeasure")
            if measure is not None:
                # OCPP 2.0.1 §2.54 UnitOfMeasureType: the value is value × 10^multiplier unit.
                unit = measure.get("unit", DEFAULT_UNIT_201)
                value *= 10.0 ** int(measure.get("multiplier", 0))
            samples.append(
                Sample(
                    sampled_at=at,
                    measurand=sv.get("measurand") or ENERGY_REGISTER,
                    phase=sv.get("phase"),
                    location=sv.get("location"),
                    context=sv.get("context"),
                    unit=unit,
                    value=value,
                )
            )
    return samples


def _in_base_unit(sample: Sample) -> float:
    return sample.value * _SCALE.get(sample.unit or "", 1.0)


def latest_reading(samples: list[Sample]) -> Reading:
    """Take the newest total (phase-less) register, power and SoC among the samples."""
    register: tuple[datetime, float] | None = None
    power: tuple[datetime, float] | None = None
    soc: tuple[datetime, float] | None = None
    latest: datetime | None = None
    for s in samples:
        if latest is None or s.sampled_at > latest:
            latest = s.sampled_at
        if s.phase is not None and s.measurand != SOC:
            continue
        if s.measurand == ENERGY_REGISTER and (register is None or s.sampled_at >= register[0]):
            register = (s.sampled_at, _in_base_unit(s))
        elif s.measurand == POWER_IMPORT and (power is None or s.sampled_at >= power[0]):
            power = (s.sampled_at, _in_base_unit(s))
        elif s.measurand == SOC and (soc is None or s.sampled_at >= soc[0]):
            soc = (s.sampled_at, s.value)
    return Reading(
        at=latest,
        register_wh=round(register[1]) if register else None,
        power_w=round(power[1]) if power else None,
        soc_percent=round(soc[1]) if soc else None,
    )


def first_register(samples: list[Sample]) -> tuple[datetime, int] | None:
    """The earliest total (phase-less) import register among the samples: (when, Wh)."""
    registers = [s for s in samples if s.measurand == ENERGY_REGISTER and s.phase is None]
    if not registers:
        return None
    first = min(registers, key=lambda s: s.sampled_at)
    return first.sampled_at, round(_in_base_unit(first))
