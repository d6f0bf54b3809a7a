"""Firmware updates and diagnostics uploads on the simulated charger (OCPP 1.6 §3.7;
UpdateFirmware §5.19, GetDiagnostics §5.9, their status notifications §4.4 and §4.5).

Files really travel when the location is http(s): the firmware image is fetched with a GET,
the diagnostics file is sent with an HTTP PUT of its bytes to `<location>/<fileName>` (PUT,
not a multipart POST: it needs nothing but the URL, and any object store or `python -m
http.server`-like endpoint accepts it). Other schemes (ftp, ftps) are simulated as
successful transfers, since the simulator carries no FTP client.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from datetime import datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from gateway.sim_types import Reply
from schema.timeutil import parse_ocpp_datetime, to_ocpp, utcnow

if TYPE_CHECKING:
    from gateway.simulator import SimCharger

HTTP_SCHEMES = frozenset({"http", "https"})
FIRMWARE_STEP_S = 30.0  # simulated seconds each of download check, install and verify take
IDLE_POLL_S = 10.0  # simulated seconds between checks that no session runs before installing
DEFAULT_TRANSFER_ATTEMPTS = 3  # when the request leaves `retries` to the charger
MAX_TRANSFER_ATTEMPTS = 10  # whatever the request says: a charger must not hammer a server
DEFAULT_RETRY_INTERVAL_S = 60.0  # simulated seconds, when the request gives no retryInterval
TRANSFER_TIMEOUT_S = 30.0  # real seconds per HTTP request
MAX_FIRMWARE_BYTES = 64 * 1024 * 1024  # a controller's download partition
DIAGNOSTICS_LOG_LINES = 500  # events kept for the diagnostics file; older ones fall off
MAX_FILE_NAME_LENGTH = 255  # GetDiagnostics.conf fileName
MAX_FIRMWARE_VERSION_LENGTH = 50  # BootNotification.req firmwareVersion
# Stands in for an image fetched over a scheme the simulator does not speak.
SIMULATED_IMAGE = b"simulated firmware image\n"
# The steps SimConfig.firmware_failure can make every update fail at.
FIRMWARE_FAILURES = frozenset({None, "DownloadFailed", "InstallationFailed"})

_VERSION = re.compile(r"\d+(?:\.\d+)+")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def firmware_version_from(location: str, current: str, installs: int) -> str:
    """The version an image announces by its name ("…/chargenet-2.1.0.bin" → "2.1.0"), else
    its name without extension, else the old version with an install counter."""
    name = PurePosixPath(urlsplit(location).path).name
    match = _VERSION.search(name)
    if match:
        return match.group(0)[:MAX_FIRMWARE_VERSION_LENGTH]
    stem = name.split(".", 1)[0]
    return (stem or f"{current}+{installs}")[:MAX_FIRMWARE_VERSION_LENGTH]


def _attempts(p: dict[str, Any]) -> tuple[int, float]:
    """How often to try a transfer and how long to wait in between (simulated seconds)."""
    retries = p.get("retries")
    attempts = DEFAULT_TRANSFER_ATTEMPTS if retries is None else max(1, retries)
    return min(attempts, MAX_TRANSFER_ATTEMPTS), float(p.get("retryInterval", DEFAULT_RETRY_INTERVAL_S))


class FileTransfers:
    """One charger's firmware and diagnostics state."""

    def __init__(self, charger: SimCharger) -> None:
        self.cp = charger
        # What a TriggerMessage reports: Idle unless a transfer is under way (§4.4, §4.5).
        self.firmware_status = "Idle"
        self.diagnostics_status = "Idle"
        self.installs = 0
        self.log: deque[tuple[datetime, str]] = deque(maxlen=DIAGNOSTICS_LOG_LINES)
        self._update_task: asyncio.Task[Any] | None = None

    def note(self, event: str) -> None:
        """Remember an event for the diagnostics file (actions only, never idTags)."""
        self.log.append((utcnow(), event))

    async def _pause(self, simulated_s: float) -> None:
        await asyncio.sleep(simulated_s / self.cp.cfg.speed)

    # -- firmware ---------------------------------------------------------------------------

    def update_firmware(self, p: dict[str, Any]) -> Reply:
        """UpdateFirmware.conf is empty; the update runs from retrieveDate on."""
        return Reply({}, [lambda: self._update(p)])

    async def _firmware(self, status: str) -> None:
        self.firmware_status = status
        await self.cp.notify("FirmwareStatusNotification", {"status": status})

    async def _update(self, p: dict[str, Any]) -> None:
        # A new request replaces one still waiting or downloading.
        previous, self._update_task = self._update_task, asyncio.current_task()
        if previous is not None and not previous.done():
            previous.cancel()
        delay = (parse_ocpp_datetime(p["retrieveDate"]) - utcnow()).total_seconds()
        await asyncio.sleep(max(0.0, delay))  # retrieveDate is a wall-clock time
        await self._firmware("Downloading")
        failure = self.cp.cfg.firmware_failure
        image = None if failure == "DownloadFailed" else await self._download(p)
        if image is None:
            await self._firmware("DownloadFailed")
            self.firmware_status = "Idle"
            return
        await self._firmware("Downloaded")
        await self._pause(FIRMWARE_STEP_S)
        while any(c.transaction_id is not None for c in self.cp.connectors.values()):
            await self._pause(IDLE_POLL_S)  # installing means a restart: let sessions finish
        await self._firmware("Installing")
        await self._pause(FIRMWARE_STEP_S)
        if not image or failure == "InstallationFailed":
            await self._firmware("InstallationFailed")  # an empty file is no image
            self.firmware_status = "Idle"
            return
        self.installs += 1
        self.cp.firmware_version = firmware_version_from(
            p["location"], self.cp.firmware_version, self.installs
        )
        await self._firmware("Installed")
        self.firmware_status = "Idle"
        await self.cp.reboot()

    async def _download(self, p: dict[str, Any]) -> bytes | None:
        url = p["location"]
        if urlsplit(url).scheme.lower() not in HTTP_SCHEMES:
            return SIMULATED_IMAGE
        attempts, interval = _attempts(p)
        async with httpx.AsyncClient(timeout=TRANSFER_TIMEOUT_S, follow_redirects=True) as client:
            for attempt in range(attempts):
                if attempt:
                    await self._pause(interval)
                image = await self._get(client, url)
                if image is not None:
                    return image
        return None

    @staticmethod
    async def _get(client: httpx.AsyncClient, url: str) -> bytes | None:
        try:
            async with client.stream("GET", url) as response:
                if not response.is_success:
                    return None
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_FIRMWARE_BYTES:
                        return None
                return bytes(body)
        except httpx.HTTPError:
            return None

    # -- diagnostics ------------------------------------------------------------------------

    def get_diagnostics(self, p: dict[str, Any]) -> Reply:
        """GetDiagnostics.conf names the file, or nothing when the requested window holds no
        events (its fileName is "not present when no diagnostic information is available")."""
        start = parse_ocpp_datetime(p["startTime"]) if p.get("startTime") else None
        stop = parse_ocpp_datetime(p["stopTime"]) if p.get("stopTime") else None
        events = [
            f"{to_ocpp(at)} {event}"
            for at, event in self.log
            if (start is None or at >= start) and (stop is None or at <= stop)
        ]
        if not events:
            return Reply({})
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        name = f"{_UNSAFE.sub('_', self.cp.cfg.charge_point_id)}-diagnostics-{stamp}.log"
        name = name[-MAX_FILE_NAME_LENGTH:]
        body = "\n".join([*self._header(), *events, ""]).encode()
        return Reply({"fileName": name}, [lambda: self._send_diagnostics(p, name, body)])

    def _header(self) -> list[str]:
        cfg = self.cp.cfg
        lines = [
            f"charger {cfg.charge_point_id} vendor {cfg.vendor} model {cfg.model}",
            f"firmware {self.cp.firmware_version} ocpp 1.6",
        ]
        lines += [f"connector {c.connector_id} {c.status}" for c in self.cp.connectors.values()]
        return lines

    async def _diagnostics(self, status: str) -> None:
        self.diagnostics_status = status
        await self.cp.notify("DiagnosticsStatusNotification", {"status": status})

    async def _send_diagnostics(self, p: dict[str, Any], name: str, body: bytes) -> None:
        await self._diagnostics("Uploading")
        uploaded = await self._upload(p, name, body)
        await self._diagnostics("Uploaded" if uploaded else "UploadFailed")
        self.diagnostics_status = "Idle"

    async def _upload(self, p: dict[str, Any], name: str, body: bytes) -> bool:
        location = p["location"]
        if urlsplit(location).scheme.lower() not in HTTP_SCHEMES:
            return True
        target = f"{location.rstrip('/')}/{name}"
        attempts, interval = _attempts(p)
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        async with httpx.AsyncClient(timeout=TRANSFER_TIMEOUT_S) as client:
            for attempt in range(attempts):
                if attempt:
                    await self._pause(interval)
                try:
                    response = await client.put(target, content=body, headers=headers)
                except httpx.HTTPError:
                    continue
                if response.is_success:
                    return True
        return False
