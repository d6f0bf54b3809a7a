"""Drivers report problems from the app: the report is kept, the operator gets one incident per
problem, the driver follows its own reports' status (received → being fixed → fixed), sees
nobody else's, and cannot flood the operator."""

from __future__ import annotations

import base64
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.service.work_order_jobs import create_for_incidents
from schema.db import session_factory
from schema.maintenance_models import DriverReport
from schema.timeutil import utcnow
from tests.account_builders import make_user, sign_in
from tests.conftest import ApiServer
from tests.dbutil import fetch
from tests.graphql_client import data, gql
from tests.test_access_matrix import gid
from tests.work_order_world import ASSIGN, Crew, make_crew, move

REPORT = """
mutation ($i: ReportProblemInput!) { reportProblem(input: $i) {
  id category text status hasPhoto connectorId station { chargePointId } } }"""
MINE = "{ myProblemReports { id status text } }"
NODE = "query ($id: ID!) { node(id: $id) { ... on ProblemReport { id text } } }"
OPERATOR_LIST = "{ problemReports(first: 20) { edges { node { id category text status } } } }"
CREATE_FROM_REPORT = """
mutation ($input: CreateWorkOrderInput!) { createWorkOrder(input: $input) {
  id source incidentId problemReportId } }"""


def code(result: dict[str, object]) -> str | None:
    errors = result.get("errors") or []
    return errors[0]["extensions"]["code"] if errors else None  # type: ignore[index]


@pytest.fixture
async def crew(engine: AsyncEngine, api_server: ApiServer) -> Crew:
    return await make_crew(engine, api_server)


def problem(
    crew: Crew, *, connector: int | None = 1, category: str = "NOT_CHARGING", **extra: object
) -> dict[str, object]:
    return {
        "i": {
            "stationId": gid("Station", crew.station),
            "connectorId": connector,
            "category": category,
            "text": "Starts, then stops after a few seconds",
            **extra,
        }
    }


