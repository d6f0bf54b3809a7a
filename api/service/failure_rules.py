"""What counts as a failed session or a failed start — one definition for detection ("not
charging" streaks), the health score and the NEVI uptime export, so the three never disagree
about the same session.
"""

from __future__ import annotations

# 0.1 kWh: less than a minute at the smallest AC power; a real session delivers more.
MIN_ENERGY_WH = 100

# OCPP 1.6 Reason and 2.0.1 ReasonEnumType values that mean the station (or its supply) ended
# the session; the driver, the car or a limit ending it is no failure. "Other" is left out:
# stations use it for anything, including a driver's stop.
ERROR_STOP_REASONS = frozenset(
    {
        "EmergencyStop",
        "PowerLoss",
        "Reboot",
        "HardReset",
        "SoftReset",
        "ImmediateReset",
        "GroundFault",
        "OvercurrentFault",
        "PowerQuality",
        "Timeout",
    }
)

# Reasons api/control stores on a failed charging request that are the connector's fault: the
# station refused or failed the start, or accepted it and never started. A start that failed
# because the station was offline is the offline incident's business, not the connector's.
START_FAILURE_PREFIXES = ("REJECTED", "TIMED_OUT", "FAILED", "the station did not start")
OFFLINE_START_PREFIX = "STATION_OFFLINE"


def session_failed(energy_wh: int, stop_reason: str | None) -> bool:
    return energy_wh < MIN_ENERGY_WH or (stop_reason or "") in ERROR_STOP_REASONS
