"""Preventive maintenance: inspection plans per station model or location turn into work orders
when due — after N days, N sessions or N kWh, whichever first — once per due inspection, and
the counters restart when the inspection's order is done."""

from __future__ import annotations

from datetime import timedelta
from itertools import count

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from api.service.inspections import create_due_orders
from schema.db import session_factory
from schema.models import ChargingStation, Transaction
from schema.timeutil import utcnow
from schema.work_models import SessionSummary
from tests.builders import make_station
from tests.conftest import ApiServer
from tests.dbutil import fetch
from tests.graphql_client import data, gql
from tests.test_access_matrix import gid
from tests.work_order_world import ASSIGN, Crew, make_crew, move

PLAN = """
mutation ($i: InspectionPlanInput!) { createInspectionPlan(input: $i) {
  id name vendor model everyDays everySessions everyKwh checklist severity active } }"""
ACTIVE = "mutation ($id: ID!, $a: Boolean!) { setInspectionPlanActive(id: $id, active: $a) { active } }"
ORDERS = """
{ workOrders(first: 20) { edges { node { id title source inspectionPlanId severity state
  station { chargePointId } checklist { text } } } } }"""
_keys = count()


def code(result: dict[str, object]) -> str | None:
    errors = result.get("errors") or []
    return errors[0]["extensions"]["code"] if errors else None  # type: ignore[index]


@pytest.fixture
async def crew(engine: AsyncEngine, api_server: ApiServer) -> Crew:
    crew = await make_crew(engine, api_server)
    async with engine.begin() as conn:
        await conn.execute(
            update(ChargingStation)
            .where(ChargingStation.id == crew.station)
            .values(vendor="Acme", model="X22")  # type: ignore[arg-type]
        )
    return crew


async def sessions(engine: AsyncEngine, station: int, *, n: int, energy_wh: int = 10_000) -> None:
    """Finished sessions as the worker summarises them, ending now."""
    async with session_factory(engine)() as s:
        for _ in range(n):
            now = utcnow()
            tx = Transaction(
                station_id=station,
                connector_id=1,
                start_key=f"insp-{next(_keys)}",
                started_at=now,
                id_tag="TAG-OK-1",
            )
            s.add(tx)
            await s.flush()
            s.add(
                SessionSummary(
                    transaction_id=tx.id or 0,
                    station_id=station,
                    connector_id=1,
                    started_at=now - timedelta(minutes=30),
                    stopped_at=now,
                    energy_wh=energy_wh,
                )
            )
        await s.commit()


async def orders(http: httpx.AsyncClient, crew: Crew) -> list[dict[str, object]]:
    edges = data(await gql(http, ORDERS, token=crew.tokens["manager"]))["workOrders"]["edges"]
    return [e["node"] for e in edges]


class TestPlans:
    async def test_a_plan_is_due_after_n_sessions_once_and_restarts_when_done(
        self, http: httpx.AsyncClient, engine: AsyncEngine, crew: Crew
    ) -> None:
        # given a plan for Acme X22 stations every 30 days or 3 sessions, and a station of another model
        other = await make_station(engine, charge_point_id="CP-OTHER")
        plan_input = {
            "organizationId": gid("Organization", crew.org),
            "name": "Quarterly X22",
            "vendor": "Acme",
            "model": "X22",
            "everyDays": 30,
            "everySessions": 3,
            "checklist": ["Torque terminals", "Clean filters"],
        }
        assert code(await gql(http, PLAN, {"i": plan_input}, token=crew.tokens["tech"])) == "FORBIDDEN"
        plan = data(await gql(http, PLAN, {"i": plan_input}, token=crew.tokens["manager"]))[
            "createInspectionPlan"
        ]
        assert (plan["everySessions"], plan["severity"], plan["active"]) == (3, "LOW", True)
        # nothing is due yet
        assert (await create_due_orders(engine)).created == 0
        await sessions(engine, crew.station, n=2)
        await sessions(engine, other, n=5)
        assert (await create_due_orders(engine)).created == 0
        # when the third session on the covered station ends
        await sessions(engine, crew.station, n=1)
        assert (await create_due_orders(engine)).created == 1
        assert (await create_due_orders(engine)).created == 0  # idempotent while the order is open
        # then the order follows the plan
        (order,) = await orders(http, crew)
        assert order["source"] == "INSPECTION" and order["inspectionPlanId"] == plan["id"]
        assert order["station"] == {"chargePointId": "CP-1"}
        assert [c["text"] for c in order["checklist"]] == ["Torque terminals", "Clean filters"]
        assert order["title"] == "Inspection: Quarterly X22"
        # when the inspection is done, the counters restart
        await gql(http, ASSIGN, {"id": order["id"], "a": crew.account("tech")}, token=crew.tokens["manager"])
        data(await move(http, crew.tokens["tech"], str(order["id"]), "IN_PROGRESS"))
        data(await move(http, crew.tokens["tech"], str(order["id"]), "RESOLVED"))
        assert (await create_due_orders(engine)).created == 0
        await sessions(engine, crew.station, n=2)
        assert (await create_due_orders(engine)).created == 0
        # and the days limit makes it due again even without sessions
        assert (await create_due_orders(engine, now=utcnow() + timedelta(days=31))).created == 1
        assert len(await fetch(engine, "SELECT id FROM work_order WHERE state = 'open'")) == 1

    async def test_a_location_plan_is_due_after_n_kwh(
        self, http: httpx.AsyncClient, engine: AsyncEngine, crew: Crew
    ) -> None:
        (station,) = await fetch(
            engine, "SELECT location_id FROM charging_station WHERE id = :s", s=crew.station
        )
        plan_input = {
            "organizationId": gid("Organization", crew.org),
            "name": "Depot every 100 kWh",
            "locationId": gid("Location", station["location_id"]),
            "everyKwh": 100,
            "severity": "MEDIUM",
        }
        plan = data(await gql(http, PLAN, {"i": plan_input}, token=crew.tokens["manager"]))[
            "createInspectionPlan"
        ]
        assert plan["everyKwh"] == 100
        await sessions(engine, crew.station, n=3, energy_wh=30_000)
        assert (await create_due_orders(engine)).created == 0
        # a paused plan is never due
        data(await gql(http, ACTIVE, {"id": plan["id"], "a": False}, token=crew.tokens["manager"]))
        await sessions(engine, crew.station, n=1, energy_wh=15_000)
        assert (await create_due_orders(engine)).created == 0
        # resumed, the 105 kWh delivered since the plan began make it due
        data(await gql(http, ACTIVE, {"id": plan["id"], "a": True}, token=crew.tokens["manager"]))
        assert (await create_due_orders(engine)).created == 1
        (order,) = await orders(http, crew)
        assert order["severity"] == "MEDIUM"

    async def test_a_plan_names_what_it_covers_and_how_often(
        self, http: httpx.AsyncClient, crew: Crew
    ) -> None:
        base = {"organizationId": gid("Organization", crew.org), "name": "Vague"}
        assert code(
            await gql(http, PLAN, {"i": {**base, "everyDays": 30}}, token=crew.tokens["manager"])
        ) == ("INVALID_INPUT")
        assert code(
            await gql(http, PLAN, {"i": {**base, "vendor": "Acme"}}, token=crew.tokens["manager"])
        ) == ("INVALID_INPUT")
        assert code(
            await gql(
                http, PLAN, {"i": {**base, "vendor": "Acme", "everyDays": 0}}, token=crew.tokens["manager"]
            )
        ) == ("INVALID_INPUT")
