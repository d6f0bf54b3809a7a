"""A 2.0.1 station's device model: read once after boot (GetBaseReport → NotifyReport parts),
stored attribute by attribute, mirrored into the neutral configuration store, kept current by
SetVariables, and never holding a secret."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.sim_v201 import SimCharger201
from schema.bus import InProcessBus
from schema.commands import ChangeConfiguration, GetConfiguration
from schema.errors import InvalidInput
from tests.dbutil import fetch, scalar
from tests.ocpp201 import Charger201Factory, connect201, eventually, ts

__all__ = ["connect201"]  # the fixture, imported for pytest

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
PASSWORD = "a-new-password-of-24-chr"


async def stored(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    """The stored device model by "Component.Variable" (instances and EVSEs left out)."""
    rows = await fetch(engine, "SELECT * FROM device_model_variable")
    return {f"{r['component_name']}.{r['variable_name']}": r for r in rows if not r["evse_id"]}


async def configuration(engine: AsyncEngine) -> dict[str, str | None]:
    rows = await fetch(engine, "SELECT key, value FROM station_configuration_key")
    return {r["key"]: r["value"] for r in rows}


@pytest.fixture
async def cp(engine: AsyncEngine, station: int, connect201: Charger201Factory) -> SimCharger201:
    """A booted station whose device model has been read."""
    charger = await connect201("CP-1", connectors=[22_000, 11_000])

    async def read() -> bool:
        return await scalar(engine, "SELECT configuration_read_at FROM charging_station") is not None

    await eventually(read)
    return charger


class TestReadAfterBoot:
    async def test_the_whole_report_is_stored_as_its_parts_arrive(
        self, engine: AsyncEngine, cp: SimCharger201
    ) -> None:
        [request] = [p for a, p in cp.received_calls if a == "GetBaseReport"]
        assert request["reportBase"] == "FullInventory"
        parts = [p for a, p in cp.sent if a == "NotifyReport"]
        assert [(p["seqNo"], p["tbc"]) for p in parts] == [(0, True), (1, True), (2, False)]
        assert {p["requestId"] for p in parts} == {request["requestId"]}
        count = await scalar(engine, "SELECT count(*) FROM device_model_variable")
        assert count == len(cp.device.variables)
        model = await stored(engine)
        heartbeat = model["OCPPCommCtrlr.HeartbeatInterval"]
        assert (heartbeat["value"], heartbeat["mutability"], heartbeat["data_type"], heartbeat["unit"]) == (
            "300",
            "ReadWrite",
            "integer",
            "s",
        )
        [power] = await fetch(
            engine, "SELECT * FROM device_model_variable WHERE evse_id = 2 AND variable_name = 'Power'"
        )
        assert (power["component_name"], power["value"], power["unit"]) == ("EVSE", "11000", "W")

    async def test_the_secret_is_listed_without_its_value(
        self, engine: AsyncEngine, cp: SimCharger201
    ) -> None:
        secret = (await stored(engine))["SecurityCtrlr.BasicAuthPassword"]
        assert (secret["value"], secret["mutability"]) == (None, "WriteOnly")
        config = await configuration(engine)
        assert config["OCPPCommCtrlr.HeartbeatInterval"] == "300"
        assert config["OCPPCommCtrlr.MessageAttempts[TransactionEvent]"] == "3"
        assert not any("BasicAuthPassword" in key for key in config)

    async def test_a_reconnect_does_not_read_it_again(
        self, engine: AsyncEngine, cp: SimCharger201, connect201: Charger201Factory
    ) -> None:
        await cp.close()
        again = await connect201("CP-1", connectors=[22_000, 11_000])
        assert (await again.call("Heartbeat", {}))["currentTime"]
        assert not any(a == "GetBaseReport" for a, _ in again.received_calls)

    @SQLITE_ONLY
    async def test_a_station_that_reports_a_secret_anyway_does_not_get_it_stored(
        self, engine: AsyncEngine, cp: SimCharger201
    ) -> None:
        leaked = [
            {
                "component": {"name": "SecurityCtrlr"},
                "variable": {"name": "BasicAuthPassword"},
                "variableAttribute": [{"value": "hunter2-hunter2-hunter2", "mutability": "ReadWrite"}],
            },
            {
                "component": {"name": "ChargeNetSim"},
                "variable": {"name": "ServicePin"},
                "variableAttribute": [{"value": "1234", "mutability": "WriteOnly"}],
            },
        ]
        report = {"requestId": 1, "generatedAt": ts(), "seqNo": 0, "reportData": leaked}
        await cp.call("NotifyReport", report)
        model = await stored(engine)
        assert model["SecurityCtrlr.BasicAuthPassword"]["value"] is None
        assert model["ChargeNetSim.ServicePin"]["value"] is None
        assert "1234" not in (await configuration(engine)).values()


class TestGetConfiguration:
    @SQLITE_ONLY
    async def test_everything_is_a_fresh_report_that_drops_what_is_gone(
        self, engine: AsyncEngine, bus: InProcessBus, cp: SimCharger201
    ) -> None:
        gone = cp.device.variables.pop()  # say, a firmware update removed a variable
        reply = await bus.request("CP-1", GetConfiguration(), timeout=5)
        entries = {e["key"]: e for e in reply.detail["configuration"]}
        assert entries["ChargingStation.Model"] == {
            "key": "ChargingStation.Model",
            "value": "SimAC22",
            "readonly": True,
        }
        assert entries["OCPPCommCtrlr.HeartbeatInterval"]["readonly"] is False
        assert not any("BasicAuthPassword" in key for key in entries)
        left = await scalar(
            engine,
            "SELECT count(*) FROM device_model_variable WHERE component_name = :c AND variable_name = :v"
            " AND evse_id = :e",
            c=gone.component,
            v=gone.name,
            e=gone.evse or 0,
        )
        assert left == 0

    async def test_named_keys_with_instances_evses_and_1_6_names(
        self, bus: InProcessBus, cp: SimCharger201
    ) -> None:
        keys = (
            "OCPPCommCtrlr.MessageAttempts[TransactionEvent]",
            "EVSE@2.Power",
            "ChargingStation.Model",
            "MeterValueSampleInterval",
            "AuthorizationKey",
            "Nowhere.Nothing",
            "not a key",
        )
        reply = await bus.request("CP-1", GetConfiguration(keys=keys), timeout=5)
        found = {e["key"]: (e["value"], e["readonly"]) for e in reply.detail["configuration"]}
        assert found == {
            "OCPPCommCtrlr.MessageAttempts[TransactionEvent]": ("3", False),
            "EVSE@2.Power": ("11000", True),
            "ChargingStation.Model": ("SimAC22", True),
            "MeterValueSampleInterval": ("60", False),
        }
        assert sorted(reply.detail["unknown"]) == ["AuthorizationKey", "Nowhere.Nothing", "not a key"]


class TestChangeConfiguration:
    async def test_an_accepted_change_updates_the_stored_copies(
        self, engine: AsyncEngine, bus: InProcessBus, cp: SimCharger201
    ) -> None:
        reply = await bus.request(
            "CP-1", ChangeConfiguration(key="HeartbeatInterval", value="120"), timeout=5
        )
        assert reply.status == "Accepted"
        sent = [p for a, p in cp.received_calls if a == "SetVariables"][-1]["setVariableData"][0]
        assert (sent["component"], sent["variable"], sent["attributeValue"]) == (
            {"name": "OCPPCommCtrlr"},
            {"name": "HeartbeatInterval"},
            "120",
        )
        assert cp.heartbeat_interval == 120
        assert (await stored(engine))["OCPPCommCtrlr.HeartbeatInterval"]["value"] == "120"
        assert (await configuration(engine))["OCPPCommCtrlr.HeartbeatInterval"] == "120"

    @SQLITE_ONLY
    @pytest.mark.parametrize(
        ("key", "value", "status"),
        [
            ("ChargingStation.Model", "X", "Rejected"),  # read-only
            ("OCPPCommCtrlr.HeartbeatInterval", "soon", "Rejected"),  # not a number
            ("ChargeNetSim.DisplayLanguage", "de", "RebootRequired"),
            ("Nowhere.Nothing", "1", "NotSupported"),
            ("not a key", "1", "NotSupported"),  # answered without asking the station
        ],
    )
    async def test_answers_in_the_neutral_words(
        self, bus: InProcessBus, cp: SimCharger201, key: str, value: str, status: str
    ) -> None:
        reply = await bus.request("CP-1", ChangeConfiguration(key=key, value=value), timeout=5)
        assert reply.status == status

    async def test_the_1_6_password_key_rotates_basic_auth_and_is_never_stored(
        self, engine: AsyncEngine, bus: InProcessBus, cp: SimCharger201
    ) -> None:
        reply = await bus.request(
            "CP-1", ChangeConfiguration(key="AuthorizationKey", value=PASSWORD), timeout=5
        )
        assert reply.accepted
        sent = [p for a, p in cp.received_calls if a == "SetVariables"][-1]["setVariableData"][0]
        assert (sent["component"]["name"], sent["variable"]["name"]) == ("SecurityCtrlr", "BasicAuthPassword")
        assert cp.cfg.password == PASSWORD
        assert (await stored(engine))["SecurityCtrlr.BasicAuthPassword"]["value"] is None
        assert PASSWORD not in (await configuration(engine)).values()
        assert (
            await scalar(
                engine, "SELECT count(*) FROM station_configuration_key WHERE value = :p", p=PASSWORD
            )
            == 0
        )

    @SQLITE_ONLY
    @pytest.mark.parametrize("key", ["SecurityCtrlr.BasicAuthPassword", "authorizationkey"])
    async def test_other_spellings_of_the_password_are_refused(
        self, bus: InProcessBus, cp: SimCharger201, key: str
    ) -> None:
        # the API lets only password rotation use AuthorizationKey / BasicAuthPassword
        with pytest.raises(InvalidInput):
            await bus.request("CP-1", ChangeConfiguration(key=key, value=PASSWORD), timeout=5)
        assert not any(a == "SetVariables" for a, _ in cp.received_calls)
