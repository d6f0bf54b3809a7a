"""The simulated charger's configuration store: the OCPP 1.6 standard keys (§9), the security
whitepaper's AuthorizationKey, and vendor keys that only take effect after a reboot.

Keys are CiString50 in the spec, so lookups ignore case. A key belongs to a feature profile and
is only present when the charger supports that profile, as on a real charger. Values are
strings on the wire; each key knows how to check a new one (ChangeConfiguration answers
Rejected for a value it cannot use, never stores it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.sim_types import CORE, LOCAL_AUTH_LIST_MANAGEMENT, RESERVATION, SMART_CHARGING, CallError

if TYPE_CHECKING:
    from gateway.simulator import SimConfig

# Limits the simulated hardware reports through read-only keys. Real chargers have similar ones.
LOCAL_AUTH_LIST_MAX_LENGTH = 1_000  # a depot's fleet cards; flash on small controllers holds a few thousand
SEND_LOCAL_LIST_MAX_LENGTH = 100  # entries per SendLocalList: keeps one frame well under 64 KiB
CHARGE_PROFILE_MAX_STACK_LEVEL = 8  # stack levels 0..8, as most AC chargers report
CHARGING_SCHEDULE_MAX_PERIODS = 48  # half-hourly periods for a day
MAX_CHARGING_PROFILES_INSTALLED = 16  # across all connectors and purposes
GET_CONFIGURATION_MAX_KEYS = 50  # keys per GetConfiguration.req; more is answered with a CALLERROR
MEASURAND_LIST_MAX_LENGTH = 8  # measurands per *SampledData / *AlignedData list
# Security whitepaper: the Basic-auth password is at least 16 bytes; OCPP-J 1.6 §7 carries it as
# up to 40 characters (20 bytes hex-encoded).
AUTHORIZATION_KEY_MIN_LENGTH = 16
AUTHORIZATION_KEY_MAX_LENGTH = 40
# GetConfigurationResponse: a value is at most 500 characters.
MAX_VALUE_LENGTH = 500

MEASURANDS = frozenset(
    {
        "Current.Export",
        "Current.Import",
        "Current.Offered",
        "Energy.Active.Export.Register",
        "Energy.Active.Import.Register",
        "Energy.Reactive.Export.Register",
        "Energy.Reactive.Import.Register",
        "Energy.Active.Export.Interval",
        "Energy.Active.Import.Interval",
        "Energy.Reactive.Export.Interval",
        "Energy.Reactive.Import.Interval",
        "Frequency",
        "Power.Active.Export",
        "Power.Active.Import",
        "Power.Factor",
        "Power.Offered",
        "Power.Reactive.Export",
        "Power.Reactive.Import",
        "RPM",
        "SoC",
        "Temperature",
        "Voltage",
    }
)
# OCPP 1.6 §9.1.7 ConnectorPhaseRotation: "<connector>.<rotation>" items.
_PHASE_ROTATION = re.compile(r"^\d+\.(NotApplicable|Unknown|RST|RTS|SRT|STR|TRS|TSR)$")
# ChargingScheduleAllowedChargingRateUnit names the units as words, the schedules as letters.
RATE_UNIT_NAMES = {"A": "Current", "W": "Power"}

Check = Callable[[str], bool]


def is_int(minimum: int = 0) -> Check:
    def check(value: str) -> bool:
        try:
            return int(value.strip()) >= minimum
        except ValueError:
            return False

    return check


def is_bool(value: str) -> bool:
    return value.strip().lower() in ("true", "false")


def is_measurand_list(value: str) -> bool:
    items = [v.strip() for v in value.split(",") if v.strip()]
    return len(items) <= MEASURAND_LIST_MAX_LENGTH and all(v in MEASURANDS for v in items)


def is_phase_rotation(value: str) -> bool:
    return all(_PHASE_ROTATION.match(v.strip()) for v in value.split(","))


def is_password(value: str) -> bool:
    return AUTHORIZATION_KEY_MIN_LENGTH <= len(value) <= AUTHORIZATION_KEY_MAX_LENGTH


def seconds(value: float) -> str:
    """A duration as the integer string OCPP expects (fractions only in fast-forward tests)."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass
