"""Configuration templates per station model: operators state what a model's configuration
should be, see each station's drift from it (as last read), push the fixable part through the
command log, and read a 2.0.1 station's device model as NotifyReport described it.

Real gateway, real simulated chargers (1.6 and 2.0.1) over sockets, real API server, SQLite and
PostgreSQL. The scenario's stations are moved into an organisation built with every role, so
each role's access is the real one.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.configuration.drift import best_template, is_secret_key, same_value
from api.configuration.jobs import DRIFTED_ACTION, reread_stale_configurations
from gateway.sim_v201 import SimCharger201
from gateway.simulator import SimCharger
from schema.bus import InProcessBus
from schema.events import StationReported, station_topic
from schema.timeutil import utcnow
from tests.builders import make_station
from tests.conftest import ApiServer, ChargerFactory
from tests.dbutil import scalar
from tests.graphql_client import gql
from tests.ocpp201 import Charger201Factory, connect201, eventually
from tests.test_access_matrix import World, build_world, gid

__all__ = ["connect201"]  # the fixture, imported for pytest

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

CREATE = """
mutation ($input: CreateConfigurationTemplateInput!) { createConfigurationTemplate(input: $input) {
  id name vendor model firmwarePrefix createdBy updatedBy entries { key value apply } } }"""
UPDATE = """
mutation ($id: ID!, $input: ConfigurationTemplateInput!) {
  updateConfigurationTemplate(id: $id, input: $input) { id name updatedBy entries { key value apply } } }"""
DELETE = "mutation ($id: ID!) { deleteConfigurationTemplate(id: $id) }"
TEMPLATES = """
query ($o: ID) { configurationTemplates(organizationId: $o) { totalCount edges { node { id name } } } }"""


def names(data: dict[str, Any]) -> set[str]:
    return {e["node"]["name"] for e in data["configurationTemplates"]["edges"]}


DRIFT = """
query ($s: ID!) { configurationDrift(stationId: $s) {
  status drifted configurationReadAt stale driftedCount missingCount readOnlyCount
  template { id name }
  keys { key expected actual state apply fixable } } }"""
TEMPLATE_DRIFT = """
query ($id: ID!) { node(id: $id) { ... on ConfigurationTemplate {
  drift { stationCount driftedCount notReadCount staleCount
    stations { status station { chargePointId } keys { key state } } } } } }"""
APPLY = """
mutation ($input: ApplyConfigurationTemplateInput!) { applyConfigurationTemplate(input: $input) {
  sentCount acceptedCount
  results { message station { chargePointId } template { name }
    keys { key expected previous state sent outcome stationStatus message } } } }"""
READ = "mutation ($s: ID!) { readConfiguration(input: {stationId: $s}) { outcome } }"
COMMANDS = """
query ($s: ID) { commands(stationId: $s, first: 20) { edges { node { name payload outcome } } } }"""
DEVICE_MODEL = """
query ($s: ID!, $c: String, $v: String) { deviceModel(stationId: $s, component: $c, variable: $v) {
  attributeCount truncated reportedAt
  components { name instance evseId connectorId
    variables { name instance dataType unit
      attributes { type value mutability reportedAt key } } } } }"""

# What the depot expects of its 1.6 AC chargers, spelt with the cases operators type.
AC_ENTRIES = [
    {"key": "meterValueSampleInterval", "value": "30", "apply": True},  # drifted (60), fixable
    {"key": "ConnectionTimeOut", "value": "60", "apply": True},  # in sync
    {"key": "LocalPreAuthorize", "value": "False", "apply": True},  # in sync ("false")
    {"key": "NumberOfConnectors", "value": "4", "apply": True},  # read-only with 1
    {"key": "FreeVendEnabled", "value": "true", "apply": True},  # not reported
    {"key": "StopTransactionOnInvalidId", "value": "false"},  # drifted, watched only
]


async def call(http: httpx.AsyncClient, token: str, query: str, **variables: Any) -> dict[str, Any]:
    result = await gql(http, query, variables, token=token)
    assert not result.get("errors"), result
    data: dict[str, Any] = result["data"]
    return data


def codes(result: dict[str, Any]) -> set[str]:
    return {e.get("extensions", {}).get("code") for e in result.get("errors") or []}


async def configuration_read(engine: AsyncEngine, cpid: str) -> bool:
    at = await scalar(
        engine, "SELECT configuration_read_at FROM charging_station WHERE charge_point_id = :c", c=cpid
    )
    return at is not None


async def move_to(engine: AsyncEngine, station_id: int, organization_id: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE charging_station SET organization_id = :o WHERE id = :s"),
            {"o": organization_id, "s": station_id},
        )


def template_input(world: World, name: str, *, model: str = "SimAC22", **extra: Any) -> dict[str, Any]:
    return {
        "organizationId": gid("Organization", world.org),
        "name": name,
        "vendor": "ChargeNetSim",
        "model": model,
        "entries": AC_ENTRIES,
        **extra,
    }


@pytest.fixture
async def world(engine: AsyncEngine, api_server: ApiServer) -> World:
    return await build_world(engine, api_server.app.state.auth.keys)


@pytest.fixture
async def rival(engine: AsyncEngine, api_server: ApiServer) -> World:
    return await build_world(engine, api_server.app.state.auth.keys)


@pytest.fixture
async def ac(engine: AsyncEngine, world: World, station: int, connect_charger: ChargerFactory) -> SimCharger:
    """A 1.6 ChargeNetSim SimAC22 of `world`'s organisation whose configuration was read."""
    await move_to(engine, station, world.org)
    cp = await connect_charger("CP-1")
    await eventually(lambda: configuration_read(engine, "CP-1"))
    return cp


