"""Whether a station keeps a local authorization list, and its limits, from what it reported.

OCPP 1.6: the LocalAuthListManagement feature profile (SupportedFeatureProfiles, stored after
boot) and the keys LocalAuthListEnabled, LocalAuthListMaxLength, SendLocalListMaxLength.
OCPP 2.0.1: the device model's LocalAuthListCtrlr (Available, Enabled, ItemsPerMessage),
mirrored into the configuration store under `LocalAuthListCtrlr.<Variable>`.

What the station has not reported counts as "maybe": the sync then asks GetLocalListVersion,
whose answer (or NotSupported) settles it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schema.enums import OcppVersion
from schema.models import ChargingStation

PROFILE = "LocalAuthListManagement"
KEYS_16 = ("LocalAuthListEnabled", "LocalAuthListMaxLength", "SendLocalListMaxLength")
CTRLR = "LocalAuthListCtrlr"
KEYS_201 = (f"{CTRLR}.Available", f"{CTRLR}.Enabled", f"{CTRLR}.ItemsPerMessage")
KEYS = KEYS_16 + KEYS_201
# idToken lengths: 1.6 IdToken is CiString20, 2.0.1 idToken is 36 characters.
MAX_ID_LENGTH_16 = 20
MAX_ID_LENGTH_201 = 36
# Entries per SendLocalList when the station did not say (no SendLocalListMaxLength /
# ItemsPerMessage reported): small enough for any station we know of, a handful of messages
# for a typical fleet.
FALLBACK_PER_MESSAGE = 50


@dataclass(frozen=True, slots=True)
class Limits:
    supported: bool
    reason: str
    per_message: int = FALLBACK_PER_MESSAGE
    max_entries: int | None = None
    max_id_length: int = MAX_ID_LENGTH_16


def _positive(value: str | None) -> int | None:
    try:
        number = int(value or "")
    except ValueError:
        return None
    return number if number > 0 else None


def _false(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "false"


def is_201(station: ChargingStation) -> bool:
    return station.ocpp_version == OcppVersion.V201.value


def limits_of(station: ChargingStation, config: Mapping[str, str | None]) -> Limits:
    if is_201(station):
        return _limits_201(station, config)
    profiles = station.feature_profiles
    if profiles is not None and PROFILE not in {p.strip() for p in profiles.split(",")}:
        return Limits(
            False, "this station does not support local authorization lists (no LocalAuthListManagement)"
        )
    if _false(config.get("LocalAuthListEnabled")):
        return Limits(
            False, "the local authorization list is switched off on the station (LocalAuthListEnabled)"
        )
    return Limits(
        True,
        "",
        per_message=_positive(config.get("SendLocalListMaxLength")) or FALLBACK_PER_MESSAGE,
        max_entries=_positive(config.get("LocalAuthListMaxLength")),
        max_id_length=MAX_ID_LENGTH_16,
    )


def _limits_201(station: ChargingStation, config: Mapping[str, str | None]) -> Limits:
    reported = station.configuration_read_at is not None
    enabled = config.get(f"{CTRLR}.Enabled")
    if _false(config.get(f"{CTRLR}.Available")) or (reported and enabled is None):
        return Limits(
            False, "this station does not support local authorization lists (no LocalAuthListCtrlr)"
        )
    if _false(enabled):
        return Limits(
            False, "the local authorization list is switched off on the station (LocalAuthListCtrlr.Enabled)"
        )
    return Limits(
        True,
        "",
        per_message=_positive(config.get(f"{CTRLR}.ItemsPerMessage")) or FALLBACK_PER_MESSAGE,
        max_id_length=MAX_ID_LENGTH_201,
    )