class Key:
    name: str
    value: str
    profile: str = CORE
    readonly: bool = False
    # Security whitepaper: a secret key is accepted by ChangeConfiguration, never reported.
    write_only: bool = False
    # A vendor key whose new value the firmware only reads at start-up.
    reboot_required: bool = False
    check: Check | None = None


def standard_keys(cfg: SimConfig, *, connectors: int, heartbeat_s: float) -> list[Key]:
    """The keys a charger with these capabilities reports (OCPP 1.6 §9.1–9.4)."""
    return [
        # §9.1 Core
        Key("AllowOfflineTxForUnknownId", "false", check=is_bool),
        Key("AuthorizationCacheEnabled", "true", check=is_bool),
        Key("AuthorizeRemoteTxRequests", "false", check=is_bool),
        Key("ClockAlignedDataInterval", "0", check=is_int()),
        Key("ConnectionTimeOut", "60", check=is_int(1)),
        Key(
            "ConnectorPhaseRotation",
            ",".join(f"{i}.RST" for i in range(connectors + 1)),
            check=is_phase_rotation,
        ),
        Key("GetConfigurationMaxKeys", str(GET_CONFIGURATION_MAX_KEYS), readonly=True),
        Key("HeartbeatInterval", seconds(heartbeat_s), check=is_int(1)),
        Key("LocalAuthorizeOffline", "true", check=is_bool),
        Key("LocalPreAuthorize", "false", check=is_bool),
        Key("MeterValuesAlignedData", "Energy.Active.Import.Register", check=is_measurand_list),
        Key("MeterValuesAlignedDataMaxLength", str(MEASURAND_LIST_MAX_LENGTH), readonly=True),
        Key(
            "MeterValuesSampledData",
            "Energy.Active.Import.Register,Power.Active.Import,SoC",
            check=is_measurand_list,
        ),
        Key("MeterValuesSampledDataMaxLength", str(MEASURAND_LIST_MAX_LENGTH), readonly=True),
        # 0 would mean "no sampled data"; the simulated session steps its energy on this
        # interval, so it has to be at least one second.
        Key("MeterValueSampleInterval", seconds(cfg.meter_interval_s), check=is_int(1)),
        Key("NumberOfConnectors", str(connectors), readonly=True),
        Key("ResetRetries", "3", check=is_int()),
        Key("StopTransactionOnEVSideDisconnect", "true", check=is_bool),
        Key("StopTransactionOnInvalidId", "true", check=is_bool),
        Key("StopTxnAlignedData", "", check=is_measurand_list),
        Key("StopTxnAlignedDataMaxLength", str(MEASURAND_LIST_MAX_LENGTH), readonly=True),
        Key("StopTxnSampledData", "Energy.Active.Import.Register", check=is_measurand_list),
        Key("StopTxnSampledDataMaxLength", str(MEASURAND_LIST_MAX_LENGTH), readonly=True),
        Key("SupportedFeatureProfiles", ",".join(cfg.feature_profiles), readonly=True),
        Key("TransactionMessageAttempts", "3", check=is_int()),
        Key("TransactionMessageRetryInterval", "60", check=is_int()),
        Key("UnlockConnectorOnEVSideDisconnect", "true", check=is_bool),
        # Security whitepaper
        Key("AuthorizationKey", "", write_only=True, check=is_password),
        # §9.2 Local Auth List Management
        Key("LocalAuthListEnabled", "true", LOCAL_AUTH_LIST_MANAGEMENT, check=is_bool),
        Key("LocalAuthListMaxLength", str(LOCAL_AUTH_LIST_MAX_LENGTH), LOCAL_AUTH_LIST_MANAGEMENT, True),
        Key("SendLocalListMaxLength", str(SEND_LOCAL_LIST_MAX_LENGTH), LOCAL_AUTH_LIST_MANAGEMENT, True),
        # §9.3 Reservation
        Key("ReserveConnectorZeroSupported", str(cfg.reserve_connector_zero).lower(), RESERVATION, True),
        # §9.4 Smart Charging
        Key("ChargeProfileMaxStackLevel", str(CHARGE_PROFILE_MAX_STACK_LEVEL), SMART_CHARGING, True),
        Key(
            "ChargingScheduleAllowedChargingRateUnit",
            ",".join(RATE_UNIT_NAMES[u] for u in cfg.charging_rate_units),
            SMART_CHARGING,
            True,
        ),
        Key("ChargingScheduleMaxPeriods", str(CHARGING_SCHEDULE_MAX_PERIODS), SMART_CHARGING, True),
        Key("ConnectorSwitch3to1PhaseSupported", "false", SMART_CHARGING, True),
        Key("MaxChargingProfilesInstalled", str(MAX_CHARGING_PROFILES_INSTALLED), SMART_CHARGING, True),
        # Vendor keys: free text, read by the firmware at start-up only.
        *(Key(name, value, reboot_required=True) for name, value in cfg.vendor_keys.items()),
    ]