class TestDriftOfA16Station:
    async def test_drifted_missing_and_read_only_keys_and_when_they_were_read(
        self, http: httpx.AsyncClient, world: World, station: int, ac: SimCharger
    ) -> None:
        # given a template for the station's model and one for another model
        owner = world.tokens["owner"]
        mine = (await call(http, owner, CREATE, input=template_input(world, "AC depot")))[
            "createConfigurationTemplate"
        ]
        other = await call(http, owner, CREATE, input=template_input(world, "DC", model="SimDC50"))
        # when the technician looks at the station's drift
        drift = (await call(http, world.tokens["technician"], DRIFT, s=gid("Station", station)))[
            "configurationDrift"
        ]
        # then the station's own model's template governs it
        assert drift["template"] == {"id": mine["id"], "name": "AC depot"}
        assert (drift["status"], drift["drifted"], drift["stale"]) == ("DRIFTED", True, False)
        assert drift["configurationReadAt"] is not None
        keys = {k["key"]: (k["state"], k["actual"], k["fixable"]) for k in drift["keys"]}
        assert keys == {
            "FreeVendEnabled": ("MISSING", None, False),
            "meterValueSampleInterval": ("DRIFTED", "60", True),
            "NumberOfConnectors": ("READ_ONLY", "1", False),
            "StopTransactionOnInvalidId": ("DRIFTED", "true", False),
        }
        assert (drift["driftedCount"], drift["missingCount"], drift["readOnlyCount"]) == (2, 1, 1)
        # and the other model's template governs nothing
        other_id = other["createConfigurationTemplate"]["id"]
        report = (await call(http, owner, TEMPLATE_DRIFT, id=other_id))["node"]["drift"]
        assert (report["stationCount"], report["stations"]) == (0, [])
        report = (await call(http, owner, TEMPLATE_DRIFT, id=mine["id"]))["node"]["drift"]
        assert (report["stationCount"], report["driftedCount"], report["notReadCount"]) == (1, 1, 0)
        assert report["stations"][0]["station"] == {"chargePointId": "CP-1"}

    async def test_a_firmware_specific_template_wins_and_other_firmware_falls_back(
        self, http: httpx.AsyncClient, world: World, station: int, ac: SimCharger
    ) -> None:
        owner = world.tokens["owner"]
        general = await call(http, owner, CREATE, input=template_input(world, "AC"))
        await call(http, owner, CREATE, input=template_input(world, "AC 1.4", firmwarePrefix="1.4"))
        await call(http, owner, CREATE, input=template_input(world, "AC 2", firmwarePrefix="2."))
        drift = (await call(http, owner, DRIFT, s=gid("Station", station)))["configurationDrift"]
        assert drift["template"]["name"] == "AC 1.4"  # the station runs 1.4.2
        general_id = general["createConfigurationTemplate"]["id"]
        report = (await call(http, owner, TEMPLATE_DRIFT, id=general_id))["node"]["drift"]
        assert report["stationCount"] == 0  # governed by the more specific one


