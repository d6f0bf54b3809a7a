"""Where one station's update stands, read from what the station itself reported.

Pure functions over the station row the gateway keeps current (firmware status and when it
arrived, firmware version and last boot) and the campaign station's own row: no I/O, so the
rules are tested on their own and the progress job only reads, decides and writes.

Only reports that arrived after the command was sent count: a station's "Installed" from an
earlier update says nothing about this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schema.campaign_models import CampaignStationState

CS = CampaignStationState

# FirmwareStatusNotification statuses of 1.6 (§7.25) and 2.0.1 (FirmwareStatusEnumType) on the way.
PROGRESS: dict[str, CampaignStationState] = {
    "DownloadScheduled": CS.DOWNLOADING,
    "Downloading": CS.DOWNLOADING,
    "DownloadPaused": CS.DOWNLOADING,
    "Downloaded": CS.DOWNLOADED,
    "SignatureVerified": CS.DOWNLOADED,
    "InstallScheduled": CS.INSTALLING,
    "Installing": CS.INSTALLING,
    "InstallRebooting": CS.INSTALLING,
    "Installed": CS.INSTALLED,
}
# ...and the ones that end it badly.
FAILURE_STATUSES = frozenset(
    {"DownloadFailed", "InstallationFailed", "InstallVerificationFailed", "InvalidSignature"}
)


@dataclass(frozen=True, slots=True)
class Progress:
    state: CampaignStationState
    status: str | None
    status_at: datetime | None
    message: str | None


def _since(at: datetime | None, sent_at: datetime) -> datetime | None:
    return at if at is not None and at >= sent_at else None


def progress(
    row: Any,
    station: Any,
    *,
    target_version: str | None,
    timeout_s: int,
    now: datetime,
) -> Progress:
    """The campaign station's state after what `station` reported since `row.sent_at`.

    `row` has sent_at, state, last_firmware_status(_at), message; `station` has
    firmware_status(_at), firmware_version and last_boot_at.
    """
    sent_at: datetime = row.sent_at
    status_at = _since(station.firmware_status_at, sent_at)
    status = station.firmware_status if status_at is not None else None
    booted_at = _since(station.last_boot_at, sent_at)
    kept = Progress(CS(row.state), row.last_firmware_status, row.last_firmware_status_at, row.message)
    if status is not None:
        kept = Progress(kept.state, status, status_at, kept.message)
    if status in FAILURE_STATUSES:
        return Progress(CS.FAILED, status, status_at, f"the station reported {status}")
    if target_version is not None:
        if booted_at is not None and station.firmware_version == target_version:
            return Progress(CS.INSTALLED, kept.status, kept.status_at, None)
        if (
            status == "Installed"
            and booted_at is not None
            and status_at is not None
            and booted_at > status_at
        ):
            return Progress(
                CS.FAILED,
                status,
                status_at,
                f"booted with firmware {station.firmware_version}, expected {target_version}",
            )
        if status == "Installed":
            return Progress(
                CS.INSTALLING, status, status_at, f"installed; waiting to boot with {target_version}"
            )
    if status in PROGRESS:
        kept = Progress(PROGRESS[status], status, status_at, None)
    if kept.state is not CS.INSTALLED:
        last = max(t for t in (sent_at, status_at, booted_at) if t is not None)
        if now - last > timedelta(seconds=timeout_s):
            minutes = round(timeout_s / 60)
            return Progress(CS.FAILED, kept.status, kept.status_at, f"no progress reported for {minutes} min")
    return kept
