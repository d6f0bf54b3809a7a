"""The charger simulator answers every OCPP 1.6 central-system message of the six feature
profiles as a real charger would, driven through the real gateway over real sockets.

Every answer is checked against the `ocpp` package's 1.6 response schemas. What the charger
sends in return (status, firmware and diagnostics notifications, transactions) is read from
`charger.sent` (every CALL the gateway acknowledged) and `charger.delivered`. Firmware and
diagnostics files travel over a real local HTTP server.

What the charger does cannot depend on the central system's database, so the scenarios run on
SQLite only (`SIMULATOR_ONLY`, which keeps the file fast); TestWhatTheGatewayStores runs on
both backends, for the rows these messages write.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.server import Gateway
from gateway.simulator import SimCharger, SimConfig
from gateway.validation import validate
from schema.errors import CommandFailed
from schema.timeutil import parse_ocpp_datetime, to_ocpp, utcnow
from tests.builders import ACCEPTED_TAGS, make_station
from tests.conftest import ChargerFactory
from tests.dbutil import fetch

TAG, OTHER_TAG = ACCEPTED_TAGS
# 600 simulated seconds per real second: a 60 s meter interval is 0.1 s, a reboot 17 ms.
FAST = {"connectors": [22_000, 22_000], "speed": 600.0, "meter_interval_s": 60.0}
ALL_PROFILES = "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger"
VOLTS_3_PHASE = 230 * 3
# Runs a scenario once, on SQLite (conftest's `db_url` takes "sqlite" or "postgresql").
SIMULATOR_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


async def central(gateway: Gateway, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Send a CALL from the central system to CP-1; the answer must match its 1.6 schema."""
    result = await gateway.connections["CP-1"].session.call(action, payload, timeout=5)
    validate("v16", f"{action}Response", result)
    return result


async def status_of(gateway: Gateway, action: str, payload: dict[str, Any]) -> str:
    return str((await central(gateway, action, payload))["status"])


async def refused(gateway: Gateway, action: str, payload: dict[str, Any]) -> str:
    """The CALLERROR code the charger answers with."""
    with pytest.raises(CommandFailed) as err:
        await gateway.connections["CP-1"].session.call(action, payload, timeout=5)
    return str(err.value.station_code)


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll a condition on the charger's state (it has no event for each of them)."""
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def sent(charger: SimCharger, action: str) -> list[dict[str, Any]]:
    return [p for a, p in charger.sent if a == action]


def statuses(charger: SimCharger, connector_id: int) -> list[str]:
    return [p["status"] for p in sent(charger, "StatusNotification") if p["connectorId"] == connector_id]


def started(charger: SimCharger) -> list[dict[str, Any]]:
    return [p for a, p in charger.delivered if a == "StartTransaction"]


def stop_reasons(charger: SimCharger) -> list[str]:
    return [p["reason"] for a, p in charger.delivered if a == "StopTransaction"]


def in_s(seconds: float) -> str:
    return to_ocpp(utcnow() + timedelta(seconds=seconds))


