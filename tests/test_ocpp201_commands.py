"""Every version-neutral command reaches a 2.0.1 station in 2.0.1 words, and its answer comes
back in the neutral shape (schema/commands.py): accepted, rejected, a CALLERROR, silence, or a
station gone mid-call."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.sim_v201 import NO_ANSWER, CallError, SimCharger201
from schema.bus import InProcessBus
from schema.commands import (
    CancelReservation,
    ChangeAvailability,
    ChargingProfile,
    ChargingSchedule,
    ClearCache,
    ClearChargingProfile,
    Command,
    DataTransfer,
    GetBaseReport,
    GetCompositeSchedule,
    GetDiagnostics,
    GetLocalListVersion,
    GetTransactionStatus,
    LocalAuthEntry,
    ProfilePurpose,
    RateUnit,
    RemoteStart,
    RemoteStop,
    ReserveNow,
    Reset,
    ResetKind,
    SchedulePeriod,
    SendLocalList,
    SetChargingProfile,
    TriggerMessage,
    UnlockConnector,
    UpdateFirmware,
    UpdateType,
)
from schema.errors import CommandFailed, CommandTimeout, InvalidInput, StationOffline
from schema.timeutil import utcnow
from tests.builders import ACCEPTED_TAGS, make_station
from tests.conftest import ChargerFactory
from tests.dbutil import scalar
from tests.ocpp201 import Charger201Factory, connect201, eventually

__all__ = ["connect201"]  # the fixture, imported for pytest

TAG = ACCEPTED_TAGS[0]
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL adds nothing here


@pytest.fixture
async def cp(station: int, connect201: Charger201Factory) -> SimCharger201:
    return await connect201("CP-1", connectors=[22_000, 22_000], speed=600, meter_interval_s=60)


async def ask(bus: InProcessBus, command: Command) -> Any:
    return await bus.request("CP-1", command, timeout=5)


def last(cp: SimCharger201, action: str) -> dict[str, Any]:
    return [p for a, p in cp.received_calls if a == action][-1]


def profile(
    purpose: ProfilePurpose = ProfilePurpose.TX_DEFAULT, limit: float = 16.0, profile_id: int = 7
) -> ChargingProfile:
    schedule = ChargingSchedule(RateUnit.AMPERES, (SchedulePeriod(0, limit, 3),))
    return ChargingProfile(profile_id=profile_id, stack_level=1, purpose=purpose, schedule=schedule)


class TestSessions:
    async def test_remote_start_and_stop_by_the_stations_own_transaction_id(
        self, engine: AsyncEngine, bus: InProcessBus, cp: SimCharger201
    ) -> None:
        reply = await ask(bus, RemoteStart(id_tag=TAG, connector_id=2))
        sent = last(cp, "RequestStartTransaction")
        assert sent["idToken"] == {"idToken": TAG, "type": "ISO14443"}  # an RFID card (token_type)
        assert (sent["evseId"], sent["remoteStartId"]) == (2, reply.detail["remote_start_id"])
        assert reply.status == "Accepted"

        async def active() -> bool:
            return (
                await scalar(engine, "SELECT count(*) FROM charging_transaction WHERE state = 'Active'") == 1
            )

        await eventually(active)
        tx = await scalar(engine, "SELECT id FROM charging_transaction")
        assert (await ask(bus, GetTransactionStatus(transaction_id=tx))).detail["ongoing"] is True
        assert (await ask(bus, RemoteStop(transaction_id=tx))).accepted
        assert last(cp, "RequestStopTransaction") == {
            "transactionId": cp.delivered[-1][1]["transactionInfo"]["transactionId"]
        }

        async def ended() -> bool:
            return await scalar(engine, "SELECT stop_reason FROM charging_transaction") == "Remote"

        await eventually(ended)
        status = await ask(bus, GetTransactionStatus(transaction_id=tx))
        assert status.detail == {"ongoing": False, "messages_in_queue": False}

    async def test_a_session_the_station_never_reported_is_not_stopped(
        self, bus: InProcessBus, cp: SimCharger201
    ) -> None:
        reply = await ask(bus, RemoteStop(transaction_id=999))
        assert (reply.status, reply.detail["reason"]) == ("Rejected", "UnknownTransaction")
        assert not any(a == "RequestStopTransaction" for a, _ in cp.received_calls)
        with pytest.raises(InvalidInput):
            await ask(bus, GetTransactionStatus(transaction_id=999))


class TestControl:
    @pytest.mark.parametrize(
        ("command", "action", "payload", "status"),
        [
            (UnlockConnector(connector_id=1), "UnlockConnector", {"evseId": 1, "connectorId": 1}, "Unlocked"),
            (
                UnlockConnector(connector_id=5),
                "UnlockConnector",
                {"evseId": 5, "connectorId": 1},
                "UnknownConnector",
            ),
            (ClearCache(), "ClearCache", {}, "Accepted"),
            (
                TriggerMessage(message="DiagnosticsStatusNotification"),
                "TriggerMessage",
                {"requestedMessage": "LogStatusNotification"},
                "Accepted",
            ),
            (
                TriggerMessage(message="StatusNotification", connector_id=2),
                "TriggerMessage",
                {"requestedMessage": "StatusNotification", "evse": {"id": 2, "connectorId": 1}},
                "Accepted",
            ),
            (
                TriggerMessage(message="SignChargingStationCertificate"),
                "TriggerMessage",
                {"requestedMessage": "SignChargingStationCertificate"},
                "NotImplemented",
            ),
            (
                ChangeAvailability(connector_id=2, operative=False),
                "ChangeAvailability",
                {"operationalStatus": "Inoperative", "evse": {"id": 2}},
                "Accepted",
            ),
            (GetBaseReport(report="SummaryInventory"), "GetBaseReport", None, "Accepted"),
            (GetTransactionStatus(), "GetTransactionStatus", {}, "Accepted"),
        ],
    )
    async def test_commands_in_2_0_1_words(
        self,
        bus: InProcessBus,
        cp: SimCharger201,
        command: Command,
        action: str,
        payload: dict[str, Any] | None,
        status: str,
    ) -> None:
        reply = await ask(bus, command)
        assert reply.status == status
        if payload is not None:
            assert last(cp, action) == payload

    async def test_the_whole_station_goes_unavailable(
        self, engine: AsyncEngine, bus: InProcessBus, cp: SimCharger201
    ) -> None:
        assert (await ask(bus, ChangeAvailability(connector_id=0, operative=False))).accepted
        assert last(cp, "ChangeAvailability") == {"operationalStatus": "Inoperative"}

        async def unavailable() -> bool:
            rows = await scalar(engine, "SELECT count(*) FROM connector WHERE status = 'Unavailable'")
            return bool(rows == 2)

        await eventually(unavailable)

    @pytest.mark.parametrize(("kind", "sent"), [(ResetKind.SOFT, "OnIdle"), (ResetKind.HARD, "Immediate")])
    async def test_reset_kinds(
        self, bus: InProcessBus, cp: SimCharger201, kind: ResetKind, sent: str
    ) -> None:
        cp.on_call = lambda action, payload: {"status": "Accepted"}  # keep it up for the test
        assert (await ask(bus, Reset(kind=kind))).accepted
        assert last(cp, "Reset") == {"type": sent}

    async def test_data_transfer_to_the_vendor_and_to_strangers(
        self, bus: InProcessBus, cp: SimCharger201
    ) -> None:
        echoed = await ask(bus, DataTransfer(vendor_id="ChargeNetSim", message_id="ping", data="hello"))
        assert (echoed.status, echoed.detail) == ("Accepted", {"data": "hello"})
        assert (await ask(bus, DataTransfer(vendor_id="com.other"))).status == "UnknownVendorId"
        with pytest.raises(InvalidInput):  # more than a 2.0.1 vendorId holds: refused unsent
            await ask(bus, DataTransfer(vendor_id="x" * 256))


class TestFiles:
    async def test_firmware_update_reports_its_progress_with_the_request_id(
        self, engine: AsyncEngine, bus: InProcessBus, cp: SimCharger201
    ) -> None:
        reply = await ask(
            bus, UpdateFirmware(location="ftp://files.example/fw-2.1.0.bin", retrieve_at=utcnow())
        )
        sent = last(cp, "UpdateFirmware")
        assert sent["firmware"]["location"] == "ftp://files.example/fw-2.1.0.bin"
        assert reply.detail == {"status": "Accepted", "request_id": sent["requestId"]}

        async def installed() -> bool:
            return await scalar(engine, "SELECT firmware_status FROM charging_station") == "Installed"

        await eventually(installed)
        notified = [p for a, p in cp.sent if a == "FirmwareStatusNotification"]
        assert {p["requestId"] for p in notified} == {sent["requestId"]}

    async def test_diagnostics_are_a_2_0_1_log_upload(
        self, engine: AsyncEngine, bus: InProcessBus, cp: SimCharger201
    ) -> None:
        reply = await ask(bus, GetDiagnostics(location="ftp://files.example/logs"))
        sent = last(cp, "GetLog")
        assert (sent["logType"], sent["log"]) == (
            "DiagnosticsLog",
            {"remoteLocation": "ftp://files.example/logs"},
        )
        assert reply.detail["file_name"].startswith("CP-1-diagnostics-")

        async def uploaded() -> bool:
            return await scalar(engine, "SELECT diagnostics_status FROM charging_station") == "Uploaded"

        await eventually(uploaded)


class TestLocalListAndReservations:
    async def test_local_list_versions(self, bus: InProcessBus, cp: SimCharger201) -> None:
        entries = (LocalAuthEntry(TAG, "Accepted"), LocalAuthEntry(ACCEPTED_TAGS[1], "Blocked"))
        reply = await ask(bus, SendLocalList(version=3, update_type=UpdateType.FULL, entries=entries))
        assert reply.accepted
        sent = last(cp, "SendLocalList")
        assert sent["localAuthorizationList"][1] == {
            "idToken": {"idToken": ACCEPTED_TAGS[1], "type": "ISO14443"},
            "idTokenInfo": {"status": "Blocked"},
        }
        assert (await ask(bus, GetLocalListVersion())).detail == {"version": 3}
        stale = SendLocalList(version=2, update_type=UpdateType.DIFFERENTIAL, entries=entries[:1])
        assert (await ask(bus, stale)).status == "VersionMismatch"

    async def test_reserve_then_cancel(
        self, engine: AsyncEngine, bus: InProcessBus, cp: SimCharger201
    ) -> None:
        expires = utcnow() + timedelta(hours=1)
        reply = await ask(bus, ReserveNow(reservation_id=11, connector_id=2, id_tag=TAG, expires_at=expires))
        assert reply.accepted
        assert (last(cp, "ReserveNow")["id"], last(cp, "ReserveNow")["evseId"]) == (11, 2)

        async def reserved() -> bool:
            return await scalar(engine, "SELECT status FROM connector WHERE connector_id = 2") == "Reserved"

        await eventually(reserved)
        assert (await ask(bus, CancelReservation(reservation_id=11))).accepted
        assert (await ask(bus, CancelReservation(reservation_id=11))).status == "Rejected"


class TestSmartCharging:
    async def test_profile_composite_schedule_and_clearing(
        self, bus: InProcessBus, cp: SimCharger201
    ) -> None:
        assert (await ask(bus, SetChargingProfile(connector_id=1, profile=profile()))).accepted
        sent = last(cp, "SetChargingProfile")["chargingProfile"]
        assert (sent["id"], sent["chargingProfilePurpose"], len(sent["chargingSchedule"])) == (
            7,
            "TxDefaultProfile",
            1,
        )
        composite = await ask(
            bus, GetCompositeSchedule(connector_id=1, duration_s=600, unit=RateUnit.AMPERES)
        )
        assert composite.detail["connector_id"] == 1
        assert composite.detail["schedule"]["periods"][0]["limit"] == 16.0
        station_max = SetChargingProfile(
            connector_id=0, profile=profile(ProfilePurpose.STATION_MAX, 32, profile_id=1)
        )
        assert (await ask(bus, station_max)).accepted
        assert last(cp, "SetChargingProfile")["chargingProfile"]["chargingProfilePurpose"] == (
            "ChargingStationMaxProfile"
        )
        assert (await ask(bus, ClearChargingProfile(purpose=ProfilePurpose.TX_DEFAULT))).accepted
        assert last(cp, "ClearChargingProfile") == {
            "chargingProfileCriteria": {"chargingProfilePurpose": "TxDefaultProfile"}
        }
        assert (await ask(bus, ClearChargingProfile(profile_id=99))).status == "Unknown"

    async def test_a_tx_profile_needs_a_session_of_this_station(
        self, bus: InProcessBus, cp: SimCharger201
    ) -> None:
        tx_profile = ChargingProfile(
            profile_id=8,
            stack_level=0,
            purpose=ProfilePurpose.TX,
            schedule=ChargingSchedule(RateUnit.WATTS, (SchedulePeriod(0, 7_000),)),
            transaction_id=12345,
        )
        with pytest.raises(InvalidInput):
            await ask(bus, SetChargingProfile(connector_id=1, profile=tx_profile))


class TestFailures:
    async def test_a_callerror_comes_back_with_its_code(self, bus: InProcessBus, cp: SimCharger201) -> None:
        def refuse(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
            raise CallError("NotSupported", "not on this model")

        cp.on_call = refuse
        with pytest.raises(CommandFailed) as err:
            await ask(bus, ClearCache())
        assert err.value.station_code == "NotSupported"

    async def test_silence_is_a_timeout_and_the_connection_stays_usable(
        self, bus: InProcessBus, cp: SimCharger201
    ) -> None:
        cp.on_call = lambda action, payload: NO_ANSWER
        with pytest.raises(CommandTimeout):
            await bus.request("CP-1", ClearCache(), timeout=0.3)
        cp.on_call = None
        assert (await ask(bus, ClearCache())).accepted

    async def test_a_station_leaving_mid_call_is_offline(self, bus: InProcessBus, cp: SimCharger201) -> None:
        cp.on_call = lambda action, payload: NO_ANSWER
        pending = asyncio.create_task(ask(bus, ClearCache()))
        await eventually(_received(cp, "ClearCache"))
        await cp.close()
        with pytest.raises(StationOffline):
            await pending

    async def test_a_1_6_station_has_no_2_0_1_only_commands(
        self, engine: AsyncEngine, bus: InProcessBus, connect_charger: ChargerFactory
    ) -> None:
        await make_station(engine, charge_point_id="CP-16")
        await connect_charger("CP-16")
        for command in (GetTransactionStatus(), GetBaseReport()):
            with pytest.raises(InvalidInput):
                await bus.request("CP-16", command, timeout=5)


def _received(cp: SimCharger201, action: str) -> Any:
    async def check() -> bool:
        return any(a == action for a, _ in cp.received_calls)

    return check
