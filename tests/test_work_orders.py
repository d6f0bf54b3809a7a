"""Work orders: the state machine with who and when, technicians' scoped queue by SLA, SLA
rules and breaches, automatic orders for incidents, checklist, parts, labour and the annual
maintenance cost, photos, and the live `workOrderUpdated` stream."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.service import incidents
from api.service.work_order_jobs import create_for_incidents, mark_sla_breaches
from schema.bus import InProcessBus
from schema.events import (
    IncidentChanged,
    WorkOrderChanged,
    organization_incidents_topic,
    organization_work_orders_topic,
)
from schema.incident_models import IncidentKind, IncidentSeverity
from schema.timeutil import utcnow
from tests.conftest import ApiServer
from tests.dbutil import fetch
from tests.graphql_client import GraphQLWS, data, gql
from tests.test_access_matrix import gid
from tests.work_order_world import ASSIGN, Crew, create_order, make_crew, move

MINE = "{ myWorkOrders { id title severity slaDueAt } }"
LIST = "{ workOrders(first: 50) { edges { node { id title } } } }"
ORDER = """
query ($id: ID!) { workOrder(id: $id) { id state slaBreached slaBreachedAt labourCost partsCost totalCost
  currency parts { name quantity unitCost totalCost } checklist { id text done doneBy doneAt }
  attachments { kind file { kind status fileName contentType sizeBytes contentBase64 } } } }"""
SETTINGS = """
mutation ($i: WorkOrderSettingsInput!) { updateWorkOrderSettings(input: $i) {
  slaCriticalMinutes autoCreateFor } }"""
PART = """
mutation ($id: ID!, $p: WorkOrderPartInput!) { addWorkOrderPart(id: $id, input: $p) { partsCost } }"""
LABOUR = "mutation ($id: ID!, $a: Int!) { setWorkOrderLabourCost(id: $id, amount: $a) { labourCost } }"
CHECK = """
mutation ($id: ID!, $item: ID!) { setWorkOrderChecklistItem(id: $id, itemId: $item, done: true) {
  checklist { done doneBy } } }"""
NOTE = "mutation ($id: ID!, $t: String!) { addWorkOrderNote(id: $id, text: $t) { timeline { kind text } } }"
PHOTO = """
mutation ($id: ID!, $p: PhotoInput!) { addWorkOrderPhoto(id: $id, photo: $p) { attachments { kind } } }"""
COSTS = """
query ($o: ID!, $y: Int!) { maintenanceCosts(organizationId: $o, year: $y) {
  workOrders partsCost labourCost totalCost currency station { chargePointId } } }"""
SUBSCRIBE = """
subscription ($o: ID!) { workOrderUpdated(organizationId: $o) { workOrderId change state title } }"""


def code(result: dict[str, object]) -> str | None:
    errors = result.get("errors") or []
    return errors[0]["extensions"]["code"] if errors else None  # type: ignore[index]


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture
async def crew(engine: AsyncEngine, api_server: ApiServer) -> Crew:
    return await make_crew(engine, api_server)


class TestLifecycle:
    async def test_an_order_goes_from_open_to_verified_stamped_with_who_and_when(
        self, http: httpx.AsyncClient, crew: Crew
    ) -> None:
        # given an order a manager created with a checklist
        before = utcnow()
        order = await create_order(http, crew, checklist=["Inspect cable", "Test charge"])
        assert (order["state"], order["source"], order["assigneeId"]) == ("OPEN", "MANUAL", None)
        assert [c["text"] for c in order["checklist"]] == ["Inspect cable", "Test charge"]
        # the default SLA of a HIGH order is 24 hours
        due = when(order["slaDueAt"])
        assert before + timedelta(hours=24) <= due <= utcnow() + timedelta(hours=24)
        # when it is assigned, started and resolved by its technician and verified by the manager
        assigned = data(
            await gql(
                http, ASSIGN, {"id": order["id"], "a": crew.account("tech")}, token=crew.tokens["manager"]
            )
        )
        assert assigned["assignWorkOrder"]["state"] == "ASSIGNED"
        assert assigned["assignWorkOrder"]["assigneeId"] == crew.account("tech")
        data(await move(http, crew.tokens["tech"], order["id"], "IN_PROGRESS"))
        data(await move(http, crew.tokens["tech"], order["id"], "RESOLVED", "replaced the cable"))
        done = data(await move(http, crew.tokens["manager"], order["id"], "VERIFIED"))["changeWorkOrderState"]
        # then each state has its time and the timeline says who moved it where
        assert done["state"] == "VERIFIED"
        stamps = [done[k] for k in ("assignedAt", "startedAt", "resolvedAt", "verifiedAt")]
        assert all(stamps) and stamps == sorted(stamps)
        assert done["cancelledAt"] is None
        moves = [(e["by"], e["fromState"], e["toState"]) for e in done["timeline"] if e["kind"] == "state"]
        assert moves == [
            (crew.account("manager"), None, "OPEN"),
            (crew.account("manager"), "OPEN", "ASSIGNED"),
            (crew.account("tech"), "ASSIGNED", "IN_PROGRESS"),
            (crew.account("tech"), "IN_PROGRESS", "RESOLVED"),
            (crew.account("manager"), "RESOLVED", "VERIFIED"),
        ]
        assert "replaced the cable" in [e["text"] for e in done["timeline"]]

    async def test_moves_the_machine_has_not_are_refused(self, http: httpx.AsyncClient, crew: Crew) -> None:
        order = await create_order(http, crew)
        # an open order cannot be started before someone is assigned
        assert code(await move(http, crew.tokens["manager"], order["id"], "IN_PROGRESS")) == "INVALID_INPUT"
        await gql(http, ASSIGN, {"id": order["id"], "a": crew.account("tech")}, token=crew.tokens["manager"])
        # nor resolved before it is started
        assert code(await move(http, crew.tokens["tech"], order["id"], "RESOLVED")) == "INVALID_INPUT"
        # the technician does not sign off or cancel its own work
        assert code(await move(http, crew.tokens["tech"], order["id"], "CANCELLED")) == "FORBIDDEN"
        # another technician does not even see it
        assert code(await move(http, crew.tokens["tech2"], order["id"], "IN_PROGRESS")) == "NOT_FOUND"
        # cancelled is final
        data(await move(http, crew.tokens["manager"], order["id"], "CANCELLED"))
        assert code(await move(http, crew.tokens["manager"], order["id"], "IN_PROGRESS")) == "INVALID_INPUT"

    async def test_only_members_who_work_on_orders_can_be_assigned(
        self, http: httpx.AsyncClient, crew: Crew
    ) -> None:
        order = await create_order(http, crew)
        for who in ("viewer", "driver", "finance"):
            result = await gql(
                http, ASSIGN, {"id": order["id"], "a": crew.account(who)}, token=crew.tokens["manager"]
            )
            assert code(result) == "INVALID_INPUT", who
        ok = await gql(
            http, ASSIGN, {"id": order["id"], "a": crew.account("tech2")}, token=crew.tokens["manager"]
        )
        assert data(ok)["assignWorkOrder"]["assigneeId"] == crew.account("tech2")


class TestQueues:
    async def test_a_technician_sees_its_own_orders_soonest_due_first(
        self, http: httpx.AsyncClient, crew: Crew
    ) -> None:
        # given orders of several severities for two technicians
        made = {}
        for title, severity, who in (
            ("low", "LOW", "tech"),
            ("critical", "CRITICAL", "tech"),
            ("other", "CRITICAL", "tech2"),
            ("medium", "MEDIUM", "tech"),
            ("unassigned", "HIGH", None),
        ):
            extra = {"assigneeId": crew.account(who)} if who else {}
            made[title] = await create_order(http, crew, severity=severity, title=title, **extra)
        # then the technician's queue is its own, by SLA due time
        queue = data(await gql(http, MINE, token=crew.tokens["tech"]))["myWorkOrders"]
        assert [o["title"] for o in queue] == ["critical", "medium", "low"]
        # and lists and ids of others' orders stay hidden from it
        listed = data(await gql(http, LIST, token=crew.tokens["tech"]))["workOrders"]["edges"]
        assert {e["node"]["title"] for e in listed} == {"critical", "medium", "low"}
        hidden = await gql(http, ORDER, {"id": made["other"]["id"]}, token=crew.tokens["tech"])
        assert data(hidden)["workOrder"] is None
        # while the manager sees every order of the organisation
        everything = data(await gql(http, LIST, token=crew.tokens["manager"]))["workOrders"]["edges"]
        assert len(everything) == 5
        # finance and drivers do not read work orders
        for who in ("finance", "driver", "viewer"):
            assert code(await gql(http, LIST, token=crew.tokens[who])) == "FORBIDDEN", who


class TestSla:
    async def test_settings_set_the_due_time_and_a_breach_is_marked_once_and_announced(
        self, http: httpx.AsyncClient, engine: AsyncEngine, bus: InProcessBus, crew: Crew
    ) -> None:
        # given a 30-minute SLA for critical orders
        settings = {
            "organizationId": gid("Organization", crew.org),
            "slaCriticalMinutes": 30,
            "slaHighMinutes": 600,
            "slaMediumMinutes": 1440,
            "slaLowMinutes": 2880,
            "autoCreateFor": ["CRITICAL"],
        }
        assert code(await gql(http, SETTINGS, {"i": settings}, token=crew.tokens["tech"])) == "FORBIDDEN"
        saved = data(await gql(http, SETTINGS, {"i": settings}, token=crew.tokens["manager"]))
        assert saved["updateWorkOrderSettings"] == {"slaCriticalMinutes": 30, "autoCreateFor": ["CRITICAL"]}
        before = utcnow()
        order = await create_order(http, crew, severity="CRITICAL", assigneeId=crew.account("tech"))
        due = when(order["slaDueAt"])
        assert before + timedelta(minutes=30) <= due <= utcnow() + timedelta(minutes=30)
        assert order["slaBreached"] is False
        sub = bus.subscribe(organization_work_orders_topic(crew.org))
        # when the SLA job runs before and after the due time
        assert (await mark_sla_breaches(engine, bus, now=due - timedelta(minutes=1))).breached == 0
        assert (await mark_sla_breaches(engine, bus, now=due + timedelta(minutes=1))).breached == 1
        assert (await mark_sla_breaches(engine, bus, now=due + timedelta(minutes=2))).breached == 0
        # then the order is flagged once, and the breach was announced
        event = await sub.next(2)
        assert isinstance(event, WorkOrderChanged) and event.change == "sla_breached"
        sub.close()
        shown = data(await gql(http, ORDER, {"id": order["id"]}, token=crew.tokens["tech"]))["workOrder"]
        assert shown["slaBreached"] is True
        assert when(shown["slaBreachedAt"]) == due + timedelta(minutes=1)


class TestFromIncidents:
    async def test_incidents_of_the_configured_severities_get_one_order_each(
        self, http: httpx.AsyncClient, engine: AsyncEngine, bus: InProcessBus, crew: Crew
    ) -> None:
        # given a critical and a low incident on the station
        now = utcnow()
        async with engine.begin() as conn:
            for severity, code_ in (
                (IncidentSeverity.CRITICAL, "GroundFailure"),
                (IncidentSeverity.LOW, "Weak"),
            ):
                await incidents.open_or_recur(
                    conn,
                    incidents.Problem(
                        station_id=crew.station,
                        connector_id=1,
                        kind=IncidentKind.FAULT,
                        severity=severity,
                        dedup_key=incidents.dedup_key(IncidentKind.FAULT, crew.station, 1, code_),
                        title=f"Connector 1: {code_}",
                    ),
                    at=now,
                )
        # when the job runs twice (the defaults create for critical and high only)
        alerts = bus.subscribe(organization_incidents_topic(crew.org))
        assert (await create_for_incidents(engine, bus)).created == 1
        assert (await create_for_incidents(engine, bus)).created == 0
        # fleetAlerts learns the incident is being taken care of
        alert = await alerts.next(2)
        alerts.close()
        assert isinstance(alert, IncidentChanged) and alert.change == "updated"
        # then one order exists, for the critical incident, linked both ways
        orders = await fetch(engine, "SELECT * FROM work_order")
        assert [(o["title"], o["source"], o["severity"]) for o in orders] == [
            ("Connector 1: GroundFailure", "incident", "critical")
        ]
        entries = await fetch(
            engine, "SELECT kind FROM incident_entry WHERE incident_id = :i", i=orders[0]["incident_id"]
        )
        assert "work_order" in [e["kind"] for e in entries]
        # the incident lists its order for those who manage orders, and for nobody else
        query = "query ($i: ID!) { incident(id: $i) { workOrders { title } } }"
        incident_id = {"i": gid("Incident", orders[0]["incident_id"])}
        seen = data(await gql(http, query, incident_id, token=crew.tokens["manager"]))["incident"]
        assert seen["workOrders"] == [{"title": "Connector 1: GroundFailure"}]
        for who in ("viewer", "tech"):  # network:read only; a technician the order is not assigned to
            seen = data(await gql(http, query, incident_id, token=crew.tokens[who]))["incident"]
            assert seen == {"workOrders": []}
        # and once the organisation asks for low incidents too, the low one gets its order
        settings = {
            "organizationId": gid("Organization", crew.org),
            "slaCriticalMinutes": 240,
            "slaHighMinutes": 1440,
            "slaMediumMinutes": 4320,
            "slaLowMinutes": 10080,
            "autoCreateFor": ["CRITICAL", "LOW"],
        }
        data(await gql(http, SETTINGS, {"i": settings}, token=crew.tokens["manager"]))
        assert (await create_for_incidents(engine)).created == 1
        assert len(await fetch(engine, "SELECT id FROM work_order")) == 2

    async def test_racing_workers_create_one_order_per_incident(
        self, engine: AsyncEngine, crew: Crew
    ) -> None:
        # given ten critical incidents
        async with engine.begin() as conn:
            for connector in range(10):
                await incidents.open_or_recur(
                    conn,
                    incidents.Problem(
                        station_id=crew.station,
                        connector_id=connector,
                        kind=IncidentKind.FAULT,
                        severity=IncidentSeverity.CRITICAL,
                        dedup_key=incidents.dedup_key(IncidentKind.FAULT, crew.station, connector, "X"),
                        title=f"Connector {connector}: X",
                    ),
                    at=utcnow(),
                )
        # when two workers run the job at the same moment
        results = await asyncio.gather(create_for_incidents(engine), create_for_incidents(engine))
        # then each incident has exactly one order
        assert sum(r.created for r in results) == 10
        rows = await fetch(engine, "SELECT incident_id FROM work_order")
        assert len(rows) == len({r["incident_id"] for r in rows}) == 10


class TestRecords:
    async def test_checklist_parts_labour_and_the_years_cost_per_station(
        self, http: httpx.AsyncClient, crew: Crew
    ) -> None:
        # given an order the technician works on
        order = await create_order(http, crew, checklist=["Check RCD"], assigneeId=crew.account("tech"))
        oid, tech = order["id"], crew.tokens["tech"]
        data(await move(http, tech, oid, "IN_PROGRESS"))
        # when it ticks the checklist, notes, adds parts and labour
        ticked = data(await gql(http, CHECK, {"id": oid, "item": order["checklist"][0]["id"]}, token=tech))
        assert ticked["setWorkOrderChecklistItem"]["checklist"] == [
            {"done": True, "doneBy": crew.account("tech")}
        ]
        noted = data(await gql(http, NOTE, {"id": oid, "t": "RCD tripped twice"}, token=tech))
        assert {"kind": "note", "text": "RCD tripped twice"} in noted["addWorkOrderNote"]["timeline"]
        part = {"name": "Type 2 cable", "partNumber": "T2-32A-5M", "quantity": 1, "unitCost": 18_900}
        data(await gql(http, PART, {"id": oid, "p": part}, token=tech))
        fuse = {"name": "Fuse", "quantity": 3, "unitCost": 250}
        assert (
            data(await gql(http, PART, {"id": oid, "p": fuse}, token=tech))["addWorkOrderPart"]["partsCost"]
            == 19_650
        )
        data(await gql(http, LABOUR, {"id": oid, "a": 12_000}, token=tech))
        bad = await gql(http, PART, {"id": oid, "p": {"name": "x", "quantity": 0, "unitCost": 1}}, token=tech)
        assert code(bad) == "INVALID_INPUT"
        # then the order adds it up
        shown = data(await gql(http, ORDER, {"id": oid}, token=crew.tokens["manager"]))["workOrder"]
        assert (shown["partsCost"], shown["labourCost"], shown["totalCost"], shown["currency"]) == (
            19_650,
            12_000,
            31_650,
            "EUR",
        )
        assert [p["totalCost"] for p in shown["parts"]] == [18_900, 750]
        # and once resolved it counts in the station's maintenance cost of the year
        data(await move(http, tech, oid, "RESOLVED"))
        year = utcnow().year
        variables = {"o": gid("Organization", crew.org), "y": year}
        costs = data(await gql(http, COSTS, variables, token=crew.tokens["finance"]))["maintenanceCosts"]
        assert costs == [
            {
                "workOrders": 1,
                "partsCost": 19_650,
                "labourCost": 12_000,
                "totalCost": 31_650,
                "currency": "EUR",
                "station": {"chargePointId": "CP-1"},
            }
        ]
        assert data(await gql(http, COSTS, {**variables, "y": year - 1}, token=crew.tokens["finance"])) == {
            "maintenanceCosts": []
        }
        assert code(await gql(http, COSTS, variables, token=crew.tokens["viewer"])) == "FORBIDDEN"
        assert code(await gql(http, COSTS, variables, token=crew.tokens["driver"])) == "NOT_FOUND"
        # a done order takes no more parts
        late = await gql(http, PART, {"id": oid, "p": fuse}, token=crew.tokens["manager"])
        data(await move(http, crew.tokens["manager"], oid, "VERIFIED"))
        assert code(late) is None
        assert (
            code(await gql(http, PART, {"id": oid, "p": fuse}, token=crew.tokens["manager"]))
            == "INVALID_INPUT"
        )

    async def test_a_later_mutation_in_the_same_request_sees_the_earlier_ones_work(
        self, http: httpx.AsyncClient, crew: Crew
    ) -> None:
        order = await create_order(http, crew, assigneeId=crew.account("tech"))
        both = """
        mutation ($id: ID!) {
          a: addWorkOrderPart(id: $id, input: {name: "Fuse", unitCost: 100}) {
            parts { name } partsCost }
          b: addWorkOrderPart(id: $id, input: {name: "Relay", unitCost: 900}) {
            parts { name } partsCost } }"""
        result = data(await gql(http, both, {"id": order["id"]}, token=crew.tokens["tech"]))
        assert result["a"] == {"parts": [{"name": "Fuse"}], "partsCost": 100}
        assert result["b"] == {"parts": [{"name": "Fuse"}, {"name": "Relay"}], "partsCost": 1000}

    async def test_a_photo_is_kept_with_the_order(self, http: httpx.AsyncClient, crew: Crew) -> None:
        order = await create_order(http, crew, assigneeId=crew.account("tech"))
        jpeg = b"\xff\xd8\xff\xe0" + b"photo" * 100
        photo = {
            "fileName": "cable.jpg",
            "contentType": "image/jpeg",
            "dataBase64": base64.b64encode(jpeg).decode(),
        }
        data(await gql(http, PHOTO, {"id": order["id"], "p": photo}, token=crew.tokens["tech"]))
        shown = data(await gql(http, ORDER, {"id": order["id"]}, token=crew.tokens["tech"]))["workOrder"]
        (attachment,) = shown["attachments"]
        assert attachment["kind"] == "photo"
        assert (attachment["file"]["fileName"], attachment["file"]["sizeBytes"]) == ("cable.jpg", len(jpeg))
        assert base64.b64decode(attachment["file"]["contentBase64"]) == jpeg
        wrong = {**photo, "contentType": "application/x-sh"}
        assert (
            code(await gql(http, PHOTO, {"id": order["id"], "p": wrong}, token=crew.tokens["tech"]))
            == "INVALID_INPUT"
        )


class TestLive:
    async def test_managers_follow_every_order_and_technicians_their_own(
        self, http: httpx.AsyncClient, api_server: ApiServer, crew: Crew
    ) -> None:
        # given an order of the technician, and subscribers
        order = await create_order(http, crew, assigneeId=crew.account("tech"), title="Mine")
        org = {"o": gid("Organization", crew.org)}
        clients = {}
        for who in ("manager", "tech", "tech2"):
            clients[who] = await GraphQLWS.open(
                api_server.ws_url, payload={"Authorization": f"Bearer {crew.tokens[who]}"}
            )
            await clients[who].subscribe(SUBSCRIBE, org)
        try:
            # the snapshot: the manager and the technician see the order, the other technician nothing
            for who in ("manager", "tech"):
                first = (await clients[who].next_payload())["workOrderUpdated"]
                assert (first["workOrderId"], first["change"], first["state"]) == (
                    order["id"],
                    "snapshot",
                    "ASSIGNED",
                )
            # when the technician starts it and another order of tech2 is created
            data(await move(http, crew.tokens["tech"], order["id"], "IN_PROGRESS"))
            theirs = await create_order(http, crew, assigneeId=crew.account("tech2"), title="Theirs")
            # then the manager sees both, each technician only its own
            seen_by_manager = [
                (await clients["manager"].next_payload())["workOrderUpdated"] for _ in range(3)
            ]
            assert [(u["workOrderId"], u["change"]) for u in seen_by_manager] == [
                (order["id"], "state"),
                (theirs["id"], "created"),
                (theirs["id"], "assigned"),
            ]
            mine = (await clients["tech"].next_payload())["workOrderUpdated"]
            assert (mine["change"], mine["state"]) == ("state", "IN_PROGRESS")
            other = (await clients["tech2"].next_payload())["workOrderUpdated"]
            assert (other["workOrderId"], other["change"]) == (theirs["id"], "assigned")
            # when the manager hands the technician's order to tech2, both hear of it
            handed = {"id": order["id"], "a": crew.account("tech2")}
            data(await gql(http, ASSIGN, handed, token=crew.tokens["manager"]))
            for who in ("tech", "tech2"):
                update = (await clients[who].next_payload())["workOrderUpdated"]
                assert (update["workOrderId"], update["change"]) == (order["id"], "assigned"), who
        finally:
            for client in clients.values():
                await client.close()