def make_profile(
    *,
    profile_id: int = 1,
    purpose: str = "TxDefaultProfile",
    stack: int = 0,
    limit: float = 16.0,
    unit: str = "A",
    periods: list[dict[str, Any]] | None = None,
    schedule: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A csChargingProfiles: a TxProfile relative to its transaction, others absolute from a
    minute ago unless `schedule` says otherwise."""
    relative = purpose == "TxProfile"
    return {
        "chargingProfileId": profile_id,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Relative" if relative else "Absolute",
        "chargingSchedule": {
            **({} if relative else {"startSchedule": in_s(-60)}),
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": periods or [{"startPeriod": 0, "limit": limit}],
            **(schedule or {}),
        },
        **extra,
    }


def set_profile(connector_id: int, cs: dict[str, Any]) -> dict[str, Any]:
    return {"connectorId": connector_id, "csChargingProfiles": cs}


def make_reservation(
    *, connector_id: int = 1, reservation_id: int = 7, tag: str = TAG, expires_s: float = 600, **extra: Any
) -> dict[str, Any]:
    return {
        "connectorId": connector_id,
        "expiryDate": in_s(expires_s),
        "idTag": tag,
        "reservationId": reservation_id,
        **extra,
    }


async def start_session(gateway: Gateway, charger: SimCharger, connector_id: int = 1, tag: str = TAG) -> int:
    start = {"idTag": tag, "connectorId": connector_id}
    assert await status_of(gateway, "RemoteStartTransaction", start) == "Accepted"
    await until(lambda: charger.connectors[connector_id].transaction_id is not None)
    return charger.connectors[connector_id].transaction_id or 0


class FileServer:
    """A real HTTP server on a free port: GET serves `files` (404 otherwise), PUT stores the
    body in `uploads` (paths under /full/ answer 507 Insufficient Storage)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.uploads: dict[str, bytes] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = owner.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path.startswith("/full/"):
                    self.send_error(507)
                    return
                owner.uploads[self.path] = body
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer()
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


# Makes CP-1 with SimConfig fields on top of FAST.
ChargerMaker = Callable[..., Awaitable[SimCharger]]


@pytest.fixture
def cp_with(station: int, connect_charger: ChargerFactory) -> ChargerMaker:
    """CP-1 with two 22 kW connectors and these SimConfig fields, connected and booted."""
    return lambda **cfg: connect_charger("CP-1", **{**FAST, **cfg})


@pytest.fixture
async def cp(cp_with: ChargerMaker) -> SimCharger:
    """CP-1 as SimConfig makes it by default (no reconnecting)."""
    return await cp_with()


@pytest.fixture
async def running(gateway: Gateway) -> AsyncIterator[ChargerMaker]:
    """Chargers kept connected by `run()`, as in the demo: they come back after a reboot.
    (The station must exist: tests ask for `station` or make their own.)"""
    started: list[tuple[SimCharger, asyncio.Task[None]]] = []

    async def start(**cfg: Any) -> SimCharger:
        url = f"ws://127.0.0.1:{gateway.bound_port}/ocpp"
        charger = SimCharger(SimConfig(charge_point_id="CP-1", url=url, **{**FAST, **cfg}))
        started.append((charger, asyncio.create_task(charger.run())))
        await asyncio.wait_for(charger.online.wait(), 10)
        return charger

    yield start
    for charger, task in started:
        await charger.close()
        task.cancel()


async def rebooted(gateway: Gateway, charger: SimCharger, boots_before: int) -> None:
    """Wait until the charger has booted again (on a new connection, which the boot used)."""
    await until(lambda: len(sent(charger, "BootNotification")) > boots_before and charger.online.is_set())
    assert "CP-1" in gateway.connections


@SIMULATOR_ONLY
class TestFeatureProfiles:
    async def test_messages_of_a_profile_the_charger_lacks_are_not_supported(
        self, gateway: Gateway, cp_with: ChargerMaker
    ) -> None:
        # given a charger that supports the Core profile only
        await cp_with(feature_profiles=["Core"])
        # when the central system uses the other profiles
        codes = [
            await refused(gateway, "ReserveNow", make_reservation()),
            await refused(gateway, "TriggerMessage", {"requestedMessage": "Heartbeat"}),
            await refused(gateway, "GetDiagnostics", {"location": "ftp://example.com/"}),
            await refused(gateway, "ClearChargingProfile", {}),
        ]
        version = await central(gateway, "GetLocalListVersion", {})
        keys = {"key": ["SupportedFeatureProfiles", "LocalAuthListEnabled"]}
        config = await central(gateway, "GetConfiguration", keys)
        # then they get NotSupported, except the list version which §5.10 answers with -1
        assert codes == ["NotSupported"] * 4
        assert version == {"listVersion": -1}
        assert config == {
            "configurationKey": [{"key": "SupportedFeatureProfiles", "readonly": True, "value": "Core"}],
            "unknownKey": ["LocalAuthListEnabled"],  # its profile's keys are absent too
        }


@SIMULATOR_ONLY
class TestGetConfiguration:
    async def test_all_keys_without_the_write_only_authorization_key(
        self, gateway: Gateway, cp: SimCharger
    ) -> None:
        # when the central system asks for every key
        result = await central(gateway, "GetConfiguration", {})
        # then the standard keys come with their read-only flags, the secret never
        keys = {k["key"]: (k["readonly"], k.get("value")) for k in result["configurationKey"]}
        assert keys["SupportedFeatureProfiles"] == (True, ALL_PROFILES)
        assert keys["NumberOfConnectors"] == (True, "2")
        assert keys["ChargingScheduleAllowedChargingRateUnit"] == (True, "Current,Power")
        readonly = {
            "LocalAuthListMaxLength",
            "SendLocalListMaxLength",
            "ReserveConnectorZeroSupported",
            "ChargeProfileMaxStackLevel",
            "ChargingScheduleMaxPeriods",
            "MaxChargingProfilesInstalled",
        }
        writable = {
            "HeartbeatInterval",
            "MeterValueSampleInterval",
            "ConnectionTimeOut",
            "LocalAuthListEnabled",
            "AuthorizeRemoteTxRequests",
        }
        assert {k: keys[k][0] for k in readonly | writable} == {k: k in readonly for k in readonly | writable}
        assert "AuthorizationKey" not in keys and "unknownKey" not in result

    async def test_named_keys_ignore_case_and_unknown_ones_are_listed(
        self, gateway: Gateway, cp: SimCharger
    ) -> None:
        # when the central system asks for two keys (one in other case), a made-up one and the secret
        wanted = ["heartbeatinterval", "NumberOfConnectors", "Frobnicate", "AuthorizationKey"]
        result = await central(gateway, "GetConfiguration", {"key": wanted})
        # then it gets the known two and the others as unknown
        assert [k["key"] for k in result["configurationKey"]] == ["HeartbeatInterval", "NumberOfConnectors"]
        assert result["unknownKey"] == ["Frobnicate", "AuthorizationKey"]


@SIMULATOR_ONLY
class TestChangeConfiguration:
    async def test_answers(self, gateway: Gateway, cp: SimCharger) -> None:
        # when the central system changes keys, then the charger answers by its rules
        cases = [
            ("NumberOfConnectors", "3", "Rejected"),  # read-only
            ("HeartbeatInterval", "soon", "Rejected"),  # not an integer
            ("LocalAuthListEnabled", "maybe", "Rejected"),  # not a boolean
            ("MeterValuesSampledData", "SoC,Smell", "Rejected"),  # no such measurand
            ("AuthorizationKey", "short", "Rejected"),  # the whitepaper wants 16 bytes at least
            ("Frobnicate", "1", "NotSupported"),
            ("connectiontimeout", "90", "Accepted"),  # keys ignore case
            ("ChargeNetSim.DisplayLanguage", "de", "RebootRequired"),  # a vendor key read at boot
        ]
        for key, value, status in cases:
            assert await status_of(gateway, "ChangeConfiguration", {"key": key, "value": value}) == status, (
                key
            )
        timeout = await central(gateway, "GetConfiguration", {"key": ["ConnectionTimeOut"]})
        assert timeout["configurationKey"][0]["value"] == "90"

    async def test_heartbeat_interval_takes_effect_at_once(
        self, gateway: Gateway, station: int, running: ChargerMaker
    ) -> None:
        # given a charger heartbeating every 300 simulated seconds (0.5 s at this speed)
        charger = await running(heartbeat_interval_s=300.0)
        beats = len(sent(charger, "Heartbeat"))
        # when the interval becomes 6 s (10 ms)
        change = {"key": "HeartbeatInterval", "value": "6"}
        assert await status_of(gateway, "ChangeConfiguration", change) == "Accepted"
        # then heartbeats follow at the new pace and the key reports it
        await until(lambda: len(sent(charger, "Heartbeat")) >= beats + 5, timeout=2)
        config = await central(gateway, "GetConfiguration", {"key": ["HeartbeatInterval"]})
        assert config["configurationKey"][0]["value"] == "6" and charger.heartbeat_interval == 6

    async def test_new_authorization_key_and_vendor_keys_apply_from_the_next_boot(
        self,
        gateway: Gateway,
        engine: AsyncEngine,
        running: ChargerMaker,
        hashed_password: Callable[[str], str],
    ) -> None:
        # given a charger authenticating with Basic auth
        old, new = "old-password-0123456789", "new-password-9876543210"
        await make_station(engine, charge_point_id="CP-1", password_hash=hashed_password(old))
        charger = await running(password=old)
        # when the central system sets a new AuthorizationKey and a vendor key, stores the
        # new password's hash, and resets the charger
        key = {"key": "AuthorizationKey", "value": new}
        language = {"key": "ChargeNetSim.DisplayLanguage", "value": "de"}
        assert await status_of(gateway, "ChangeConfiguration", key) == "Accepted"
        assert await status_of(gateway, "ChangeConfiguration", language) == "RebootRequired"
        read_language = {"key": ["ChargeNetSim.DisplayLanguage"]}
        assert (await central(gateway, "GetConfiguration", read_language))["configurationKey"][0][
            "value"
        ] == "en"
        async with engine.begin() as conn:
            update = "UPDATE charging_station SET password_hash = :h WHERE charge_point_id = 'CP-1'"
            await conn.execute(text(update), {"h": hashed_password(new)})
        boots = len(sent(charger, "BootNotification"))
        assert await status_of(gateway, "Reset", {"type": "Soft"}) == "Accepted"
        # then it reconnects with the new password, and the vendor key has its new value
        await rebooted(gateway, charger, boots)
        assert charger.cfg.password == new
        assert (await central(gateway, "GetConfiguration", read_language))["configurationKey"][0][
            "value"
        ] == "de"


@SIMULATOR_ONLY
class TestChangeAvailability:
    async def test_a_connector_goes_unavailable_and_back(self, gateway: Gateway, cp: SimCharger) -> None:
        # when connector 2 is set Inoperative
        inoperative = {"connectorId": 2, "type": "Inoperative"}
        assert await status_of(gateway, "ChangeAvailability", inoperative) == "Accepted"
        # then it reports Unavailable and refuses a remote start
        await until(lambda: statuses(cp, 2)[-1:] == ["Unavailable"])
        start = {"idTag": TAG, "connectorId": 2}
        assert await status_of(gateway, "RemoteStartTransaction", start) == "Rejected"
        # and when it is set Operative again it is Available
        operative = {"connectorId": 2, "type": "Operative"}
        assert await status_of(gateway, "ChangeAvailability", operative) == "Accepted"
        await until(lambda: statuses(cp, 2)[-1:] == ["Available"])

    async def test_a_running_session_schedules_the_change(self, gateway: Gateway, cp: SimCharger) -> None:
        # given a session on connector 1
        tx = await start_session(gateway, cp)
        # when connector 1 is set Inoperative
        inoperative = {"connectorId": 1, "type": "Inoperative"}
        assert await status_of(gateway, "ChangeAvailability", inoperative) == "Scheduled"
        # then it keeps charging, and goes Unavailable once the session has ended
        assert cp.connectors[1].status == "Charging"
        await central(gateway, "RemoteStopTransaction", {"transactionId": tx})
        await until(lambda: statuses(cp, 1)[-2:] == ["Finishing", "Unavailable"])

    async def test_the_whole_charger_and_unknown_connectors(self, gateway: Gateway, cp: SimCharger) -> None:
        # when connector 0 (the charger) is set Inoperative
        charger = {"connectorId": 0, "type": "Inoperative"}
        assert await status_of(gateway, "ChangeAvailability", charger) == "Accepted"
        # then the charger and both connectors report Unavailable
        await until(lambda: all(statuses(cp, c)[-1:] == ["Unavailable"] for c in (0, 1, 2)))
        # and a connector the charger does not have is Rejected
        unknown = {"connectorId": 7, "type": "Operative"}
        assert await status_of(gateway, "ChangeAvailability", unknown) == "Rejected"


@SIMULATOR_ONLY
class TestUnlockConnector:
    async def test_unlocking_stops_the_session_on_the_connector(
        self, gateway: Gateway, cp: SimCharger
    ) -> None:
        # given a session on connector 1
        await start_session(gateway, cp)
        # when the central system unlocks connector 1
        assert await status_of(gateway, "UnlockConnector", {"connectorId": 1}) == "Unlocked"
        # then the session ends with reason UnlockCommand
        await until(lambda: stop_reasons(cp) == ["UnlockCommand"])

    async def test_tethered_cables_jammed_locks_and_unknown_connectors(
        self, gateway: Gateway, cp_with: ChargerMaker
    ) -> None:
        # given a charger whose connector 1 has a fixed cable and connector 2 a jammed lock
        await cp_with(fixed_cable_connectors=[1], jammed_lock_connectors=[2])
        # when each is unlocked, then the charger says what it could do
        for cid, status in ((1, "NotSupported"), (2, "UnlockFailed"), (5, "NotSupported")):
            assert await status_of(gateway, "UnlockConnector", {"connectorId": cid}) == status


@SIMULATOR_ONLY
class TestClearCacheAndDataTransfer:
    async def test_clear_cache_forgets_cached_tags(self, gateway: Gateway, cp: SimCharger) -> None:
        # given a tag in the authorization cache
        cp.local_auth.remember(TAG, {"status": "Accepted"})
        # when the central system clears the cache
        assert await status_of(gateway, "ClearCache", {}) == "Accepted"
        # then the charger no longer knows the tag
        assert cp.local_auth.lookup(TAG) is None

    async def test_known_vendors_echo_and_unknown_ones_are_refused(
        self, gateway: Gateway, cp_with: ChargerMaker
    ) -> None:
        # given a charger that also understands the "Acme" extensions
        await cp_with(data_transfer_vendor_ids=["Acme"])
        # when the central system sends vendor data
        own = {"vendorId": "ChargeNetSim", "messageId": "Ping", "data": "42"}
        results = [
            await central(gateway, "DataTransfer", own),
            await central(gateway, "DataTransfer", {"vendorId": "Acme"}),
            await central(gateway, "DataTransfer", {"vendorId": "Other", "data": "x"}),
        ]
        # then known vendors are Accepted (data echoed), others UnknownVendorId
        assert results == [
            {"status": "Accepted", "data": "42"},
            {"status": "Accepted"},
            {"status": "UnknownVendorId"},
        ]


@SIMULATOR_ONLY
class TestReset:
    @pytest.mark.parametrize(("kind", "reason"), [("Soft", "SoftReset"), ("Hard", "HardReset")])
    async def test_reset_stops_sessions_and_reboots(
        self, gateway: Gateway, station: int, running: ChargerMaker, kind: str, reason: str
    ) -> None:
        # given a charging session
        charger = await running()
        await start_session(gateway, charger)
        boots = len(sent(charger, "BootNotification"))
        # when the central system resets the charger
        assert await status_of(gateway, "Reset", {"type": kind}) == "Accepted"
        # then the session ends with the reset's reason (a hard reset sends it after the
        # boot) and the charger boots again
        await until(lambda: stop_reasons(charger) == [reason])
        await rebooted(gateway, charger, boots)
        await until(lambda: charger.connectors[1].status == "Available")


@SIMULATOR_ONLY
class TestUpdateFirmware:
    async def test_downloads_installs_and_boots_with_the_new_version(
        self, gateway: Gateway, station: int, running: ChargerMaker, file_server: FileServer
    ) -> None:
        # given an image on an HTTP server
        file_server.files["/fw/chargenet-2.1.0.bin"] = b"\x7fELF new firmware"
        charger = await running()
        boots = len(sent(charger, "BootNotification"))
        # when the central system asks for the update now
        request = {"location": f"{file_server.url}/fw/chargenet-2.1.0.bin", "retrieveDate": in_s(0)}
        assert await central(gateway, "UpdateFirmware", request) == {}
        # then the charger reports each step, restarts and boots with version 2.1.0
        await rebooted(gateway, charger, boots)
        firmware = [p["status"] for p in sent(charger, "FirmwareStatusNotification")]
        assert firmware == ["Downloading", "Downloaded", "Installing", "Installed"]
        assert sent(charger, "BootNotification")[-1]["firmwareVersion"] == "2.1.0"
        # and a triggered status afterwards is Idle
        trigger = {"requestedMessage": "FirmwareStatusNotification"}
        assert await status_of(gateway, "TriggerMessage", trigger) == "Accepted"
        await until(lambda: sent(charger, "FirmwareStatusNotification")[4:] == [{"status": "Idle"}])

    async def test_a_missing_image_is_a_failed_download(
        self, gateway: Gateway, cp: SimCharger, file_server: FileServer
    ) -> None:
        # when the image is not on the server (404), after two attempts
        missing = f"{file_server.url}/fw/missing.bin"
        request = {"location": missing, "retrieveDate": in_s(0), "retries": 2, "retryInterval": 6}
        assert await central(gateway, "UpdateFirmware", request) == {}
        # then the charger reports DownloadFailed and keeps its firmware
        await until(lambda: len(sent(cp, "FirmwareStatusNotification")) == 2)
        firmware = [p["status"] for p in sent(cp, "FirmwareStatusNotification")]
        assert firmware == ["Downloading", "DownloadFailed"] and cp.firmware_version == "1.4.2"

    async def test_nothing_happens_before_the_retrieve_date(
        self, gateway: Gateway, cp: SimCharger, file_server: FileServer
    ) -> None:
        # when the update is due in 0.4 s
        file_server.files["/fw/v3.bin"] = b"image"
        await central(
            gateway, "UpdateFirmware", {"location": f"{file_server.url}/fw/v3.bin", "retrieveDate": in_s(0.4)}
        )
        # then nothing is downloaded before then, and the download starts after
        await asyncio.sleep(0.2)
        assert sent(cp, "FirmwareStatusNotification") == []
        await until(lambda: len(sent(cp, "FirmwareStatusNotification")) >= 1)


@SIMULATOR_ONLY
class TestGetDiagnostics:
    async def test_uploads_a_diagnostics_file_with_http_put(
        self, gateway: Gateway, cp: SimCharger, file_server: FileServer
    ) -> None:
        # given an earlier session, so there is an idTag the file must not contain
        await central(gateway, "RemoteStopTransaction", {"transactionId": await start_session(gateway, cp)})
        # when the central system asks for diagnostics to go to an HTTP location
        answer = await central(gateway, "GetDiagnostics", {"location": f"{file_server.url}/diag/"})
        # then the charger names the file, uploads it and reports Uploading then Uploaded
        name = answer["fileName"]
        assert name.startswith("CP-1-diagnostics-") and name.endswith(".log")
        await until(lambda: len(sent(cp, "DiagnosticsStatusNotification")) == 2)
        diagnostics = [p["status"] for p in sent(cp, "DiagnosticsStatusNotification")]
        assert diagnostics == ["Uploading", "Uploaded"]
        body = file_server.uploads[f"/diag/{name}"].decode()
        assert "charger CP-1 vendor ChargeNetSim" in body and "received RemoteStartTransaction" in body
        assert TAG not in body

    async def test_a_refused_upload_is_reported(
        self, gateway: Gateway, cp: SimCharger, file_server: FileServer
    ) -> None:
        # when the location refuses the upload (507), with one attempt
        answer = await central(
            gateway, "GetDiagnostics", {"location": f"{file_server.url}/full", "retries": 1}
        )
        # then the charger reports UploadFailed
        assert "fileName" in answer
        await until(lambda: sent(cp, "DiagnosticsStatusNotification")[1:] == [{"status": "UploadFailed"}])

    async def test_no_events_in_the_window_means_no_file(
        self, gateway: Gateway, cp: SimCharger, file_server: FileServer
    ) -> None:
        # when the requested window lies before the charger's first event
        window = {"startTime": in_s(-7200), "stopTime": in_s(-3600)}
        answer = await central(gateway, "GetDiagnostics", {"location": f"{file_server.url}/diag", **window})
        # then there is no file name and nothing is uploaded
        assert answer == {}
        await asyncio.sleep(0.1)
        assert file_server.uploads == {} and sent(cp, "DiagnosticsStatusNotification") == []


@SIMULATOR_ONLY
class TestLocalAuthorizationList:
    async def test_full_and_differential_updates_track_the_version(
        self, gateway: Gateway, cp: SimCharger
    ) -> None:
        # given an empty list (version 0)
        assert await central(gateway, "GetLocalListVersion", {}) == {"listVersion": 0}
        # when a full list of two tags arrives as version 3
        full = [
            {"idTag": TAG, "idTagInfo": {"status": "Accepted"}},
            {"idTag": "TAG-GONE", "idTagInfo": {"status": "Blocked"}},
        ]
        request = {"listVersion": 3, "updateType": "Full", "localAuthorizationList": full}
        assert await status_of(gateway, "SendLocalList", request) == "Accepted"
        # and a differential version 4 removes one and adds another
        changes = [
            {"idTag": "TAG-GONE"},
            {"idTag": OTHER_TAG, "idTagInfo": {"status": "Accepted", "parentIdTag": "FLEET"}},
        ]
        diff = {"listVersion": 4, "updateType": "Differential", "localAuthorizationList": changes}
        assert await status_of(gateway, "SendLocalList", diff) == "Accepted"
        # then the list holds the two current tags at version 4
        assert await central(gateway, "GetLocalListVersion", {}) == {"listVersion": 4}
        assert cp.local_auth.lookup("tag-ok-1") == {"status": "Accepted"}  # idTags ignore case
        assert cp.local_auth.lookup("TAG-GONE") is None and cp.local_auth.parent_of(OTHER_TAG) == "FLEET"
        # and a differential that does not raise the version is a VersionMismatch
        assert await status_of(gateway, "SendLocalList", diff) == "VersionMismatch"

    async def test_too_many_entries_fail_and_an_empty_full_list_empties(
        self, gateway: Gateway, cp: SimCharger
    ) -> None:
        # when a list longer than SendLocalListMaxLength (100) arrives
        entries = [{"idTag": f"T-{i}", "idTagInfo": {"status": "Accepted"}} for i in range(101)]
        big = {"listVersion": 1, "updateType": "Full", "localAuthorizationList": entries}
        # then it Failed and nothing changed
        assert await status_of(gateway, "SendLocalList", big) == "Failed"
        assert len(cp.local_auth) == 0
        # and a full update without entries leaves an empty list, reported as version 0
        one = {**big, "localAuthorizationList": entries[:1]}
        assert await status_of(gateway, "SendLocalList", one) == "Accepted"
        assert (
            await status_of(gateway, "SendLocalList", {"listVersion": 2, "updateType": "Full"}) == "Accepted"
        )
        assert await central(gateway, "GetLocalListVersion", {}) == {"listVersion": 0}

    async def test_a_disabled_list_is_not_supported(self, gateway: Gateway, cp: SimCharger) -> None:
        # given LocalAuthListEnabled false
        await central(gateway, "ChangeConfiguration", {"key": "LocalAuthListEnabled", "value": "false"})
        # then the version is -1 and updates are NotSupported
        assert await central(gateway, "GetLocalListVersion", {}) == {"listVersion": -1}
        full = {"listVersion": 1, "updateType": "Full"}
        assert await status_of(gateway, "SendLocalList", full) == "NotSupported"


@SIMULATOR_ONLY
class TestReservations:
    async def test_the_reserved_tag_uses_the_reservation_others_are_turned_away(
        self, gateway: Gateway, cp: SimCharger
    ) -> None:
        # given connector 1 reserved for TAG
        assert await status_of(gateway, "ReserveNow", make_reservation()) == "Accepted"
        await until(lambda: statuses(cp, 1)[-1:] == ["Reserved"])
        # when another tag tries connector 1, then it is Rejected
        other = {"idTag": OTHER_TAG, "connectorId": 1}
        assert await status_of(gateway, "RemoteStartTransaction", other) == "Rejected"
        # when TAG starts without naming a connector
        assert await status_of(gateway, "RemoteStartTransaction", {"idTag": TAG}) == "Accepted"
        # then it charges on the reserved connector, and StartTransaction names the reservation
        await until(lambda: cp.connectors[1].transaction_id is not None)
        assert started(cp)[0]["reservationId"] == 7 and started(cp)[0]["connectorId"] == 1
        assert cp.reservations.by_id == {}

    async def test_a_tag_of_the_reserved_group_uses_the_reservation(
        self, gateway: Gateway, cp: SimCharger
    ) -> None:
        # given OTHER_TAG belongs to group FLEET (local list) and connector 2 is reserved for FLEET
        entry = {"idTag": OTHER_TAG, "idTagInfo": {"status": "Accepted", "parentIdTag": "FLEET"}}
        await central(
            gateway,
            "SendLocalList",
            {"listVersion": 1, "updateType": "Full", "localAuthorizationList": [entry]},
        )
        group = make_reservation(connector_id=2, tag="SOMEONE", parentIdTag="FLEET")
        assert await status_of(gateway, "ReserveNow", group) == "Accepted"
        # when OTHER_TAG starts on connector 2, then the reservation is used up
        await start_session(gateway, cp, 2, OTHER_TAG)
        assert started(cp)[0]["reservationId"] == 7

    async def test_a_reservation_expires(self, gateway: Gateway, cp: SimCharger) -> None:
        # when a reservation runs out after 0.3 s
        assert await status_of(gateway, "ReserveNow", make_reservation(expires_s=0.3)) == "Accepted"
        # then connector 1 goes Reserved, then Available again
        await until(lambda: statuses(cp, 1)[-2:] == ["Reserved", "Available"])
        assert cp.reservations.by_id == {}

    async def test_cancel(self, gateway: Gateway, cp: SimCharger) -> None:
        # given a reservation on connector 2
        await central(gateway, "ReserveNow", make_reservation(connector_id=2, reservation_id=9))
        # when it is cancelled, then connector 2 is Available; an unknown id is Rejected
        assert await status_of(gateway, "CancelReservation", {"reservationId": 9}) == "Accepted"
        await until(lambda: statuses(cp, 2)[-2:] == ["Reserved", "Available"])
        assert await status_of(gateway, "CancelReservation", {"reservationId": 9}) == "Rejected"

    async def test_connectors_that_cannot_be_reserved(self, gateway: Gateway, cp: SimCharger) -> None:
        # given a session on 1 and a fault on 2
        await start_session(gateway, cp)
        await cp.status(2, "Faulted", "GroundFailure")

        async def reserve(connector_id: int, **extra: Any) -> str:
            return await status_of(
                gateway, "ReserveNow", make_reservation(connector_id=connector_id, **extra)
            )

        # then the charger says why it cannot reserve them (or an unknown connector)
        assert [await reserve(1), await reserve(2), await reserve(3)] == ["Occupied", "Faulted", "Rejected"]
        # and with connector 2 Inoperative it is Unavailable
        await cp.status(2, "Available")
        await central(gateway, "ChangeAvailability", {"connectorId": 2, "type": "Inoperative"})
        assert await reserve(2) == "Unavailable"

    async def test_a_second_reservation_of_a_connector_is_occupied(
        self, gateway: Gateway, cp: SimCharger
    ) -> None:
        # given connector 1 reserved as 7
        await central(gateway, "ReserveNow", make_reservation())
        # then another reservation of it is Occupied, while renewing 7 is Accepted
        assert await status_of(gateway, "ReserveNow", make_reservation(reservation_id=8)) == "Occupied"
        assert await status_of(gateway, "ReserveNow", make_reservation(expires_s=1200)) == "Accepted"

    async def test_connector_zero_keeps_a_connector_free(self, gateway: Gateway, cp: SimCharger) -> None:
        # given a reservation for "any connector"
        assert await status_of(gateway, "ReserveNow", make_reservation(connector_id=0)) == "Accepted"
        # when another tag takes connector 1, then connector 2 stays for the reservation
        await start_session(gateway, cp, 1, OTHER_TAG)
        walk_in = {"idTag": "WALK-IN", "connectorId": 2}
        assert await status_of(gateway, "RemoteStartTransaction", walk_in) == "Rejected"
        # and the reserved tag gets it
        await start_session(gateway, cp, 2, TAG)
        assert started(cp)[-1]["reservationId"] == 7

    async def test_connector_zero_unsupported(self, gateway: Gateway, cp_with: ChargerMaker) -> None:
        # given a charger without ReserveConnectorZeroSupported
        await cp_with(reserve_connector_zero=False)
        # then a reservation for connector 0 is Rejected
        assert await status_of(gateway, "ReserveNow", make_reservation(connector_id=0)) == "Rejected"


@SIMULATOR_ONLY
class TestSetChargingProfile:
    async def test_rules_for_purposes_connectors_stack_levels_and_units(
        self, gateway: Gateway, cp_with: ChargerMaker
    ) -> None:
        # given a charger that takes limits in watts only
        await cp_with(charging_rate_units=["W"])
        # then each profile is answered by the rules of §5.16
        cases = [
            (0, make_profile(unit="W", limit=11_000), "Accepted"),
            (1, make_profile(purpose="ChargePointMaxProfile", unit="W"), "Rejected"),  # only on 0
            (1, make_profile(purpose="TxProfile", unit="W"), "Rejected"),  # no transaction
            (0, make_profile(unit="W", stack=9), "Rejected"),  # above ChargeProfileMaxStackLevel
            (3, make_profile(unit="W"), "Rejected"),  # no such connector
            (0, make_profile(unit="W", periods=[{"startPeriod": 60, "limit": 1}]), "Rejected"),  # not from 0
            (0, make_profile(unit="A"), "NotSupported"),  # amperes not allowed here
        ]
        for cid, cs, status in cases:
            assert await status_of(gateway, "SetChargingProfile", set_profile(cid, cs)) == status, cs

    async def test_a_tx_profile_limits_the_running_session(self, gateway: Gateway, cp: SimCharger) -> None:
        # given a session on connector 1 drawing about 22 kW
        tx = await start_session(gateway, cp)
        # when a TxProfile of 6 A for that transaction arrives
        six_amps = make_profile(purpose="TxProfile", limit=6.0, transactionId=tx)
        assert await status_of(gateway, "SetChargingProfile", set_profile(1, six_amps)) == "Accepted"
        # then the metered power stays within 6 A × 230 V × 3 phases (the first sample after
        # the answer may have been taken before it)
        metered = len(cp.delivered)
        await until(lambda: sum(a == "MeterValues" for a, _ in cp.delivered[metered:]) >= 3)
        samples = [
            p["meterValue"][0]["sampledValue"] for a, p in cp.delivered[metered:] if a == "MeterValues"
        ]
        assert 0 < max(int(s[1]["value"]) for s in samples[1:]) <= 6 * VOLTS_3_PHASE
        # and when the limit drops to 0 A the charger suspends the session
        zero = make_profile(purpose="TxProfile", limit=0.0)
        assert await status_of(gateway, "SetChargingProfile", set_profile(1, zero)) == "Accepted"
        await until(lambda: statuses(cp, 1)[-1:] == ["SuspendedEVSE"])
        # and once the transaction ends its TxProfile is gone
        await central(gateway, "RemoteStopTransaction", {"transactionId": tx})
        await until(lambda: cp.connectors[1].transaction_id is None)
        assert cp.profiles.installed == []

    async def test_a_remote_start_brings_its_tx_profile(self, gateway: Gateway, cp: SimCharger) -> None:
        # when a remote start carries a TxProfile, then the session runs under it
        tx_profile = make_profile(purpose="TxProfile", limit=10.0)
        start = {"idTag": TAG, "connectorId": 2, "chargingProfile": tx_profile}
        assert await status_of(gateway, "RemoteStartTransaction", start) == "Accepted"
        await until(
            lambda: [(p.purpose, p.connector_id) for p in cp.profiles.installed] == [("TxProfile", 2)]
        )
        # and one with another purpose is Rejected
        start = {"idTag": TAG, "connectorId": 1, "chargingProfile": make_profile()}
        assert await status_of(gateway, "RemoteStartTransaction", start) == "Rejected"


@SIMULATOR_ONLY
class TestClearChargingProfile:
    async def test_by_id_and_by_criteria(self, gateway: Gateway, cp: SimCharger) -> None:
        # given three profiles
        for cid, cs in (
            (0, make_profile(profile_id=1)),
            (1, make_profile(profile_id=2, stack=1)),
            (0, make_profile(profile_id=3, purpose="ChargePointMaxProfile")),
        ):
            await central(gateway, "SetChargingProfile", set_profile(cid, cs))
        # when they are cleared one way or another, then only matches count
        cases: list[tuple[dict[str, Any], str]] = [
            ({"id": 2}, "Accepted"),
            ({"id": 2}, "Unknown"),
            ({"chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 5}, "Unknown"),
            ({"connectorId": 0, "stackLevel": 0}, "Accepted"),  # profiles 1 and 3
        ]
        for criteria, status in cases:
            assert await status_of(gateway, "ClearChargingProfile", criteria) == status, criteria
        assert cp.profiles.installed == []


def composite_periods(result: dict[str, Any]) -> list[tuple[int, float]]:
    assert result["status"] == "Accepted"
    return [(p["startPeriod"], p["limit"]) for p in result["chargingSchedule"]["chargingSchedulePeriod"]]


@SIMULATOR_ONLY
class TestGetCompositeSchedule:
    async def test_stack_levels_and_the_charge_point_maximum_combine(
        self, gateway: Gateway, cp: SimCharger
    ) -> None:
        # given a default of 16 A, a stack-level-1 default of 10 A for the first 30 minutes,
        # and a charge point maximum of 13 A from the 45th minute
        now = utcnow().replace(microsecond=0)
        start = {"startSchedule": to_ocpp(now)}
        maximum = [{"startPeriod": 0, "limit": 32.0}, {"startPeriod": 2700, "limit": 13.0}]
        for cid, cs in (
            (0, make_profile(profile_id=1, limit=16.0, schedule=start)),
            (1, make_profile(profile_id=2, stack=1, limit=10.0, schedule={**start, "duration": 1800})),
            (0, make_profile(profile_id=3, purpose="ChargePointMaxProfile", periods=maximum, schedule=start)),
        ):
            assert await status_of(gateway, "SetChargingProfile", set_profile(cid, cs)) == "Accepted"
        # when the central system asks for connector 1's next hour in amperes
        request = {"connectorId": 1, "duration": 3600, "chargingRateUnit": "A"}
        result = await central(gateway, "GetCompositeSchedule", request)
        # then 10 A until minute 30, 16 A until minute 45, then the 13 A maximum
        offset = int((parse_ocpp_datetime(result["scheduleStart"]) - now).total_seconds())
        assert composite_periods(result) == [(0, 10.0), (1800 - offset, 16.0), (2700 - offset, 13.0)]
        assert result["connectorId"] == 1 and result["chargingSchedule"]["duration"] == 3600

    async def test_units_are_converted_and_bad_requests_rejected(
        self, gateway: Gateway, cp: SimCharger
    ) -> None:
        # given a default of 16 A
        await central(gateway, "SetChargingProfile", set_profile(0, make_profile(limit=16.0)))

        async def composite(connector_id: int, **extra: Any) -> dict[str, Any]:
            request = {"connectorId": connector_id, "duration": 600, **extra}
            return await central(gateway, "GetCompositeSchedule", request)

        # when asked in watts, then 16 A × 230 V × 3 phases
        assert composite_periods(await composite(2, chargingRateUnit="W")) == [(0, 16 * VOLTS_3_PHASE)]
        # and the charger as a whole is bounded by its rating (2 × 22 kW) without a maximum
        assert composite_periods(await composite(0, chargingRateUnit="W")) == [(0, 44_000.0)]
        # and an unknown connector is Rejected
        assert await composite(4) == {"status": "Rejected"}


@SIMULATOR_ONLY
class TestTriggerMessage:
    async def test_each_message_follows_its_acceptance(self, gateway: Gateway, cp: SimCharger) -> None:
        cases: list[tuple[str, int | None]] = [
            ("BootNotification", None),
            ("DiagnosticsStatusNotification", None),
            ("FirmwareStatusNotification", None),
            ("Heartbeat", None),
            ("MeterValues", 2),
            ("StatusNotification", 1),
            ("StatusNotification", 0),
        ]
        for message, connector_id in cases:
            # when the central system triggers a message
            before = len(sent(cp, message))
            request: dict[str, Any] = {"requestedMessage": message}
            if connector_id is not None:
                request["connectorId"] = connector_id
            assert await status_of(gateway, "TriggerMessage", request) == "Accepted"
            # then the charger sends it (idle transfers report Idle)
            await until(lambda m=message, n=before: len(sent(cp, m)) > n)  # type: ignore[misc]
            last = sent(cp, message)[-1]
            if message in ("DiagnosticsStatusNotification", "FirmwareStatusNotification"):
                assert last == {"status": "Idle"}
            if connector_id is not None:
                assert last["connectorId"] == connector_id

    async def test_an_unknown_connector_is_rejected(self, gateway: Gateway, cp: SimCharger) -> None:
        request = {"requestedMessage": "StatusNotification", "connectorId": 3}
        assert await status_of(gateway, "TriggerMessage", request) == "Rejected"


class TestWhatTheGatewayStores:
    async def test_reservations_and_transfers_reach_the_database(
        self, gateway: Gateway, engine: AsyncEngine, cp: SimCharger
    ) -> None:
        # given a session that used a reservation
        await central(gateway, "ReserveNow", make_reservation(connector_id=2, reservation_id=41))
        tx = await start_session(gateway, cp, 2)
        await central(gateway, "RemoteStopTransaction", {"transactionId": tx})
        await until(lambda: cp.connectors[2].transaction_id is None)
        # when diagnostics and a firmware image travel over FTP (simulated transfers)
        await central(gateway, "GetDiagnostics", {"location": "ftp://files.example.com/diag/"})
        await until(lambda: sent(cp, "DiagnosticsStatusNotification")[-1:] == [{"status": "Uploaded"}])
        image = {"location": "ftp://files.example.com/fw/4.0.1.bin", "retrieveDate": in_s(0)}
        await central(gateway, "UpdateFirmware", image)
        await until(lambda: sent(cp, "FirmwareStatusNotification")[-1:] == [{"status": "Installed"}])
        # then the gateway stored the reservation and the last statuses
        transactions = await fetch(
            engine, "SELECT reservation_id FROM charging_transaction WHERE id = :id", id=tx
        )
        stations = await fetch(
            engine,
            "SELECT firmware_status, diagnostics_status FROM charging_station WHERE charge_point_id = 'CP-1'",
        )
        assert transactions == [{"reservation_id": 41}]
        assert stations == [{"firmware_status": "Installed", "diagnostics_status": "Uploaded"}]
