"""What stations report as wrong becomes an incident at once — 1.6 and 2.0.1 fault statuses,
2.0.1 NotifyEvent alerts and security events — deduplicated while open, resolved by the
station's recovery unless the code needs a technician; Faulted and Unavailable connectors
are port outages exactly as long as their status says."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from api.service.incidents import ENTRY, INCIDENT
from api.service.offline import OUTAGE
from api.worker.service import DurableWork
from api.worker.settings import WorkerSettings
from gateway.server import Gateway
from schema.bus import InProcessBus
from schema.models import ConnectorStatusEvent
from tests.conftest import ChargerFactory
from tests.detection_world import FAST_DETECTION, detector, gateway, make_watched_station, rows, wait_for
from tests.ocpp201 import Charger201Factory, connect201, ts

__all__ = ["connect201", "detector", "gateway"]  # fixtures, imported for pytest

STATUS_EVENT = ConnectorStatusEvent.__table__  # type: ignore[attr-defined]


def one(found: list[dict[str, Any]]) -> bool:
    return len(found) == 1


async def status_changed_at(engine: AsyncEngine, status: str) -> Any:
    [row] = await rows(
        engine, STATUS_EVENT, STATUS_EVENT.c.status == status, STATUS_EVENT.c.connector_id == 1
    )
    return row["received_at"]


class TestOcpp16Faults:
    async def test_a_safety_fault_waits_for_a_technician_and_recurs_on_the_same_incident(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        # given a connector that reports a ground failure with the vendor's own code
        await make_watched_station(engine, charge_point_id="CP-F1", heartbeat_s=300)
        cp = await connect_charger("CP-F1")
        await cp.status(1, "Faulted", "GroundFailure", vendorErrorCode="E-GF-01")
        # then an incident opens: critical, the codes kept, not closed by the station
        [incident] = await wait_for(engine, INCIDENT, one)
        assert (incident["kind"], incident["severity"], incident["connector_id"]) == ("fault", "critical", 1)
        assert (incident["error_code"], incident["vendor_error_code"]) == ("GroundFailure", "E-GF-01")
        assert incident["auto_resolve"] is False
        # when the connector reports Available again
        await cp.status(1, "Available")
        await wait_for(engine, ENTRY, one, ENTRY.c.kind == "recovered")
        [outage] = await wait_for(engine, OUTAGE, lambda r: len(r) == 1 and r[0]["ended_at"] is not None)
        # then the recovery is noted once (scans keep running), the incident stays open
        await asyncio.sleep(5 * FAST_DETECTION["CHARGENET_DETECTION_INTERVAL"])
        assert len(await rows(engine, ENTRY, ENTRY.c.kind == "recovered")) == 1
        [incident] = await rows(engine, INCIDENT)
        assert incident["state"] == "open"
        # and the outage is exactly the Faulted interval, linked to the incident
        assert outage["cause"] == "faulted" and outage["incident_id"] == incident["id"]
        assert outage["started_at"] == await status_changed_at(engine, "Faulted")
        assert outage["ended_at"] == await status_changed_at(engine, "Available")
        # when the same fault comes back while the incident is open, it recurs on it
        await cp.status(1, "Faulted", "GroundFailure", vendorErrorCode="E-GF-01")
        [incident] = await wait_for(engine, INCIDENT, lambda r: r[0]["occurrences"] == 2)
        assert incident["state"] == "open"

    async def test_a_fault_that_clears_itself_resolves_its_incident(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        await make_watched_station(engine, charge_point_id="CP-F2", heartbeat_s=300)
        cp = await connect_charger("CP-F2")
        await cp.status(2, "Faulted", "HighTemperature")
        [incident] = await wait_for(engine, INCIDENT, one)
        assert (incident["severity"], incident["auto_resolve"]) == ("high", True)
        await cp.status(2, "Available")
        [incident] = await wait_for(engine, INCIDENT, lambda r: r[0]["state"] == "resolved")
        assert incident["resolved_by"] is None and "Available" in incident["resolution"]

    async def test_an_error_code_on_an_available_connector_is_an_incident_but_no_outage(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        await make_watched_station(engine, charge_point_id="CP-F3", heartbeat_s=300)
        cp = await connect_charger("CP-F3")
        await cp.status(1, "Available", "WeakSignal")
        [incident] = await wait_for(engine, INCIDENT, one)
        assert (incident["error_code"], incident["severity"]) == ("WeakSignal", "low")
        await cp.status(1, "Available", "NoError")
        await wait_for(engine, INCIDENT, lambda r: r[0]["state"] == "resolved")
        assert await rows(engine, OUTAGE) == []

    async def test_a_fault_and_its_recovery_while_no_worker_ran_are_both_caught_up(
        self, engine: AsyncEngine, gateway: Gateway, bus: InProcessBus, connect_charger: ChargerFactory
    ) -> None:
        # given a fault and its recovery reported while the worker is down
        await make_watched_station(engine, charge_point_id="CP-F5", heartbeat_s=300)
        cp = await connect_charger("CP-F5")
        await cp.status(1, "Faulted", "HighTemperature")
        await cp.status(1, "Available")
        # when the worker starts
        work = DurableWork(
            engine, WorkerSettings(**FAST_DETECTION), bus_url="memory", gateway=True, worker=True, bus=bus
        )
        await work.start()
        try:
            # then the durable fault opened its incident and the connector row resolved it
            [incident] = await wait_for(
                engine, INCIDENT, lambda r: len(r) == 1 and r[0]["state"] == "resolved"
            )
            [outage] = await wait_for(engine, OUTAGE, lambda r: len(r) == 1 and r[0]["ended_at"] is not None)
        finally:
            await work.stop()
        assert incident["opened_at"] == await status_changed_at(engine, "Faulted")
        assert incident["resolved_at"] == await status_changed_at(engine, "Available")
        assert outage["started_at"] == incident["opened_at"] and outage["ended_at"] == incident["resolved_at"]

    async def test_an_unavailable_connector_is_an_outage_for_as_long_as_it_is(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        await make_watched_station(engine, charge_point_id="CP-F4", heartbeat_s=300)
        cp = await connect_charger("CP-F4")
        await cp.status(1, "Unavailable")
        [outage] = await wait_for(engine, OUTAGE, one)
        assert (outage["cause"], outage["connector_id"], outage["incident_id"]) == ("unavailable", 1, None)
        await cp.status(1, "Available")
        [outage] = await wait_for(engine, OUTAGE, lambda r: r[0]["ended_at"] is not None)
        assert outage["ended_at"] == await status_changed_at(engine, "Available")
        assert await rows(engine, INCIDENT) == []


NOTIFY_PROBLEM = {
    "eventId": 1,
    "trigger": "Delta",
    "actualValue": "true",
    "techCode": "E-42",
    "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
    "variable": {"name": "Problem"},
    "eventNotificationType": "HardWiredNotification",
}


class TestOcpp201Faults:
    async def test_a_faulted_evse_opens_an_incident(
        self, engine: AsyncEngine, detector: DurableWork, connect201: Charger201Factory
    ) -> None:
        await make_watched_station(engine, charge_point_id="CP-G1", heartbeat_s=300)
        cp = await connect201("CP-G1")
        await cp.call(
            "StatusNotification",
            {"timestamp": ts(), "connectorStatus": "Faulted", "evseId": 1, "connectorId": 1},
        )
        [incident] = await wait_for(engine, INCIDENT, one)
        assert (incident["kind"], incident["connector_id"], incident["error_code"]) == (
            "fault",
            1,
            "OtherError",
        )

    async def test_a_problem_event_opens_an_incident_that_its_clearing_resolves(
        self, engine: AsyncEngine, detector: DurableWork, connect201: Charger201Factory
    ) -> None:
        await make_watched_station(engine, charge_point_id="CP-G2", heartbeat_s=300)
        cp = await connect201("CP-G2")
        await cp.call(
            "NotifyEvent",
            {"generatedAt": ts(), "seqNo": 0, "eventData": [{**NOTIFY_PROBLEM, "timestamp": ts()}]},
        )
        [incident] = await wait_for(engine, INCIDENT, one)
        assert (incident["connector_id"], incident["error_code"], incident["vendor_error_code"]) == (
            1,
            "Problem",
            "E-42",
        )
        # a periodic report of the same component is not an alert and changes nothing
        periodic = {**NOTIFY_PROBLEM, "eventId": 2, "timestamp": ts(), "trigger": "Periodic"}
        periodic.pop("techCode")
        periodic["variable"] = {"name": "AvailabilityState"}
        await cp.call("NotifyEvent", {"generatedAt": ts(), "seqNo": 1, "eventData": [periodic]})
        cleared = {**NOTIFY_PROBLEM, "eventId": 3, "timestamp": ts(), "actualValue": "false", "cleared": True}
        await cp.call("NotifyEvent", {"generatedAt": ts(), "seqNo": 2, "eventData": [cleared]})
        [incident] = await wait_for(engine, INCIDENT, lambda r: r[0]["state"] == "resolved")
        assert incident["occurrences"] == 1

    async def test_security_events_that_may_be_an_attack_open_incidents_routine_ones_do_not(
        self, engine: AsyncEngine, detector: DurableWork, connect201: Charger201Factory
    ) -> None:
        await make_watched_station(engine, charge_point_id="CP-G3", heartbeat_s=300)
        cp = await connect201("CP-G3")
        await cp.call("SecurityEventNotification", {"type": "StartupOfTheDevice", "timestamp": ts()})
        await cp.call("SecurityEventNotification", {"type": "TamperDetectionActivated", "timestamp": ts()})
        [incident] = await wait_for(engine, INCIDENT, one)
        assert (incident["kind"], incident["severity"], incident["auto_resolve"]) == (
            "security",
            "critical",
            False,
        )
        assert incident["error_code"] == "TamperDetectionActivated"