class TestApply:
    async def test_apply_fixes_the_writable_key_and_the_reread_shows_it_gone(
        self, http: httpx.AsyncClient, world: World, station: int, ac: SimCharger
    ) -> None:
        # given the template and the drifted station
        owner = world.tokens["owner"]
        template = (await call(http, owner, CREATE, input=template_input(world, "AC depot")))[
            "createConfigurationTemplate"
        ]
        # when the operator applies the template to every station it governs
        applied = (await call(http, world.tokens["operator"], APPLY, input={"templateId": template["id"]}))[
            "applyConfigurationTemplate"
        ]
        # then only the drifted, writable, apply-flagged key was sent, in the station's spelling
        assert (applied["sentCount"], applied["acceptedCount"]) == (1, 1)
        [result] = applied["results"]
        assert (result["station"], result["template"]) == ({"chargePointId": "CP-1"}, {"name": "AC depot"})
        keys = {k["key"]: k for k in result["keys"]}
        fixed = keys["meterValueSampleInterval"]
        assert (fixed["sent"], fixed["outcome"], fixed["stationStatus"], fixed["previous"]) == (
            True,
            "ACCEPTED",
            "Accepted",
            "60",
        )
        assert (
            "ChangeConfiguration",
            {"key": "MeterValueSampleInterval", "value": "30"},
        ) in ac.received_calls
        assert ac.config.value("MeterValueSampleInterval") == "30"
        # the read-only and missing keys are reported as not fixable, the watched one as not flagged
        assert (keys["NumberOfConnectors"]["sent"], keys["NumberOfConnectors"]["state"]) == (
            False,
            "READ_ONLY",
        )
        assert "read-only" in keys["NumberOfConnectors"]["message"]
        assert (keys["FreeVendEnabled"]["sent"], keys["FreeVendEnabled"]["state"]) == (False, "MISSING")
        assert keys["StopTransactionOnInvalidId"]["sent"] is False
        assert ac.config.value("StopTransactionOnInvalidId") == "true"
        assert not any(
            a == "ChangeConfiguration" and p["key"] in ("NumberOfConnectors", "FreeVendEnabled")
            for a, p in ac.received_calls
        )
        # and the change is in the command log like any other
        log = (await call(http, owner, COMMANDS, s=gid("Station", station)))["commands"]["edges"]
        assert [(e["node"]["name"], e["node"]["outcome"]) for e in log] == [
            ("ChangeConfiguration", "ACCEPTED")
        ]
        # when the configuration is read again from the station
        assert (await call(http, owner, READ, s=gid("Station", station)))["readConfiguration"]["outcome"] == (
            "ACCEPTED"
        )
        # then the fixed key is no longer drifted; what could not be fixed still is
        drift = (await call(http, owner, DRIFT, s=gid("Station", station)))["configurationDrift"]
        assert {k["key"] for k in drift["keys"]} == {
            "FreeVendEnabled",
            "NumberOfConnectors",
            "StopTransactionOnInvalidId",
        }
        # and applying again has nothing left to send
        again = (await call(http, owner, APPLY, input={"stationIds": [gid("Station", station)]}))[
            "applyConfigurationTemplate"
        ]
        assert again["sentCount"] == 0

    @SQLITE_ONLY
    async def test_a_station_without_a_template_or_a_read_gets_nothing(
        self, engine: AsyncEngine, http: httpx.AsyncClient, world: World, station: int
    ) -> None:
        owner = world.tokens["owner"]
        await move_to(engine, station, world.org)
        applied = (await call(http, owner, APPLY, input={"stationIds": [gid("Station", station)]}))[
            "applyConfigurationTemplate"
        ]
        assert applied["results"][0]["message"] == "no configuration template matches this station"
        drift = (await call(http, owner, DRIFT, s=gid("Station", station)))["configurationDrift"]
        assert (drift["status"], drift["template"]) == ("NO_TEMPLATE", None)