class TestReporting:
    async def test_reports_open_one_incident_per_problem_without_naming_the_driver(
        self, http: httpx.AsyncClient, engine: AsyncEngine, api_server: ApiServer, crew: Crew
    ) -> None:
        # given two drivers at the same broken connector, one with a photo
        other = await make_user(engine, email="other-driver@example.com")
        other_token = (await sign_in(engine, api_server.app.state.auth.keys, user_id=other)).access_token
        photo = {
            "fileName": "screen.png",
            "contentType": "image/png",
            "dataBase64": base64.b64encode(b"\x89PNG..").decode(),
        }
        # when both report it
        first = data(await gql(http, REPORT, problem(crew, photo=photo), token=crew.tokens["driver"]))[
            "reportProblem"
        ]
        data(await gql(http, REPORT, problem(crew), token=other_token))
        # then each report is kept, received, and the operator has one high incident seen twice
        assert (first["status"], first["hasPhoto"], first["category"], first["connectorId"]) == (
            "RECEIVED",
            True,
            "NOT_CHARGING",
            1,
        )
        assert first["station"] == {"chargePointId": "CP-1"}
        (incident,) = await fetch(engine, "SELECT * FROM incident")
        assert (incident["kind"], incident["severity"], incident["occurrences"]) == (
            "driver_report",
            "high",
            2,
        )
        entries = await fetch(
            engine, "SELECT detail FROM incident_entry WHERE incident_id = :i", i=incident["id"]
        )
        assert all("user" not in str(e["detail"]) for e in entries)
        photos = await fetch(engine, "SELECT kind, content FROM station_file")
        assert [(p["kind"], bytes(p["content"])) for p in photos] == [("photo", b"\x89PNG..")]
        # and a high incident gets its work order from the driver report automatically
        assert (await create_for_incidents(engine)).created == 1
        (order,) = await fetch(engine, "SELECT source, incident_id FROM work_order")
        assert (order["source"], order["incident_id"]) == ("driver_report", incident["id"])

    async def test_a_driver_sees_its_own_reports_only(
        self, http: httpx.AsyncClient, engine: AsyncEngine, api_server: ApiServer, crew: Crew
    ) -> None:
        other = await make_user(engine, email="other-driver@example.com")
        other_token = (await sign_in(engine, api_server.app.state.auth.keys, user_id=other)).access_token
        mine = data(await gql(http, REPORT, problem(crew), token=crew.tokens["driver"]))["reportProblem"]
        data(await gql(http, REPORT, problem(crew, connector=2, text="Other"), token=other_token))
        assert [
            r["id"] for r in data(await gql(http, MINE, token=crew.tokens["driver"]))["myProblemReports"]
        ] == [mine["id"]]
        assert data(await gql(http, NODE, {"id": mine["id"]}, token=other_token))["node"] is None
        assert (
            data(await gql(http, NODE, {"id": mine["id"]}, token=crew.tokens["driver"]))["node"]["id"]
            == mine["id"]
        )
        # drivers do not list the operator's reports; the operator sees both, nobody's name
        assert code(await gql(http, OPERATOR_LIST, token=crew.tokens["driver"])) == "FORBIDDEN"
        listed = data(await gql(http, OPERATOR_LIST, token=crew.tokens["manager"]))["problemReports"]["edges"]
        assert len(listed) == 2
        # anonymous callers cannot report
        assert code(await gql(http, REPORT, problem(crew))) == "UNAUTHENTICATED"

    async def test_reports_are_rate_limited(
        self, http: httpx.AsyncClient, engine: AsyncEngine, crew: Crew
    ) -> None:
        # the same connector twice within minutes
        data(await gql(http, REPORT, problem(crew), token=crew.tokens["driver"]))
        again = await gql(http, REPORT, problem(crew, category="PAYMENT"), token=crew.tokens["driver"])
        assert code(again) == "RATE_LIMITED"
        # more than five reports an hour, wherever
        async with session_factory(engine)() as s:
            for minutes in range(4):
                s.add(
                    DriverReport(
                        user_id=crew.users["driver"],
                        organization_id=crew.org,
                        station_id=crew.station,
                        connector_id=None,
                        category="other",
                        text="earlier",
                        created_at=utcnow() - timedelta(minutes=20 + minutes),
                    )
                )
            await s.commit()
        flooded = await gql(http, REPORT, problem(crew, connector=2), token=crew.tokens["driver"])
        assert code(flooded) == "RATE_LIMITED"
        bad = await gql(http, REPORT, problem(crew, connector=7), token=crew.tokens["driver"])
        assert code(bad) == "NOT_FOUND"


class TestStatus:
    async def test_the_driver_follows_its_report_from_received_to_fixed(
        self, http: httpx.AsyncClient, engine: AsyncEngine, crew: Crew
    ) -> None:
        # given a low-severity report (no automatic work order)
        report = data(
            await gql(http, REPORT, problem(crew, category="DISPLAY"), token=crew.tokens["driver"])
        )["reportProblem"]
        assert report["status"] == "RECEIVED"
        # when the operator makes a work order of it and a technician fixes it
        made = await gql(
            http,
            CREATE_FROM_REPORT,
            {
                "input": {
                    "stationId": gid("Station", crew.station),
                    "title": "Display unreadable",
                    "severity": "MEDIUM",
                    "problemReportId": report["id"],
                }
            },
            token=crew.tokens["manager"],
        )
        order = data(made)["createWorkOrder"]
        assert (order["source"], order["problemReportId"]) == ("DRIVER_REPORT", report["id"])
        assert order["incidentId"] is not None

        async def status() -> str:
            found = data(await gql(http, MINE, token=crew.tokens["driver"]))["myProblemReports"]
            return str(found[0]["status"])

        assert await status() == "BEING_FIXED"
        await gql(http, ASSIGN, {"id": order["id"], "a": crew.account("tech")}, token=crew.tokens["manager"])
        data(await move(http, crew.tokens["tech"], order["id"], "IN_PROGRESS"))
        assert await status() == "BEING_FIXED"
        data(await move(http, crew.tokens["tech"], order["id"], "RESOLVED", "display replaced"))
        # then the report is fixed, and its incident resolved by the technician
        assert await status() == "FIXED"
        (incident,) = await fetch(engine, "SELECT state, resolved_by FROM incident")
        assert (incident["state"], incident["resolved_by"]) == ("resolved", crew.users["tech"])
