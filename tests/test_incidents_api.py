"""Operators see their organisation's incidents, act on them, and follow them live in
`fleetAlerts`; other organisations and drivers see none of it."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.service import incidents
from api.service.incidents import Problem
from api.worker.service import DurableWork
from schema.account_models import AuditEntry
from schema.incident_models import IncidentKind, IncidentSeverity
from schema.timeutil import utcnow
from tests.conftest import ApiServer, ChargerFactory
from tests.detection_world import detector, gateway, make_watched_station, rows
from tests.graphql_client import GraphQLWS
from tests.orgs_world import World, build_world, code, gid

__all__ = ["detector", "gateway"]  # fixtures, imported for pytest

AUDIT = AuditEntry.__table__  # type: ignore[attr-defined]

FLEET_ALERTS = """
subscription ($org: ID!) { fleetAlerts(organizationId: $org) {
  change incidentId kind severity state title connectorId chargePointId station { chargePointId }
} }"""
INCIDENTS = """
query ($state: [IncidentStateGQL!], $kind: [IncidentKindGQL!], $station: ID) {
  incidents(state: $state, kind: $kind, stationId: $station) {
    totalCount edges { node { id kind severity state title } }
  }
}"""
INCIDENT = """
query ($id: ID!) { incident(id: $id) {
  id kind severity state connectorId errorCode vendorErrorCode occurrences openedAt
  acknowledgedAt acknowledgedBy resolvedAt resolvedBy resolution
  station { chargePointId }
  entries { kind text userId userName detail }
} }"""
ACK = "mutation ($id: ID!) { acknowledgeIncident(id: $id) { state acknowledgedBy } }"
COMMENT = "mutation ($id: ID!, $t: String!) { commentOnIncident(id: $id, text: $t) { state } }"
RESOLVE = "mutation ($id: ID!, $r: String!) { resolveIncident(id: $id, resolution: $r) { state resolvedBy } }"


@pytest.fixture
async def world(engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient) -> World:
    return await build_world(engine, api_server.app.state.auth.keys, http)


async def open_fault(engine: AsyncEngine, station_id: int, code_: str, connector: int = 1) -> int:
    async with engine.begin() as conn:
        change = await incidents.open_or_recur(
            conn,
            Problem(
                station_id=station_id,
                connector_id=connector,
                kind=IncidentKind.FAULT,
                severity=IncidentSeverity.HIGH,
                dedup_key=incidents.dedup_key(IncidentKind.FAULT, station_id, connector, code_),
                title=f"connector {connector}: {code_}",
                error_code=code_,
                vendor_error_code="V-1",
                evidence={"error_code": code_},
            ),
            at=utcnow(),
        )
    return change.incident_id


class TestFleetAlerts:
    async def test_a_faulted_status_reaches_the_operators_stream(
        self,
        engine: AsyncEngine,
        world: World,
        api_server: ApiServer,
        detector: DurableWork,
        connect_charger: ChargerFactory,
    ) -> None:
        # given an operator of acme following its fleet, and a station of acme
        await make_watched_station(engine, charge_point_id="CP-A1", heartbeat_s=300)
        live = await GraphQLWS.open(
            api_server.ws_url, payload={"Authorization": f"Bearer {world.tokens['operator']}"}
        )
        await live.subscribe(FLEET_ALERTS, {"org": world.acme_id})
        cp = await connect_charger("CP-A1")
        # when a connector faults
        await cp.status(2, "Faulted", "OverCurrentFailure")
        # then the new incident is on the stream
        alert = (await live.next_payload(5))["fleetAlerts"]
        assert alert["change"] == "opened" and alert["kind"] == "FAULT" and alert["severity"] == "CRITICAL"
        assert (alert["state"], alert["connectorId"], alert["chargePointId"]) == ("OPEN", 2, "CP-A1")
        assert alert["station"] == {"chargePointId": "CP-A1"}
        # and what people do with it follows
        result = await world.run("technician", ACK, {"id": alert["incidentId"]})
        assert result["data"]["acknowledgeIncident"]["state"] == "ACKNOWLEDGED"
        acknowledged = (await live.next_payload(5))["fleetAlerts"]
        assert (acknowledged["change"], acknowledged["state"]) == ("acknowledged", "ACKNOWLEDGED")
        await live.close()

    async def test_the_stream_starts_with_the_unresolved_incidents(
        self, engine: AsyncEngine, world: World, api_server: ApiServer
    ) -> None:
        sid = await make_watched_station(engine, charge_point_id="CP-A5")
        resolved = await open_fault(engine, sid, "WeakSignal")
        async with engine.begin() as conn:
            await incidents.resolve(conn, resolved, at=utcnow(), user_id=None, resolution="ok")
        still_open = await open_fault(engine, sid, "ReaderFailure")
        token = world.tokens["technician"]
        live = await GraphQLWS.open(api_server.ws_url, payload={"Authorization": f"Bearer {token}"})
        await live.subscribe(FLEET_ALERTS, {"org": world.acme_id})
        first = (await live.next_payload(5))["fleetAlerts"]
        assert (first["change"], first["incidentId"]) == ("snapshot", gid("Incident", still_open))
        await live.close()

    @pytest.mark.parametrize("who", ["globex-owner", "outsider"])
    async def test_other_organisations_and_drivers_may_not_follow_it(
        self, world: World, api_server: ApiServer, who: str
    ) -> None:
        live = await GraphQLWS.open(
            api_server.ws_url, payload={"Authorization": f"Bearer {world.tokens[who]}"}
        )
        await live.subscribe(FLEET_ALERTS, {"org": world.acme_id})
        message = await live.receive(5)
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "FORBIDDEN"
        await live.close()


class TestReading:
    async def test_operators_read_their_incidents_with_timeline_others_see_none(
        self, engine: AsyncEngine, world: World
    ) -> None:
        sid = await make_watched_station(engine, charge_point_id="CP-A2")
        older = await open_fault(engine, sid, "HighTemperature")
        newer = await open_fault(engine, sid, "PowerMeterFailure", connector=2)
        # newest first, filtered
        page = (await world.run("viewer", INCIDENTS, {"state": ["OPEN"], "kind": ["FAULT"]}))["data"]
        ids = [e["node"]["id"] for e in page["incidents"]["edges"]]
        assert ids == [gid("Incident", newer), gid("Incident", older)]
        assert page["incidents"]["totalCount"] == 2
        none = (await world.run("viewer", INCIDENTS, {"kind": ["OFFLINE"]}))["data"]["incidents"]
        assert none["edges"] == []
        # one incident with its station and timeline
        one = (await world.run("technician", INCIDENT, {"id": gid("Incident", older)}))["data"]["incident"]
        assert (one["errorCode"], one["vendorErrorCode"], one["occurrences"]) == ("HighTemperature", "V-1", 1)
        assert one["station"] == {"chargePointId": "CP-A2"}
        assert [e["kind"] for e in one["entries"]] == ["opened"]
        assert '"error_code": "HighTemperature"' in one["entries"][0]["detail"]
        # another organisation and a driver see nothing
        for who in ("globex-owner", "outsider"):
            assert (await world.run(who, INCIDENTS))["data"]["incidents"]["edges"] == []
            assert (await world.run(who, INCIDENT, {"id": gid("Incident", older)}))["data"][
                "incident"
            ] is None


class TestActing:
    async def test_acknowledge_comment_resolve_each_on_the_timeline_and_audited(
        self, engine: AsyncEngine, world: World
    ) -> None:
        sid = await make_watched_station(engine, charge_point_id="CP-A3")
        pk = await open_fault(engine, sid, "ConnectorLockFailure")
        iid = gid("Incident", pk)
        ack = (await world.run("technician", ACK, {"id": iid}))["data"]["acknowledgeIncident"]
        assert ack == {"state": "ACKNOWLEDGED", "acknowledgedBy": world.account("technician")}
        assert code(await world.run("operator", ACK, {"id": iid})) == "INCIDENT_STATE_CONFLICT"
        await world.run("operator", COMMENT, {"id": iid, "t": "replacing the lock actuator"})
        done = (await world.run("operator", RESOLVE, {"id": iid, "r": "actuator replaced"}))["data"]
        assert done["resolveIncident"] == {"state": "RESOLVED", "resolvedBy": world.account("operator")}
        assert (
            code(await world.run("operator", RESOLVE, {"id": iid, "r": "again"})) == "INCIDENT_STATE_CONFLICT"
        )
        one = (await world.run("viewer", INCIDENT, {"id": iid}))["data"]["incident"]
        assert [(e["kind"], e["userName"]) for e in one["entries"]] == [
            ("opened", None),
            ("acknowledged", "Technician"),
            ("comment", "Operator"),
            ("resolved", "Operator"),
        ]
        assert one["resolution"] == "actuator replaced"
        audited = await rows(engine, AUDIT, AUDIT.c.target_type == "incident")
        assert [(a["action"], a["result"]) for a in audited] == [
            ("incident.acknowledge", "OK"),
            ("incident.acknowledge", "INCIDENT_STATE_CONFLICT"),
            ("incident.comment", "OK"),
            ("incident.resolve", "OK"),
            ("incident.resolve", "INCIDENT_STATE_CONFLICT"),
        ]

    async def test_readers_without_the_right_and_other_organisations_may_not_act(
        self, engine: AsyncEngine, world: World
    ) -> None:
        sid = await make_watched_station(engine, charge_point_id="CP-A4")
        iid = gid("Incident", await open_fault(engine, sid, "ReaderFailure"))
        assert code(await world.run("viewer", ACK, {"id": iid})) == "FORBIDDEN"
        assert code(await world.run("finance", COMMENT, {"id": iid, "t": "hm"})) == "FORBIDDEN"
        assert code(await world.run("globex-owner", RESOLVE, {"id": iid, "r": "x"})) == "NOT_FOUND"
        assert code(await world.run("outsider", ACK, {"id": iid})) == "NOT_FOUND"
        assert code(await world.run("operator", COMMENT, {"id": iid, "t": "   "})) == "INVALID_INPUT"