class TestWritingTemplates:
    @SQLITE_ONLY
    async def test_update_replaces_entries_and_delete_removes_it(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        owner = world.tokens["owner"]
        created = (await call(http, owner, CREATE, input=template_input(world, "AC")))[
            "createConfigurationTemplate"
        ]
        assert created["createdBy"] == created["updatedBy"]
        update = {
            "name": "AC v2",
            "vendor": "ChargeNetSim",
            "model": "SimAC22",
            "entries": [{"key": "HeartbeatInterval", "value": "120", "apply": True}],
        }
        updated = (await call(http, world.tokens["operator"], UPDATE, id=created["id"], input=update))[
            "updateConfigurationTemplate"
        ]
        assert updated["name"] == "AC v2"
        assert updated["entries"] == [{"key": "HeartbeatInterval", "value": "120", "apply": True}]
        assert updated["updatedBy"] != created["createdBy"]
        assert "AC v2" in names(await call(http, owner, TEMPLATES, o=gid("Organization", world.org)))
        assert (await call(http, owner, DELETE, id=created["id"]))["deleteConfigurationTemplate"] == created[
            "id"
        ]
        assert "AC v2" not in names(await call(http, owner, TEMPLATES, o=gid("Organization", world.org)))

    @SQLITE_ONLY
    @pytest.mark.parametrize(
        ("entries", "needle"),
        [
            ([{"key": "AuthorizationKey", "value": "0123456789abcdef"}], "password"),
            ([{"key": "SecurityCtrlr.BasicAuthPassword", "value": "0123456789abcdef"}], "password"),
            ([{"key": "authorizationkey", "value": "0123456789abcdef"}], "password"),
            (
                [{"key": "HeartbeatInterval", "value": "1"}, {"key": "heartbeatinterval", "value": "2"}],
                "twice",
            ),
            ([{"key": "K" * 51, "value": "1"}], "characters"),
            ([{"key": "K", "value": "v" * 501}], "longer"),
        ],
    )
    async def test_refused_entries(
        self, http: httpx.AsyncClient, world: World, entries: list[dict[str, Any]], needle: str
    ) -> None:
        result = await gql(
            http, CREATE, {"input": template_input(world, "x", entries=entries)}, token=world.tokens["owner"]
        )
        assert codes(result) == {"INVALID_INPUT"}, result
        assert needle in result["errors"][0]["message"]

    @SQLITE_ONLY
    async def test_names_are_unique_per_organisation(
        self, http: httpx.AsyncClient, world: World, rival: World
    ) -> None:
        await call(http, world.tokens["owner"], CREATE, input=template_input(world, "AC"))
        again = await gql(http, CREATE, {"input": template_input(world, "ac")}, token=world.tokens["owner"])
        assert codes(again) == {"TEMPLATE_NAME_TAKEN"}
        await call(
            http, rival.tokens["owner"], CREATE, input=template_input(rival, "AC")
        )  # another org: fine


class TestAccess:
    async def test_roles_and_another_organisation(
        self, http: httpx.AsyncClient, world: World, rival: World, station: int, ac: SimCharger
    ) -> None:
        # given a template of world's organisation governing its drifted station
        template = (await call(http, world.tokens["owner"], CREATE, input=template_input(world, "AC")))[
            "createConfigurationTemplate"
        ]
        s = gid("Station", station)
        # a technician reads drift but may neither write templates nor apply them
        tech = world.tokens["technician"]
        assert (await call(http, tech, DRIFT, s=s))["configurationDrift"]["drifted"] is True
        assert codes(await gql(http, APPLY, {"input": {"templateId": template["id"]}}, token=tech)) == {
            "FORBIDDEN"
        }
        assert codes(await gql(http, CREATE, {"input": template_input(world, "T")}, token=tech)) == {
            "FORBIDDEN"
        }
        # a viewer does not even see drift, templates or the device model
        viewer = world.tokens["viewer"]
        assert (await call(http, viewer, DRIFT, s=s))["configurationDrift"] is None
        assert (await call(http, viewer, TEMPLATES))["configurationTemplates"]["totalCount"] == 0
        assert "AC" in names(await call(http, tech, TEMPLATES))
        assert (await call(http, viewer, DEVICE_MODEL, s=s))["deviceModel"] is None
        # another organisation's owner sees nothing and changes nothing
        spy = rival.tokens["owner"]
        assert (await call(http, spy, DRIFT, s=s))["configurationDrift"] is None
        assert "AC" not in names(await call(http, spy, TEMPLATES))
        assert (await call(http, spy, "query ($id: ID!) { node(id: $id) { id } }", id=template["id"]))[
            "node"
        ] is None
        assert (await call(http, spy, DEVICE_MODEL, s=s))["deviceModel"] is None
        assert codes(await gql(http, APPLY, {"input": {"templateId": template["id"]}}, token=spy)) == {
            "NOT_FOUND"
        }
        assert codes(await gql(http, APPLY, {"input": {"stationIds": [s]}}, token=spy)) == {"FORBIDDEN"}
        update = {"name": "mine", "vendor": "x", "model": "y", "entries": []}
        assert codes(await gql(http, UPDATE, {"id": template["id"], "input": update}, token=spy)) == {
            "NOT_FOUND"
        }
        assert codes(await gql(http, DELETE, {"id": template["id"]}, token=spy)) == {"NOT_FOUND"}
        foreign = template_input(world, "planted")
        assert codes(await gql(http, CREATE, {"input": foreign}, token=spy)) == {"FORBIDDEN"}
        # and nothing was sent to the station
        assert not any(a == "ChangeConfiguration" for a, _ in ac.received_calls)


class TestOcpp201:
    @pytest.fixture
    async def dc(
        self, engine: AsyncEngine, world: World, connect201: Charger201Factory
    ) -> tuple[int, SimCharger201]:
        station = await make_station(engine, charge_point_id="CP-201", connectors=2)
        await move_to(engine, station, world.org)
        cp = await connect201("CP-201", connectors=[22_000, 11_000], model="SimDC50")
        await eventually(lambda: configuration_read(engine, "CP-201"))
        return station, cp

    async def test_drift_and_apply_by_the_mirrored_keys(
        self, http: httpx.AsyncClient, world: World, dc: tuple[int, SimCharger201]
    ) -> None:
        station, cp = dc
        owner = world.tokens["owner"]
        entries = [
            {"key": "ocppcommctrlr.heartbeatinterval", "value": "120", "apply": True},
            {"key": "SecurityCtrlr.Identity", "value": "CP-OTHER", "apply": True},
            {"key": "OCPPCommCtrlr.MessageTimeout[Default]", "value": "30", "apply": True},
            {"key": "OCPPCommCtrlr.NoSuchVariable", "value": "1", "apply": True},
        ]
        template = (
            await call(
                http, owner, CREATE, input=template_input(world, "DC", model="SimDC50", entries=entries)
            )
        )["createConfigurationTemplate"]
        await call(http, owner, CREATE, input=template_input(world, "AC"))  # the 1.6 model's: no match
        drift = (await call(http, owner, DRIFT, s=gid("Station", station)))["configurationDrift"]
        assert drift["template"]["name"] == "DC"
        assert {k["key"]: (k["state"], k["actual"]) for k in drift["keys"]} == {
            "ocppcommctrlr.heartbeatinterval": ("DRIFTED", "300"),
            "SecurityCtrlr.Identity": ("READ_ONLY", "CP-201"),
            "OCPPCommCtrlr.NoSuchVariable": ("MISSING", None),
        }
        applied = (await call(http, owner, APPLY, input={"templateId": template["id"]}))[
            "applyConfigurationTemplate"
        ]
        assert (applied["sentCount"], applied["acceptedCount"]) == (1, 1)
        [sent] = [p for a, p in cp.received_calls if a == "SetVariables"]
        assert sent["setVariableData"][0]["variable"] == {"name": "HeartbeatInterval"}
        assert cp.heartbeat_interval == 120
        await call(http, owner, READ, s=gid("Station", station))
        drift = (await call(http, owner, DRIFT, s=gid("Station", station)))["configurationDrift"]
        assert {k["key"] for k in drift["keys"]} == {"SecurityCtrlr.Identity", "OCPPCommCtrlr.NoSuchVariable"}

    async def test_the_device_model_as_reported(
        self, engine: AsyncEngine, http: httpx.AsyncClient, world: World, dc: tuple[int, SimCharger201]
    ) -> None:
        station, cp = dc
        tech = world.tokens["technician"]
        model = (await call(http, tech, DEVICE_MODEL, s=gid("Station", station)))["deviceModel"]
        stored = await scalar(
            engine, "SELECT count(*) FROM device_model_variable WHERE station_id = :s", s=station
        )
        assert model["attributeCount"] == stored == len(cp.device.variables)
        assert model["truncated"] is False and model["reportedAt"] is not None
        by_name = {(c["name"], c["instance"], c["evseId"], c["connectorId"]): c for c in model["components"]}
        comm = {
            (v["name"], v["instance"]): v for v in by_name[("OCPPCommCtrlr", None, None, None)]["variables"]
        }
        heartbeat = comm[("HeartbeatInterval", None)]
        assert (heartbeat["dataType"], heartbeat["unit"]) == ("integer", "s")
        [actual] = heartbeat["attributes"]
        assert (actual["type"], actual["value"], actual["mutability"], actual["key"]) == (
            "Actual",
            "300",
            "ReadWrite",
            "OCPPCommCtrlr.HeartbeatInterval",
        )
        assert comm[("MessageAttempts", "TransactionEvent")]["attributes"][0]["key"] == (
            "OCPPCommCtrlr.MessageAttempts[TransactionEvent]"
        )
        secrets = {v["name"]: v for v in by_name[("SecurityCtrlr", None, None, None)]["variables"]}
        assert secrets["BasicAuthPassword"]["attributes"][0]["value"] is None
        # narrowed by component and variable, without regard to case
        power = (await call(http, tech, DEVICE_MODEL, s=gid("Station", station), c="evse", v="POWER"))[
            "deviceModel"
        ]
        assert [(c["evseId"], c["variables"][0]["attributes"][0]["value"]) for c in power["components"]] == [
            (1, "22000"),
            (2, "11000"),
        ]
        assert power["components"][1]["variables"][0]["attributes"][0]["key"] == "EVSE@2.Power"
        # the key each attribute names is the one stationConfiguration mirrors
        mirrored = await call(
            http,
            tech,
            "query ($s: ID!) { stationConfiguration(stationId: $s) { key } }",
            s=gid("Station", station),
        )
        assert "EVSE@2.Power" in {k["key"] for k in mirrored["stationConfiguration"]}


class TestDriftRules:
    """The comparison rules on their own (api/configuration/drift.py)."""

    @pytest.mark.parametrize(
        ("expected", "actual", "same"),
        [
            ("true", "True", True),
            ("30", " 30 ", True),
            ("30", "030", False),
            ("a,b", "A,b", False),
            ("x", None, False),
        ],
    )
    def test_values(self, expected: str, actual: str | None, same: bool) -> None:
        assert same_value(expected, actual) is same

    @pytest.mark.parametrize(
        ("key", "secret"),
        [
            ("AuthorizationKey", True),
            (" basicauthpassword", True),
            ("SecurityCtrlr.BasicAuthPassword/Actual", True),
            ("SecurityCtrlr.BasicAuthPassword[1]", True),
            ("SecurityCtrlr.Identity", False),
            ("AuthorizationCacheEnabled", False),
        ],
    )
    def test_secret_keys(self, key: str, secret: bool) -> None:
        assert is_secret_key(key) is secret

    def test_the_longest_matching_firmware_prefix_wins(self) -> None:
        station = SimpleNamespace(vendor="V", model="M", firmware_version="2.1.7")
        general = SimpleNamespace(id=1, vendor="V", model="M", firmware_prefix=None)
        two = SimpleNamespace(id=2, vendor="V", model="M", firmware_prefix="2.")
        two_one = SimpleNamespace(id=3, vendor="V", model="M", firmware_prefix="2.1")
        other = SimpleNamespace(id=4, vendor="V", model="M2", firmware_prefix=None)
        assert best_template([general, two, two_one, other], station) is two_one
        assert best_template([general, other], station) is general
        assert best_template([other], station) is None
        assert best_template([two], SimpleNamespace(vendor="V", model="M", firmware_version=None)) is None


class TestStaleConfigurations:
    async def test_the_worker_rereads_a_stale_governed_station_and_announces_its_drift(
        self,
        engine: AsyncEngine,
        bus: InProcessBus,
        http: httpx.AsyncClient,
        world: World,
        station: int,
        ac: SimCharger,
    ) -> None:
        # given a station read two days ago, and changed on its own display since
        owner = world.tokens["owner"]
        await call(http, owner, CREATE, input=template_input(world, "AC"))
        old = utcnow() - timedelta(days=2)
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE charging_station SET configuration_read_at = :t WHERE id = :s"),
                {"t": old, "s": station},
            )
        drift = (await call(http, owner, DRIFT, s=gid("Station", station)))["configurationDrift"]
        assert drift["stale"] is True
        ac.config.set_value("ConnectionTimeOut", "90")
        events = bus.subscribe(station_topic(station))
        # when the worker's job runs
        result = await reread_stale_configurations(engine, bus, command_timeout_s=5)
        # then the station was read again, its drift is current, and the drift was announced
        assert (result.read, result.failed, result.drifted) == ([station], [], [station])
        drift = (await call(http, owner, DRIFT, s=gid("Station", station)))["configurationDrift"]
        assert drift["stale"] is False
        assert {k["key"]: k["actual"] for k in drift["keys"]}["ConnectionTimeOut"] == "90"
        announced = [
            e for e in await _drain(events) if isinstance(e, StationReported) and e.action == DRIFTED_ACTION
        ]
        assert [(e.detail["template"], e.detail["drifted"], e.detail["missing"]) for e in announced] == [
            ("AC", 3, 1)
        ]
        # and a fresh station is left alone on the next run
        assert (await reread_stale_configurations(engine, bus, command_timeout_s=5)).read == []

    @SQLITE_ONLY
    async def test_stations_no_template_governs_are_not_read(
        self, engine: AsyncEngine, bus: InProcessBus, world: World, station: int, ac: SimCharger
    ) -> None:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE charging_station SET configuration_read_at = NULL"))
        assert (await reread_stale_configurations(engine, bus, command_timeout_s=5)).read == []


async def _drain(sub: Any) -> list[Any]:
    out = []
    while True:
        try:
            out.append(await sub.next(0.2))
        except TimeoutError:
            return out
