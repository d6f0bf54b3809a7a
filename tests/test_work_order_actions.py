"""A technician acts on the station of its work order — unlock, status trigger, availability,
reset, diagnostics — and a real charger receives each command; the command log says who; taking
the station out of service during the visit is recorded as scheduled maintenance."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry import relay

from api.auth.roles import Permission
from tests.account_builders import make_api_key
from tests.conftest import ApiServer, ChargerFactory
from tests.dbutil import fetch
from tests.graphql_client import data, gql
from tests.test_access_matrix import gid
from tests.work_order_world import Crew, create_order, make_crew, move

ACTION = """
mutation ($i: WorkOrderStationActionInput!) { runWorkOrderStationAction(input: $i) {
  outcome stationStatus exclusionRecorded command { name actor { label } }
  file { id kind status } workOrder { state timeline { kind text } } } }"""
ORDER_FILES = """
query ($id: ID!) { workOrder(id: $id) { attachments { kind file { status fileName contentBase64 } } } }"""
PLAIN_UNLOCK = """
mutation ($s: ID!) { unlockConnector(input: {stationId: $s, connectorId: 1}) { outcome } }"""


def code(result: dict[str, Any]) -> str | None:
    errors = result.get("errors") or []
    return errors[0]["extensions"]["code"] if errors else None  # type: ignore[no-any-return]


@pytest.fixture
async def crew(engine: AsyncEngine, api_server: ApiServer) -> Crew:
    return await make_crew(engine, api_server)


async def visit(http: httpx.AsyncClient, crew: Crew, *, start: bool = True) -> str:
    """An order assigned to the technician, in progress unless `start` is False."""
    order = await create_order(http, crew, assigneeId=crew.account("tech"))
    if start:
        data(await move(http, crew.tokens["tech"], order["id"], "IN_PROGRESS"))
    return str(order["id"])


async def act(
    http: httpx.AsyncClient, token: str, order_id: str, action: str, connector: int | None = None
) -> dict[str, Any]:
    variables = {"i": {"workOrderId": order_id, "action": action, "connectorId": connector}}
    return await gql(http, ACTION, variables, token=token)


class TestStationActions:
    async def test_the_assigned_technician_unlocks_and_triggers_on_a_real_charger(
        self, http: httpx.AsyncClient, engine: AsyncEngine, crew: Crew, connect_charger: ChargerFactory
    ) -> None:
        # given a connected station and a visit of the technician
        cp = await connect_charger("CP-1")
        order = await visit(http, crew)
        tech = crew.tokens["tech"]
        # its role alone does not let it unlock a connector
        assert (
            code(await gql(http, PLAIN_UNLOCK, {"s": gid("Station", crew.station)}, token=tech))
            == "FORBIDDEN"
        )
        # when it unlocks and triggers a status from the work order
        unlocked = data(await act(http, tech, order, "UNLOCK", 1))["runWorkOrderStationAction"]
        triggered = data(await act(http, tech, order, "TRIGGER_STATUS", 1))["runWorkOrderStationAction"]
        # then the charger received both, and the command log names the technician
        assert ("UnlockConnector", {"connectorId": 1}) in cp.received_calls
        assert (
            "TriggerMessage",
            {"requestedMessage": "StatusNotification", "connectorId": 1},
        ) in cp.received_calls
        # (an unplugged simulator answers the unlock as the station would: its own word)
        assert unlocked["stationStatus"] is not None and triggered["outcome"] == "ACCEPTED"
        for result, name in ((unlocked, "UnlockConnector"), (triggered, "TriggerMessage")):
            assert result["command"] == {"name": name, "actor": {"label": f"user:{crew.users['tech']}"}}
        logged = await fetch(engine, "SELECT name, actor_user_id FROM station_command ORDER BY id")
        assert [(r["name"], r["actor_user_id"]) for r in logged] == [
            ("UnlockConnector", crew.users["tech"]),
            ("TriggerMessage", crew.users["tech"]),
        ]
        actions = [e["text"] for e in triggered["workOrder"]["timeline"] if e["kind"] == "action"]
        assert actions == ["unlock", "trigger_status"]

    async def test_a_reset_reaches_the_charger(
        self, http: httpx.AsyncClient, crew: Crew, connect_charger: ChargerFactory
    ) -> None:
        cp = await connect_charger("CP-1")
        order = await visit(http, crew, start=False)
        result = data(await act(http, crew.tokens["tech"], order, "RESET_HARD"))["runWorkOrderStationAction"]
        assert result["outcome"] == "ACCEPTED"
        assert ("Reset", {"type": "Hard"}) in cp.received_calls

    async def test_only_the_assignee_or_a_manager_acts_and_only_while_the_order_is_open(
        self, http: httpx.AsyncClient, engine: AsyncEngine, crew: Crew, connect_charger: ChargerFactory
    ) -> None:
        cp = await connect_charger("CP-1")
        order = await visit(http, crew)
        assert code(await act(http, crew.tokens["tech2"], order, "UNLOCK", 1)) == "NOT_FOUND"
        assert code(await act(http, crew.tokens["viewer"], order, "UNLOCK", 1)) == "FORBIDDEN"
        assert code(await act(http, crew.tokens["tech"], order, "UNLOCK")) == "INVALID_INPUT"
        managed = data(await act(http, crew.tokens["manager"], order, "TRIGGER_STATUS"))
        assert managed["runWorkOrderStationAction"]["outcome"] == "ACCEPTED"
        # an integration managing work orders may change availability from an order, but resets
        # and triggers stay a diagnoser's commands
        key = await make_api_key(
            engine, organization_id=crew.org, permissions=frozenset({Permission.WORK_ORDERS})
        )
        assert code(await act(http, key, order, "TRIGGER_STATUS")) == "FORBIDDEN"
        by_key = data(await act(http, key, order, "MAKE_OPERATIVE"))["runWorkOrderStationAction"]
        assert by_key["outcome"] == "ACCEPTED"
        data(await move(http, crew.tokens["tech"], order, "RESOLVED"))
        assert code(await act(http, crew.tokens["tech"], order, "UNLOCK", 1)) == "INVALID_INPUT"
        assert not any(a == "UnlockConnector" for a, _ in cp.received_calls)
        assert len(await fetch(engine, "SELECT id FROM station_command")) == 2


class TestMaintenanceAvailability:
    async def test_out_of_service_during_the_visit_is_excluded_from_uptime_until_back(
        self, http: httpx.AsyncClient, engine: AsyncEngine, crew: Crew, connect_charger: ChargerFactory
    ) -> None:
        cp = await connect_charger("CP-1")
        tech = crew.tokens["tech"]
        # before the visit starts, taking the station out records nothing
        early = await visit(http, crew, start=False)
        first = data(await act(http, tech, early, "MAKE_INOPERATIVE"))["runWorkOrderStationAction"]
        assert (first["outcome"], first["exclusionRecorded"]) == ("ACCEPTED", False)
        data(await act(http, tech, early, "MAKE_OPERATIVE"))
        # when the technician, on the visit, takes the station out of service
        order = await visit(http, crew)
        out = data(await act(http, tech, order, "MAKE_INOPERATIVE"))["runWorkOrderStationAction"]
        # then the charger was told, and a scheduled-maintenance exclusion runs from now
        assert ("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}) in cp.received_calls
        assert out["exclusionRecorded"] is True
        (row,) = await fetch(engine, "SELECT * FROM outage_exclusion")
        assert row["reason"] == "scheduled_maintenance"
        assert row["work_order_id"] == int(relay.GlobalID.from_id(order).node_id)
        assert (row["connector_id"], row["ended_at"], row["created_by"]) == (None, None, crew.users["tech"])
        # when it puts the station back in service, the exclusion ends
        data(await act(http, tech, order, "MAKE_OPERATIVE"))
        assert ("ChangeAvailability", {"connectorId": 0, "type": "Operative"}) in cp.received_calls
        (row,) = await fetch(engine, "SELECT * FROM outage_exclusion")
        assert row["ended_at"] is not None
        # a connector taken out and the order resolved: that exclusion ends with the order
        data(await act(http, tech, order, "MAKE_INOPERATIVE", 1))
        data(await move(http, tech, order, "RESOLVED"))
        rows = await fetch(engine, "SELECT connector_id, ended_at FROM outage_exclusion ORDER BY id")
        assert [r["connector_id"] for r in rows] == [None, 1]
        assert all(r["ended_at"] is not None for r in rows)


class TestDiagnostics:
    async def test_diagnostics_uploaded_by_the_station_are_attached_to_the_order(
        self, http: httpx.AsyncClient, crew: Crew, connect_charger: ChargerFactory
    ) -> None:
        await connect_charger("CP-1", speed=60)
        order = await visit(http, crew)
        result = data(await act(http, crew.tokens["tech"], order, "DIAGNOSTICS"))["runWorkOrderStationAction"]
        assert result["outcome"] == "ACCEPTED" and result["file"]["kind"] == "diagnostics"
        for _ in range(300):  # the simulator uploads after its own short delays
            found = data(await gql(http, ORDER_FILES, {"id": order}, token=crew.tokens["tech"]))["workOrder"]
            if found["attachments"] and found["attachments"][0]["file"]["status"] == "uploaded":
                break
            await asyncio.sleep(0.05)
        (attachment,) = found["attachments"]
        assert attachment["kind"] == "diagnostics" and attachment["file"]["status"] == "uploaded"
        assert base64.b64decode(attachment["file"]["contentBase64"])
