"""An organisation's own fault code rules decide an incident's severity and whether the
station's recovery may close it (a vendor code rule over an OCPP code rule over the built-in
table, never another organisation's); a Faulted station (connector 0) is an outage on every
one of its ports for exactly as long as it is Faulted."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from api.service.fault_rules import RULE
from api.service.incidents import ENTRY, INCIDENT
from api.service.offline import OUTAGE
from api.worker.service import DurableWork
from api.worker.settings import WorkerSettings
from gateway.server import Gateway
from gateway.simulator import SimConfig
from schema.account_models import AuditEntry
from schema.bus import InProcessBus
from schema.db import session_factory
from schema.models import ConnectorStatusEvent
from schema.timeutil import utcnow
from tests.builders import make_org
from tests.conftest import ApiServer, ChargerFactory
from tests.detection_world import FAST_DETECTION, detector, gateway, make_watched_station, rows, wait_for
from tests.ocpp201 import Charger201Factory, connect201, ts
from tests.orgs_world import World, build_world, code, make_second_org
from tests.test_detection_faults import NOTIFY_PROBLEM

__all__ = ["connect201", "detector", "gateway"]  # fixtures, imported for pytest

SIM_VENDOR = SimConfig.vendor
STATUS_EVENT = ConnectorStatusEvent.__table__  # type: ignore[attr-defined]


def one(found: list[dict[str, Any]]) -> bool:
    return len(found) == 1


async def add_rule(
    engine: AsyncEngine,
    *,
    org_id: int | None = None,
    source: str = "error_code",
    code: str,
    severity: str,
    auto_resolve: bool = True,
    vendor: str = "",
) -> None:
    org_id = org_id or await make_org(engine)
    async with engine.begin() as conn:
        await conn.execute(
            RULE.insert().values(
                organization_id=org_id,
                source=source,
                vendor=vendor,
                code=code,
                severity=severity,
                auto_resolve=auto_resolve,
                updated_at=utcnow(),
            )
        )


class TestOverrides:
    async def test_an_override_changes_the_severity_and_makes_the_code_wait_for_a_technician(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        # given HighTemperature (built in: high, auto-resolved) overridden as critical, confirmed
        await make_watched_station(engine, charge_point_id="CP-R1", heartbeat_s=300)
        await add_rule(engine, code="HighTemperature", severity="critical", auto_resolve=False)
        cp = await connect_charger("CP-R1")
        await cp.status(1, "Faulted", "HighTemperature")
        [incident] = await wait_for(engine, INCIDENT, one)
        assert (incident["severity"], incident["auto_resolve"]) == ("critical", False)
        # when the connector recovers, the recovery is noted but the incident stays open
        await cp.status(1, "Available")
        await wait_for(engine, ENTRY, one, ENTRY.c.kind == "recovered")
        await asyncio.sleep(3 * FAST_DETECTION["CHARGENET_DETECTION_INTERVAL"])
        [incident] = await rows(engine, INCIDENT)
        assert incident["state"] == "open"

    async def test_a_vendor_code_rule_wins_over_the_error_code_rule_and_a_vendor_scoped_one_wins(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        # given a station whose BootNotification names its vendor (the simulator's)
        await make_watched_station(engine, charge_point_id="CP-R2", heartbeat_s=300)
        await add_rule(engine, code="OtherError", severity="high")
        await add_rule(engine, source="vendor_error_code", code="E-7", severity="low")
        await add_rule(engine, source="vendor_error_code", code="E-9", severity="low")
        await add_rule(engine, source="vendor_error_code", code="E-9", severity="critical", vendor=SIM_VENDOR)
        await add_rule(engine, source="vendor_error_code", code="E-9", severity="medium", vendor="Other")
        cp = await connect_charger("CP-R2")
        # when one port reports a code with an any-vendor rule, another one with a rule for its vendor
        await cp.status(1, "Available", "OtherError", vendorErrorCode="E-7")
        await cp.status(2, "Available", "OtherError", vendorErrorCode="E-9")
        found = await wait_for(engine, INCIDENT, lambda r: len(r) == 2)
        assert {i["connector_id"]: (i["vendor_error_code"], i["severity"]) for i in found} == {
            1: ("E-7", "low"),
            2: ("E-9", "critical"),
        }

    async def test_a_vendor_code_rule_sets_the_severity_of_a_201_alert_with_that_tech_code(
        self, engine: AsyncEngine, detector: DurableWork, connect201: Charger201Factory
    ) -> None:
        # given an alert whose component defaults to medium, and a rule for its tech code
        await make_watched_station(engine, charge_point_id="CP-R7", heartbeat_s=300)
        await add_rule(engine, source="vendor_error_code", code="E-42", severity="critical")
        cp = await connect201("CP-R7")
        alert = {**NOTIFY_PROBLEM, "timestamp": ts()}
        await cp.call("NotifyEvent", {"generatedAt": ts(), "seqNo": 0, "eventData": [alert]})
        other = {
            **alert,
            "eventId": 2,
            "techCode": "E-43",
            "component": {"name": "Connector", "evse": {"id": 2}},
        }
        await cp.call("NotifyEvent", {"generatedAt": ts(), "seqNo": 1, "eventData": [other]})
        found = await wait_for(engine, INCIDENT, lambda r: len(r) == 2)
        assert {i["vendor_error_code"]: i["severity"] for i in found} == {
            "E-42": "critical",
            "E-43": "medium",
        }

    async def test_another_organisations_override_does_not_apply(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        await make_watched_station(engine, charge_point_id="CP-R3", heartbeat_s=300)
        rival = await make_second_org(engine, slug="rival")
        await add_rule(engine, org_id=rival, code="WeakSignal", severity="critical", auto_resolve=False)
        await add_rule(engine, org_id=rival, source="vendor_error_code", code="W1", severity="critical")
        cp = await connect_charger("CP-R3")
        await cp.status(1, "Available", "WeakSignal", vendorErrorCode="W1")
        [incident] = await wait_for(engine, INCIDENT, one)
        assert (incident["severity"], incident["auto_resolve"]) == ("low", True)


class TestStationWideFaults:
    async def test_a_faulted_station_is_an_outage_on_every_port_until_it_recovers(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        # given a three-port station that reports itself (connector 0) Faulted
        await make_watched_station(engine, charge_point_id="CP-R4", connectors=3, heartbeat_s=300)
        cp = await connect_charger("CP-R4")
        await cp.status(0, "Faulted", "PowerSwitchFailure")
        # then the station's incident opens and every port has a faulted outage linked to it
        [incident] = await wait_for(engine, INCIDENT, one)
        assert (incident["connector_id"], incident["error_code"]) == (None, "PowerSwitchFailure")
        outages = await wait_for(engine, OUTAGE, lambda r: len(r) == 3)
        assert sorted(o["connector_id"] for o in outages) == [1, 2, 3]
        [faulted_at] = [
            r["received_at"]
            for r in await rows(
                engine, STATUS_EVENT, STATUS_EVENT.c.connector_id == 0, STATUS_EVENT.c.status == "Faulted"
            )
        ]
        assert all(
            (o["cause"], o["incident_id"], o["started_at"], o["ended_at"])
            == ("faulted", incident["id"], faulted_at, None)
            for o in outages
        )
        # and the reconcile job, seeing the ports Available, does not end them while the station is Faulted
        await asyncio.sleep(3 * FAST_DETECTION["CHARGENET_DETECTION_INTERVAL"])
        assert all(o["ended_at"] is None for o in await rows(engine, OUTAGE))
        # when the station recovers, every outage ends at that moment and no new one opens
        await cp.status(0, "Available")
        outages = await wait_for(engine, OUTAGE, lambda r: all(o["ended_at"] is not None for o in r))
        station_changes = await rows(engine, STATUS_EVENT, STATUS_EVENT.c.connector_id == 0)
        recovered_at = station_changes[-1]["received_at"]
        assert [o["ended_at"] for o in outages] == [recovered_at] * 3
        await asyncio.sleep(3 * FAST_DETECTION["CHARGENET_DETECTION_INTERVAL"])
        assert len(await rows(engine, OUTAGE)) == 3

    async def test_a_station_fault_and_recovery_while_no_worker_ran_are_outages_of_that_interval(
        self, engine: AsyncEngine, gateway: Gateway, bus: InProcessBus, connect_charger: ChargerFactory
    ) -> None:
        # given a two-port station Faulted and back while the worker is down
        await make_watched_station(engine, charge_point_id="CP-R6", heartbeat_s=300)
        cp = await connect_charger("CP-R6")
        await cp.status(0, "Faulted")
        await cp.status(0, "Available")
        # when the worker starts
        work = DurableWork(
            engine, WorkerSettings(**FAST_DETECTION), bus_url="memory", gateway=True, worker=True, bus=bus
        )
        await work.start()
        try:
            outages = await wait_for(
                engine, OUTAGE, lambda r: len(r) == 2 and all(o["ended_at"] is not None for o in r)
            )
        finally:
            await work.stop()
        # then each port was out exactly while the station was Faulted
        station_changes = await rows(engine, STATUS_EVENT, STATUS_EVENT.c.connector_id == 0)
        faulted_at, recovered_at = (r["received_at"] for r in station_changes[-2:])
        assert sorted(o["connector_id"] for o in outages) == [1, 2]
        assert {(o["started_at"], o["ended_at"]) for o in outages} == {(faulted_at, recovered_at)}

    async def test_a_port_fault_overlapping_a_station_fault_lasts_until_both_are_over(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        # given port 1 Faulted, then the whole station, then port 1 mended while the station is not
        await make_watched_station(engine, charge_point_id="CP-R8", heartbeat_s=300)
        cp = await connect_charger("CP-R8")
        await cp.status(1, "Faulted", "HighTemperature")
        await wait_for(engine, OUTAGE, one)
        await cp.status(0, "Faulted")
        await wait_for(engine, OUTAGE, lambda r: len(r) == 2)
        await cp.status(1, "Available")
        await asyncio.sleep(3 * FAST_DETECTION["CHARGENET_DETECTION_INTERVAL"])
        # then port 1 is still out: its station cannot charge
        assert [o["ended_at"] for o in await rows(engine, OUTAGE)] == [None, None]
        # when the station recovers, both ports' outages end then
        await cp.status(0, "Available")
        outages = await wait_for(engine, OUTAGE, lambda r: all(o["ended_at"] is not None for o in r))
        station_changes = await rows(engine, STATUS_EVENT, STATUS_EVENT.c.connector_id == 0)
        assert [o["ended_at"] for o in outages] == [station_changes[-1]["received_at"]] * 2
        assert [o["connector_id"] for o in outages] == [1, 2]

    async def test_an_error_code_on_a_station_that_is_not_faulted_is_no_outage(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        await make_watched_station(engine, charge_point_id="CP-R5", heartbeat_s=300)
        cp = await connect_charger("CP-R5")
        await cp.status(0, "Available", "WeakSignal")
        [incident] = await wait_for(engine, INCIDENT, one)
        assert incident["connector_id"] is None
        await asyncio.sleep(3 * FAST_DETECTION["CHARGENET_DETECTION_INTERVAL"])
        assert await rows(engine, OUTAGE) == []


RULES = """
query ($o: ID!) {
  faultCodeRules(organizationId: $o) { id source code vendor severity autoResolve isOverride } }"""
SET = """
mutation ($i: FaultCodeRuleInput!) {
  setFaultCodeRule(input: $i) { id source code vendor severity autoResolve isOverride updatedAt } }"""
REMOVE = """mutation ($id: ID!) { removeFaultCodeRule(id: $id) { id code } }"""


@pytest.fixture
async def world(engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient) -> World:
    return await build_world(engine, api_server.app.state.auth.keys, http)


def rule(table: list[dict[str, Any]], source: str, code_: str, vendor: str | None = None) -> dict[str, Any]:
    [found] = [r for r in table if (r["source"], r["code"], r["vendor"]) == (source, code_, vendor)]
    return found


class TestRulesApi:
    async def test_an_admin_overrides_a_default_and_adds_a_vendor_rule_and_a_viewer_sees_the_table(
        self, world: World, engine: AsyncEngine
    ) -> None:
        o = world.acme_id
        changed = await world.run(
            "admin",
            SET,
            {
                "i": {
                    "organizationId": o,
                    "source": "ERROR_CODE",
                    "code": "HighTemperature",
                    "severity": "CRITICAL",
                    "autoResolve": False,
                }
            },
        )
        assert not changed.get("errors"), changed
        vendor = await world.run(
            "owner",
            SET,
            {
                "i": {
                    "organizationId": o,
                    "source": "VENDOR_ERROR_CODE",
                    "code": "E-12",
                    "vendor": "Voltix",
                    "severity": "LOW",
                }
            },
        )
        assert vendor["data"]["setFaultCodeRule"]["isOverride"] is True
        table = (await world.run("viewer", RULES, {"o": o}))["data"]["faultCodeRules"]
        # the override replaces the default in place, the vendor rule joins, the rest are defaults
        assert rule(table, "ERROR_CODE", "HighTemperature") | {"id": None} == {
            "id": None,
            "source": "ERROR_CODE",
            "code": "HighTemperature",
            "vendor": None,
            "severity": "CRITICAL",
            "autoResolve": False,
            "isOverride": True,
        }
        assert rule(table, "VENDOR_ERROR_CODE", "E-12", "Voltix")["severity"] == "LOW"
        assert rule(table, "ERROR_CODE", "GroundFailure") == {
            "id": None,
            "source": "ERROR_CODE",
            "code": "GroundFailure",
            "vendor": None,
            "severity": "CRITICAL",
            "autoResolve": False,
            "isOverride": False,
        }
        assert rule(table, "SECURITY_EVENT", "TamperDetectionActivated")["autoResolve"] is False
        assert len([r for r in table if r["code"] == "HighTemperature"]) == 1
        # setting the same code again replaces the rule, it adds none
        again = await world.run(
            "admin",
            SET,
            {
                "i": {
                    "organizationId": o,
                    "source": "ERROR_CODE",
                    "code": "HighTemperature",
                    "severity": "LOW",
                }
            },
        )
        assert again["data"]["setFaultCodeRule"]["id"] == changed["data"]["setFaultCodeRule"]["id"]
        # and removing it brings the built-in default back; every change is audited
        removed = await world.run("admin", REMOVE, {"id": again["data"]["setFaultCodeRule"]["id"]})
        assert not removed.get("errors"), removed
        table = (await world.run("viewer", RULES, {"o": o}))["data"]["faultCodeRules"]
        assert rule(table, "ERROR_CODE", "HighTemperature")["severity"] == "HIGH"
        async with session_factory(engine)() as s:
            actions = (
                await s.exec(
                    select(AuditEntry.action).where(col(AuditEntry.target_type) == "fault_code_rule")
                )
            ).all()
        assert sorted(actions) == ["fault_rule.remove", "fault_rule.set", "fault_rule.set", "fault_rule.set"]

    async def test_only_network_managers_of_the_organisation_change_rules_and_only_its_members_read_them(
        self, world: World
    ) -> None:
        o = world.acme_id
        attempt = {
            "i": {"organizationId": o, "source": "ERROR_CODE", "code": "WeakSignal", "severity": "HIGH"}
        }
        for who in ("operator", "technician", "viewer", "globex-owner"):
            assert code(await world.run(who, SET, attempt)) == "FORBIDDEN", who
        assert code(await world.run("globex-owner", RULES, {"o": o})) == "FORBIDDEN"
        assert code(await world.run("outsider", RULES, {"o": o})) == "FORBIDDEN"
        made = await world.run("owner", SET, attempt)
        rule_id = made["data"]["setFaultCodeRule"]["id"]
        assert code(await world.run("globex-owner", REMOVE, {"id": rule_id})) == "NOT_FOUND"
        assert code(await world.run("operator", REMOVE, {"id": rule_id})) == "FORBIDDEN"
        bad = {"i": {**attempt["i"], "source": "ERROR_CODE", "vendor": "Voltix"}}
        assert code(await world.run("owner", SET, bad)) == "INVALID_INPUT"
