"""A maintenance crew for work-order tests: an organisation's station, a manager, two
technicians, someone from finance, a viewer and a driver, each signed in for real."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth.roles import Role
from tests.account_builders import add_member, make_user, sign_in
from tests.builders import make_org, make_station
from tests.conftest import ApiServer
from tests.graphql_client import data, gql
from tests.test_access_matrix import gid

CREATE = """
mutation ($input: CreateWorkOrderInput!) { createWorkOrder(input: $input) {
  id state source severity slaDueAt slaBreached assigneeId checklist { id text done } } }"""
STATE = """
mutation ($id: ID!, $state: WorkOrderState!, $note: String) {
  changeWorkOrderState(id: $id, state: $state, note: $note) {
    id state assignedAt startedAt resolvedAt verifiedAt cancelledAt slaBreached
    timeline { kind by fromState toState text } } }"""
ASSIGN = """
mutation ($id: ID!, $a: ID!) { assignWorkOrder(id: $id, assigneeId: $a) {
  id state assigneeId assignedAt } }"""


@dataclass
class Crew:
    org: int
    station: int
    users: dict[str, int]
    tokens: dict[str, str]

    def account(self, who: str) -> str:
        return gid("Account", self.users[who])


async def make_crew(
    engine: AsyncEngine, api_server: ApiServer, *, charge_point_id: str = "CP-1", slug: str = "acme"
) -> Crew:
    org = await make_org(engine, slug=slug)
    station = await make_station(engine, charge_point_id=charge_point_id)
    roles: dict[str, Role | None] = {
        "manager": Role.ADMIN,
        "tech": Role.TECHNICIAN,
        "tech2": Role.TECHNICIAN,
        "finance": Role.FINANCE,
        "viewer": Role.VIEWER,
        "driver": None,
    }
    keys = api_server.app.state.auth.keys
    users: dict[str, int] = {}
    tokens: dict[str, str] = {}
    for who, role in roles.items():
        uid = await make_user(engine, email=f"{who}-{slug}@example.com")
        if role is not None:
            await add_member(engine, user_id=uid, organization_id=org, role=role)
        users[who] = uid
        tokens[who] = (await sign_in(engine, keys, user_id=uid)).access_token
    return Crew(org, station, users, tokens)


async def create_order(
    http: httpx.AsyncClient, crew: Crew, *, severity: str = "HIGH", **extra: Any
) -> dict[str, Any]:
    payload = {
        "stationId": gid("Station", crew.station),
        "title": "Cable damaged",
        "severity": severity,
        **extra,
    }
    found: dict[str, Any] = data(await gql(http, CREATE, {"input": payload}, token=crew.tokens["manager"]))[
        "createWorkOrder"
    ]
    return found


async def move(
    http: httpx.AsyncClient, token: str, order_id: str, state: str, note: str | None = None
) -> dict[str, Any]:
    return await gql(http, STATE, {"id": order_id, "state": state, "note": note}, token=token)
