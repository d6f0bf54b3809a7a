"""An OCPP 2.0.1 station on the same port as 1.6 ones: the subprotocol picks the handler;
boot, heartbeat, EVSE statuses, authorization and the station's reports land where a 1.6
station's do, so nothing above the gateway needs to know the version."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import connect

from gateway.server import Gateway
from gateway.sim_types import CallError
from schema.bus import InProcessBus
from schema.commands import GetConfiguration
from schema.events import ALL_STATIONS_TOPIC, StationReported
from tests.builders import ACCEPTED_TAGS, BLOCKED_TAG, make_station
from tests.conftest import ChargerFactory
from tests.dbutil import fetch, scalar
from tests.ocpp201 import Charger201Factory, connect201, ts

__all__ = ["connect201"]  # the fixture, imported for pytest

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def status(evse: int, connector: int, what: str, minutes: float = 0) -> dict:
    return {"timestamp": ts(minutes), "connectorStatus": what, "evseId": evse, "connectorId": connector}


class TestSubprotocol:
    @SQLITE_ONLY
    @pytest.mark.parametrize(
        ("offered", "chosen"),
        [
            (["ocpp2.0.1", "ocpp1.6"], "ocpp2.0.1"),
            (["ocpp1.6", "ocpp2.0.1"], "ocpp1.6"),
            (["ocpp2.1", "ocpp2.0.1"], "ocpp2.0.1"),
        ],
    )
    async def test_the_stations_first_supported_choice_wins(
        self, gateway: Gateway, station: int, offered: list[str], chosen: str
    ) -> None:
        url = f"ws://127.0.0.1:{gateway.bound_port}/ocpp/CP-1"
        async with connect(url, subprotocols=offered) as ws:  # type: ignore[arg-type]
            assert ws.subprotocol == chosen


class TestBoot:
    async def test_boot_records_the_station_and_announces_its_reason(
        self, engine: AsyncEngine, bus: InProcessBus, station: int, connect201: Charger201Factory
    ) -> None:
        sub = bus.subscribe(ALL_STATIONS_TOPIC)
        cp = await connect201("CP-1", firmware_version="2.0.0")
        assert cp.booted.is_set()
        [row] = await fetch(engine, "SELECT * FROM charging_station WHERE id = :i", i=station)
        assert (row["vendor"], row["model"], row["serial_number"]) == ("ChargeNetSim", "SimAC22", "SN-CP-1")
        assert (row["firmware_version"], row["ocpp_version"]) == ("2.0.0", "ocpp2.0.1")
        reasons = []
        while not reasons:
            event = await sub.next(5)
            if isinstance(event, StationReported) and event.action == "BootNotification":
                reasons.append(event.detail["reason"])
        assert reasons == ["PowerUp"]

    @pytest.mark.parametrize("registration", ["Pending", "Rejected"])
    async def test_unaccepted_station_is_told_when_to_retry(
        self, engine: AsyncEngine, connect201: Charger201Factory, registration: str
    ) -> None:
        await make_station(engine, charge_point_id="CP-P", registration_status=registration)
        cp = await connect201("CP-P", boot=False)
        station = {"model": "M", "vendorName": "V"}
        result = await cp.call("BootNotification", {"chargingStation": station, "reason": "PowerUp"})
        assert (result["status"], result["interval"]) == (registration, 60)
        # no device-model read for a station that may not talk yet
        assert not any(a == "GetBaseReport" for a, _ in cp.received_calls)

    async def test_heartbeat_answers_the_time(self, station: int, connect201: Charger201Factory) -> None:
        cp = await connect201("CP-1")
        assert (await cp.call("Heartbeat", {}))["currentTime"].endswith("Z")


class TestStatus:
    async def test_each_evse_is_a_connector(
        self, engine: AsyncEngine, station: int, connect201: Charger201Factory
    ) -> None:
        cp = await connect201("CP-1", connectors=[22_000, 22_000, 11_000])
        await cp.call("StatusNotification", status(2, 1, "Occupied", 1))
        await cp.call("StatusNotification", status(1, 1, "Faulted", 2))
        rows = await fetch(engine, "SELECT connector_id, status, error_code FROM connector ORDER BY 1")
        assert [(r["connector_id"], r["status"], r["error_code"]) for r in rows] == [
            (1, "Faulted", "OtherError"),
            (2, "Preparing", "NoError"),
            (3, "Available", "NoError"),  # not registered: created from the station's report
        ]

    @SQLITE_ONLY
    async def test_connectors_of_one_evse_fold_into_one_status(
        self, engine: AsyncEngine, station: int, connect201: Charger201Factory
    ) -> None:
        cp = await connect201("CP-1", connectors=[50_000])

        async def connector_1() -> str:
            return str(await scalar(engine, "SELECT status FROM connector WHERE connector_id = 1"))

        await cp.call("StatusNotification", status(1, 2, "Available"))
        await cp.call("StatusNotification", status(1, 2, "Occupied", 1))  # the CHAdeMO cable
        assert await connector_1() == "Preparing"
        await cp.call("StatusNotification", status(1, 2, "Available", 2))
        assert await connector_1() == "Available"
        await cp.call("StatusNotification", status(1, 2, "Faulted", 3))
        assert await connector_1() == "Faulted"  # an operator must see it
        await cp.call("StatusNotification", status(1, 1, "Occupied", 4))
        assert await connector_1() == "Preparing"  # the EVSE is in use all the same
        history = await scalar(engine, "SELECT count(*) FROM connector_status_event WHERE connector_id = 1")
        assert history == 4  # Preparing, Available, Faulted, Preparing: changes only


class TestAuthorize:
    @SQLITE_ONLY
    @pytest.mark.parametrize(
        ("token", "kind", "expected"),
        [
            (ACCEPTED_TAGS[0], "ISO14443", "Accepted"),
            (BLOCKED_TAG, "ISO14443", "Blocked"),
            ("NOBODY", "Central", "Invalid"),
            ("", "NoAuthorization", "Accepted"),
        ],
    )
    async def test_tokens_are_checked_like_1_6_tags(
        self, station: int, connect201: Charger201Factory, token: str, kind: str, expected: str
    ) -> None:
        cp = await connect201("CP-1")
        result = await cp.call("Authorize", {"idToken": {"idToken": token, "type": kind}})
        assert result["idTokenInfo"]["status"] == expected


class TestStationReports:
    async def test_firmware_and_log_progress_use_the_1_6_fields(
        self, engine: AsyncEngine, station: int, connect201: Charger201Factory
    ) -> None:
        cp = await connect201("CP-1")
        await cp.call("FirmwareStatusNotification", {"status": "Downloading", "requestId": 7})
        await cp.call("LogStatusNotification", {"status": "UploadFailure", "requestId": 8})
        [row] = await fetch(engine, "SELECT firmware_status, diagnostics_status FROM charging_station")
        assert (row["firmware_status"], row["diagnostics_status"]) == ("Downloading", "UploadFailed")

    async def test_events_and_security_events_are_announced(
        self, bus: InProcessBus, station: int, connect201: Charger201Factory
    ) -> None:
        cp = await connect201("CP-1")
        sub = bus.subscribe(ALL_STATIONS_TOPIC)
        event = {
            "eventId": 1,
            "timestamp": ts(),
            "trigger": "Delta",
            "actualValue": "true",
            "techCode": "E-42",
            "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
            "variable": {"name": "Problem"},
            "eventNotificationType": "HardWiredNotification",
        }
        await cp.call("NotifyEvent", {"generatedAt": ts(), "seqNo": 0, "eventData": [event]})
        await cp.call("SecurityEventNotification", {"type": "TamperDetectionActivated", "timestamp": ts()})
        assert await cp.call("DataTransfer", {"vendorId": "com.example"}) == {"status": "UnknownVendorId"}
        seen: dict[str, dict] = {}
        while not {"NotifyEvent", "SecurityEventNotification", "DataTransfer"} <= seen.keys():
            got = await sub.next(5)
            if isinstance(got, StationReported):
                seen[got.action] = got.detail
        assert seen["NotifyEvent"]["events"][0]["key"] == "Connector@1:1.Problem"
        assert seen["NotifyEvent"]["events"][0]["tech_code"] == "E-42"
        assert seen["SecurityEventNotification"]["type"] == "TamperDetectionActivated"
        assert seen["DataTransfer"]["vendorId"] == "com.example"


@SQLITE_ONLY
class TestBadInput:
    async def test_a_schema_violation_gets_the_2_0_1_error_code(
        self, station: int, connect201: Charger201Factory
    ) -> None:
        cp = await connect201("CP-1")
        with pytest.raises(CallError) as err:
            await cp.call("Heartbeat", {"unexpected": 1})
        assert err.value.code == "FormatViolation"  # 1.6 spells it FormationViolation
        with pytest.raises(CallError) as err:
            await cp.call("StatusNotification", status(1, 1, "Sleeping"))
        assert err.value.code == "PropertyConstraintViolation"

    @pytest.mark.parametrize("raw", ["not json", "[2]", '[2, "m1", "Heartbeat", []]'])
    async def test_a_malformed_frame_gets_format_violation(
        self, station: int, connect201: Charger201Factory, raw: str
    ) -> None:
        cp = await connect201("CP-1")
        frame = await cp.send_raw(raw, expect_id="m1" if "m1" in raw else "-1")
        assert frame[0] == 4 and frame[2] == "FormatViolation"
        assert (await cp.call("Heartbeat", {}))["currentTime"]

    async def test_known_but_untaken_messages_are_not_supported(
        self, station: int, connect201: Charger201Factory
    ) -> None:
        cp = await connect201("CP-1")
        with pytest.raises(CallError) as err:
            await cp.call("SignCertificate", {"csr": "x"})
        assert err.value.code == "NotSupported"
        with pytest.raises(CallError) as err:
            await cp.call("StartTransaction", {})  # a 1.6 message
        assert err.value.code == "NotImplemented"


class TestSideBySide:
    async def test_1_6_and_2_0_1_stations_share_the_gateway(
        self,
        engine: AsyncEngine,
        bus: InProcessBus,
        connect_charger: ChargerFactory,
        connect201: Charger201Factory,
    ) -> None:
        await make_station(engine, charge_point_id="CP-16")
        await make_station(engine, charge_point_id="CP-201")
        old = await connect_charger("CP-16")
        new = await connect201("CP-201")
        rows = await fetch(engine, "SELECT charge_point_id, ocpp_version FROM charging_station ORDER BY 1")
        assert [(r["charge_point_id"], r["ocpp_version"]) for r in rows] == [
            ("CP-16", "ocpp1.6"),
            ("CP-201", "ocpp2.0.1"),
        ]
        # the same neutral command, each in its station's version, the same neutral answer
        ask = GetConfiguration(keys=("HeartbeatInterval",))
        for cpid in ("CP-16", "CP-201"):
            reply = await bus.request(cpid, ask, timeout=5)
            assert [e["key"] for e in reply.detail["configuration"]] == ["HeartbeatInterval"]
        assert ("GetConfiguration", {"key": ["HeartbeatInterval"]}) in old.received_calls
        asked = [p for a, p in new.received_calls if a == "GetVariables"]
        assert asked[-1]["getVariableData"][0]["variable"] == {"name": "HeartbeatInterval"}