class ConfigStore:
    """GetConfiguration and ChangeConfiguration over one charger's keys."""

    def __init__(self, keys: Iterable[Key], *, profiles: Iterable[str]) -> None:
        supported = set(profiles)
        self._keys = {k.name.lower(): k for k in keys if k.profile in supported}
        # Vendor keys changed since the last boot: name -> new value.
        self._pending: dict[str, str] = {}

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._keys

    def value(self, name: str) -> str:
        return self._keys[name.lower()].value

    def flag(self, name: str) -> bool:
        return name.lower() in self._keys and self.value(name).strip().lower() == "true"

    def number(self, name: str) -> int:
        return int(self.value(name).strip())

    def set_value(self, name: str, value: str) -> None:
        """The charger's own update of a key (e.g. HeartbeatInterval from BootNotification.conf)."""
        key = self._keys.get(name.lower())
        if key is not None:
            key.value = value

    def get_configuration(self, requested: list[str] | None) -> dict[str, Any]:
        """GetConfiguration.conf: all readable keys, or the requested ones plus `unknownKey`.

        A write-only key is never reported; asked for by name it is listed as unknown, the
        answer a charger gives for any key whose value it cannot hand out.
        """
        if requested and len(requested) > GET_CONFIGURATION_MAX_KEYS:
            raise CallError(
                "OccurenceConstraintViolation", f"at most {GET_CONFIGURATION_MAX_KEYS} keys per request"
            )
        if not requested:
            found = [k for k in self._keys.values() if not k.write_only]
            return {"configurationKey": [self._entry(k) for k in found]}
        entries, unknown = [], []
        for name in dict.fromkeys(requested):
            key = self._keys.get(name.lower())
            if key is None or key.write_only:
                unknown.append(name)
            else:
                entries.append(self._entry(key))
        result: dict[str, Any] = {"configurationKey": entries}
        if unknown:
            result["unknownKey"] = unknown
        return result

    @staticmethod
    def _entry(key: Key) -> dict[str, Any]:
        return {"key": key.name, "readonly": key.readonly, "value": key.value[:MAX_VALUE_LENGTH]}

    def change(self, name: str, value: str) -> str:
        """ChangeConfiguration: Accepted, Rejected (read-only or unusable value), RebootRequired
        (stored, applied at the next boot) or NotSupported (unknown key)."""
        key = self._keys.get(name.lower())
        if key is None:
            return "NotSupported"
        if key.readonly or (key.check is not None and not key.check(value)):
            return "Rejected"
        if key.reboot_required:
            self._pending[key.name.lower()] = value
            return "RebootRequired"
        key.value = value
        return "Accepted"

    def apply_pending(self) -> None:
        """At boot: the vendor keys changed since the last one take their new values."""
        for name, value in self._pending.items():
            self._keys[name].value = value
        self._pending.clear()
