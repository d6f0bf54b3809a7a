"""Drivers reserve a connector from the app, through the real API, the real gateway and a
simulated charger over real sockets: the station holds it, the driver's session uses it up, and
it can be refused, cancelled or left to expire."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry import relay

from api.reservations.jobs import expire_reservations
from api.sessions.repository import APP_TOKEN_TYPE
from api.worker.service import DurableWork
from api.worker.settings import WorkerSettings
from gateway.server import Gateway
from gateway.simulator import NO_ANSWER, SimCharger
from schema.timeutil import utcnow
from tests.account_builders import give_token, make_user, sign_in
from tests.builders import ACCEPTED_TAGS
from tests.conftest import OPERATOR_TOKEN, ApiServer, ChargerFactory
from tests.dbutil import fetch
from tests.graphql_client import gql
from tests.test_access_matrix import DRIVER, KEY, build_world, gid
from tests.test_remote_control import eventually

RESERVATION_FIELDS = """
  outcome message
  reservation { id connectorId status stationStatus expiresAt createdAt
                station { chargePointId } transaction { id } }"""
RESERVE = f"""
mutation ($s: ID!, $c: Int!, $m: Int!, $tag: String) {{
  reserveConnector(input: {{stationId: $s, connectorId: $c, minutes: $m, idTag: $tag}}) {{
    {RESERVATION_FIELDS} }} }}"""
CANCEL = f"mutation ($id: ID!) {{ cancelReservation(id: $id) {{ {RESERVATION_FIELDS} }} }}"
RESERVATIONS = """
query ($s: ID, $active: Boolean) { reservations(stationId: $s, activeOnly: $active, first: 20) {
  totalCount edges { node { id status connectorId } } } }"""
NODE = """query ($id: ID!) { node(id: $id) { ... on Reservation { id status transaction { id } } } }"""
START = """
mutation ($s: ID!, $c: Int) { startCharging(input: {stationId: $s, connectorId: $c, waitSeconds: 5}) {
  outcome message transaction { id } } }"""
CONNECTORS = "query ($s: ID!) { station(id: $s) { connectors { connectorId status } } }"
COMMANDS = """
query ($s: ID!) { commands(stationId: $s, first: 20) { edges { node { name outcome actor { label } } } } }"""


@dataclass(frozen=True)
class Driver:
    user_id: int
    token: str
    app_tag: str


async def make_driver(engine: AsyncEngine, api_server: ApiServer, *, name: str) -> Driver:
    """A signed-in driver with an app token, as the app has after sign-up."""
    user_id = await make_user(engine, email=f"{name}@example.com")
    tag = f"APP-{name.upper()}"
    await give_token(engine, user_id=user_id, token=tag, token_type=APP_TOKEN_TYPE)
    pair = await sign_in(engine, api_server.app.state.auth.keys, user_id=user_id)
    return Driver(user_id, pair.access_token, tag)


@pytest.fixture
async def alice(engine: AsyncEngine, api_server: ApiServer) -> Driver:
    return await make_driver(engine, api_server, name="alice")


@pytest.fixture
async def bob(engine: AsyncEngine, api_server: ApiServer) -> Driver:
    return await make_driver(engine, api_server, name="bob")


@pytest.fixture
async def cp(station: int, connect_charger: ChargerFactory, engine: AsyncEngine) -> SimCharger:
    """CP-1, connected, booted and known to be online."""
    charger = await connect_charger("CP-1")
    await eventually(lambda: _online(engine, station))
    return charger


@pytest.fixture
async def worker(engine: AsyncEngine, gateway: Gateway) -> AsyncIterator[DurableWork]:
    """The durable-event worker in this process, as `chargenet serve` runs it."""
    settings = WorkerSettings(CHARGENET_WORKER_GROUP="jobs", CHARGENET_OUTBOX_POLL=0.05)
    durable = DurableWork(engine, settings, bus_url="memory", gateway=True, worker=True)
    gateway.writer.on_outbox = durable.nudge
    await durable.start()
    yield durable
    await durable.stop()


async def reserve(
    http: httpx.AsyncClient, token: str, station: int, *, connector: int = 1, minutes: int = 30, **extra: Any
) -> dict[str, Any]:
    variables = {"s": gid("Station", station), "c": connector, "m": minutes, **extra}
    return await gql(http, RESERVE, variables, token=token)


def ok(result: dict[str, Any], field: str) -> dict[str, Any]:
    assert not result.get("errors"), result
    payload: dict[str, Any] = result["data"][field]
    return payload


def code(result: dict[str, Any]) -> str:
    assert result.get("errors"), result
    return str(result["errors"][0]["extensions"]["code"])


class TestReserveAndUse:
    async def test_the_drivers_session_uses_the_reservation(
        self,
        http: httpx.AsyncClient,
        station: int,
        cp: SimCharger,
        alice: Driver,
        worker: DurableWork,
    ) -> None:
        # given a driver with an app token and a connected charger
        s = gid("Station", station)
        # when she reserves connector 1 for 30 minutes
        payload = ok(await reserve(http, alice.token, station), "reserveConnector")
        # then the station accepted it and holds the connector for her token
        reservation = payload["reservation"]
        assert (payload["outcome"], reservation["status"], reservation["stationStatus"]) == (
            "ACCEPTED",
            "ACTIVE",
            "Accepted",
        )
        rid = int(_pk(reservation["id"]))
        reserve_now = next(p for a, p in cp.received_calls if a == "ReserveNow")
        assert (reserve_now["reservationId"], reserve_now["connectorId"], reserve_now["idTag"]) == (
            rid,
            1,
            alice.app_tag,
        )
        assert cp.connectors[1].status == "Reserved"
        assert await eventually(lambda: _connector_status(http, s, 1, "RESERVED"))
        # when she starts charging there with her app token
        start = ok(await gql(http, START, {"s": s, "c": 1}, token=alice.token), "startCharging")
        assert start["outcome"] == "ACCEPTED" and start["transaction"], start
        # then the station named the reservation, and it is used and linked to her session
        sent = next(p for a, p in cp.sent if a == "StartTransaction")
        assert sent["reservationId"] == rid
        node = await eventually(lambda: _used(http, alice.token, reservation["id"]))
        assert node["transaction"]["id"] == start["transaction"]["id"]
        # and it no longer counts as active
        active = ok(await gql(http, RESERVATIONS, {"active": True}, token=alice.token), "reservations")
        assert active["totalCount"] == 0

    async def test_the_command_is_logged_with_the_driver_as_actor(
        self, http: httpx.AsyncClient, station: int, cp: SimCharger, alice: Driver
    ) -> None:
        ok(await reserve(http, alice.token, station), "reserveConnector")
        log = ok(await gql(http, COMMANDS, {"s": gid("Station", station)}, token=OPERATOR_TOKEN), "commands")
        [entry] = [e["node"] for e in log["edges"] if e["node"]["name"] == "ReserveNow"]
        assert (entry["outcome"], entry["actor"]["label"]) == ("ACCEPTED", f"user:{alice.user_id}")


class TestOperators:
    async def test_an_operator_reserves_for_a_customers_card(
        self, http: httpx.AsyncClient, station: int, cp: SimCharger
    ) -> None:
        payload = ok(await reserve(http, OPERATOR_TOKEN, station, tag=ACCEPTED_TAGS[0]), "reserveConnector")
        assert (payload["outcome"], payload["reservation"]["status"]) == ("ACCEPTED", "ACTIVE")
        assert next(p for a, p in cp.received_calls if a == "ReserveNow")["idTag"] == ACCEPTED_TAGS[0]
        # the same card cannot hold a second connector
        again = await reserve(http, OPERATOR_TOKEN, station, connector=2, tag=ACCEPTED_TAGS[0])
        assert code(again) == "ACTIVE_RESERVATION_EXISTS"


class TestRefused:
    async def test_an_occupied_connector_is_refused_with_the_stations_word(
        self, http: httpx.AsyncClient, station: int, cp: SimCharger, alice: Driver
    ) -> None:
        # given someone charging on connector 1
        cp.spawn(cp.run_session(1, ACCEPTED_TAGS[0]))
        await eventually(lambda: _charging(cp, 1))
        # when a driver reserves it
        payload = ok(await reserve(http, alice.token, station), "reserveConnector")
        # then the station said Occupied and the reservation is refused
        assert payload["outcome"] == "REJECTED" and "in use" in payload["message"]
        assert (payload["reservation"]["status"], payload["reservation"]["stationStatus"]) == (
            "REFUSED",
            "Occupied",
        )
        # and a refusal does not count against her one active reservation
        ok(await reserve(http, alice.token, station, connector=2), "reserveConnector")

    async def test_a_station_without_the_reservation_profile_says_so(
        self,
        http: httpx.AsyncClient,
        station: int,
        connect_charger: ChargerFactory,
        engine: AsyncEngine,
        alice: Driver,
    ) -> None:
        # given a charger with the Core profile only
        await connect_charger("CP-1", feature_profiles=["Core"])
        await eventually(lambda: _online(engine, station))
        # when a driver reserves there
        payload = ok(await reserve(http, alice.token, station), "reserveConnector")
        # then the answer is a clear "not supported", and nothing is held
        assert payload["outcome"] == "NOT_SUPPORTED"
        assert payload["message"] == "this station does not support reservations"
        assert payload["reservation"]["status"] == "REFUSED"

    async def test_an_offline_station_is_not_asked(
        self, http: httpx.AsyncClient, station: int, alice: Driver
    ) -> None:
        payload = ok(await reserve(http, alice.token, station), "reserveConnector")
        assert (payload["outcome"], payload["reservation"]) == ("STATION_OFFLINE", None)

    async def test_bad_input_is_a_typed_error(
        self, http: httpx.AsyncClient, station: int, cp: SimCharger, alice: Driver
    ) -> None:
        assert code(await reserve(http, alice.token, station, minutes=0)) == "INVALID_INPUT"
        assert code(await reserve(http, alice.token, station, minutes=121)) == "INVALID_INPUT"
        assert code(await reserve(http, alice.token, station, connector=9)) == "NOT_FOUND"
        assert code(await reserve(http, alice.token, station, tag=ACCEPTED_TAGS[0])) == "INVALID_INPUT"
        assert code(await reserve(http, OPERATOR_TOKEN, station)) == "INVALID_INPUT"  # operators name a tag
        assert code(await reserve(http, "", station)) == "UNAUTHENTICATED"


class TestOneAtATime:
    async def test_one_active_reservation_per_driver_and_per_connector(
        self, http: httpx.AsyncClient, station: int, cp: SimCharger, alice: Driver, bob: Driver
    ) -> None:
        # given alice holds connector 1
        ok(await reserve(http, alice.token, station), "reserveConnector")
        # then she cannot hold a second one, and bob cannot take hers
        assert code(await reserve(http, alice.token, station, connector=2)) == "ACTIVE_RESERVATION_EXISTS"
        assert code(await reserve(http, bob.token, station)) == "CONNECTOR_BUSY"
        # but bob may reserve the other connector
        ok(await reserve(http, bob.token, station, connector=2), "reserveConnector")
        assert [a for a, _ in cp.received_calls].count("ReserveNow") == 2


class TestCancel:
    async def test_the_driver_cancels_and_the_connector_is_free_again(
        self, http: httpx.AsyncClient, station: int, cp: SimCharger, alice: Driver
    ) -> None:
        rid = ok(await reserve(http, alice.token, station), "reserveConnector")["reservation"]["id"]
        # when she cancels
        payload = ok(await gql(http, CANCEL, {"id": rid}, token=alice.token), "cancelReservation")
        # then the station let the connector go and the reservation is cancelled
        assert (payload["outcome"], payload["reservation"]["status"]) == ("ACCEPTED", "CANCELLED")
        assert await eventually(lambda: _connector_status(http, gid("Station", station), 1, "AVAILABLE"))
        # and cancelling again has nothing left to do
        again = ok(await gql(http, CANCEL, {"id": rid}, token=alice.token), "cancelReservation")
        assert (again["outcome"], again["message"]) == ("NOT_ACTIVE", "the reservation is already cancelled")

    async def test_a_station_that_forgot_it_still_cancels(
        self, http: httpx.AsyncClient, station: int, cp: SimCharger, alice: Driver
    ) -> None:
        rid = ok(await reserve(http, alice.token, station), "reserveConnector")["reservation"]["id"]
        # given the station no longer knows the reservation (§5.4: it answers Rejected)
        cp.on_call = lambda action, _p: {"status": "Rejected"} if action == "CancelReservation" else None
        payload = ok(await gql(http, CANCEL, {"id": rid}, token=OPERATOR_TOKEN), "cancelReservation")
        # then nothing is held there any more: the reservation is cancelled all the same
        assert (payload["outcome"], payload["reservation"]["status"]) == ("REJECTED", "CANCELLED")

    async def test_an_unreachable_station_keeps_the_reservation(
        self, http: httpx.AsyncClient, station: int, cp: SimCharger, alice: Driver, engine: AsyncEngine
    ) -> None:
        rid = ok(await reserve(http, alice.token, station), "reserveConnector")["reservation"]["id"]
        await cp.close()
        await eventually(lambda: _offline(engine, station))
        payload = ok(await gql(http, CANCEL, {"id": rid}, token=alice.token), "cancelReservation")
        assert (payload["outcome"], payload["reservation"]["status"]) == ("STATION_OFFLINE", "ACTIVE")


class TestNoAnswer:
    async def test_a_reserve_the_station_never_answered_is_cancelled_there(
        self, http: httpx.AsyncClient, station: int, cp: SimCharger, alice: Driver, engine: AsyncEngine
    ) -> None:
        # given a station that takes ReserveNow but whose answer never comes back
        cp.on_call = lambda action, _p: NO_ANSWER if action == "ReserveNow" else None
        payload = ok(await reserve(http, alice.token, station), "reserveConnector")
        # then the driver is told it did not work
        assert (payload["outcome"], payload["reservation"]["status"]) == ("TIMED_OUT", "REFUSED")
        rid = int(_pk(payload["reservation"]["id"]))
        # and the station is told to drop it, in case it did reserve, on the system's account
        assert await eventually(lambda: _received(cp, "CancelReservation", {"reservationId": rid}))
        assert await eventually(lambda: _logged(engine, "CancelReservation"))
        rows = await fetch(engine, "SELECT actor_kind FROM station_command WHERE name = 'CancelReservation'")
        assert rows == [{"actor_kind": "system"}]


async def _received(cp: SimCharger, action: str, payload: dict[str, Any]) -> bool:
    return (action, payload) in cp.received_calls


async def _logged(engine: AsyncEngine, name: str) -> bool:
    return bool(await fetch(engine, "SELECT id FROM station_command WHERE name = :n", n=name))


class TestExpiry:
    async def test_the_job_expires_reservations_past_their_time(
        self, http: httpx.AsyncClient, station: int, cp: SimCharger, alice: Driver, engine: AsyncEngine
    ) -> None:
        rid = ok(await reserve(http, alice.token, station, minutes=1), "reserveConnector")["reservation"][
            "id"
        ]
        # when the job runs before the expiry, nothing changes
        assert await expire_reservations(engine) == 0
        # when it runs after it
        assert await expire_reservations(engine, now=utcnow() + timedelta(minutes=2)) == 1
        # then the reservation is expired, stored so, and no longer held
        rows = await fetch(engine, "SELECT status FROM reservation WHERE id = :i", i=int(_pk(rid)))
        assert rows[0]["status"] == "expired"
        node = (await gql(http, NODE, {"id": rid}, token=alice.token))["data"]["node"]
        assert node["status"] == "EXPIRED"
        # and the driver may reserve again
        ok(await reserve(http, alice.token, station, connector=2), "reserveConnector")


class TestPrivacy:
    async def test_a_driver_cannot_see_or_cancel_another_drivers_reservation(
        self, http: httpx.AsyncClient, station: int, cp: SimCharger, alice: Driver, bob: Driver
    ) -> None:
        rid = ok(await reserve(http, alice.token, station), "reserveConnector")["reservation"]["id"]
        # bob sees nothing of it
        listed = ok(await gql(http, RESERVATIONS, {}, token=bob.token), "reservations")
        assert listed["totalCount"] == 0
        assert (await gql(http, NODE, {"id": rid}, token=bob.token))["data"]["node"] is None
        # and cannot cancel it
        assert code(await gql(http, CANCEL, {"id": rid}, token=bob.token)) == "NOT_FOUND"
        assert "CancelReservation" not in {a for a, _ in cp.received_calls}
        # while she and the operator see it
        for token in (alice.token, OPERATOR_TOKEN):
            mine = ok(await gql(http, RESERVATIONS, {"active": True}, token=token), "reservations")
            assert [e["node"]["id"] for e in mine["edges"]] == [rid]


class TestTenantIsolation:
    async def test_operators_list_their_organisations_reservations_only(
        self, http: httpx.AsyncClient, engine: AsyncEngine, api_server: ApiServer
    ) -> None:
        # given two organisations, each with a driver's reservation at its station
        keys = api_server.app.state.auth.keys
        a, b = await build_world(engine, keys), await build_world(engine, keys)
        for who in ("owner", "technician", KEY, DRIVER):
            # when a member, the integration key or the driver of A lists reservations
            listed = ok(await gql(http, RESERVATIONS, {}, token=a.tokens[who]), "reservations")
            ids = {e["node"]["id"] for e in listed["edges"]}
            # then A's is there and B's is not
            assert ids == {gid("Reservation", a.reservation)}, who
        # while the platform sees both
        every = ok(await gql(http, RESERVATIONS, {}, token=OPERATOR_TOKEN), "reservations")
        assert {gid("Reservation", w.reservation) for w in (a, b)} <= {
            e["node"]["id"] for e in every["edges"]
        }


# -- helpers ------------------------------------------------------------------------------------


def _pk(global_id: str) -> str:
    return relay.GlobalID.from_id(global_id).node_id


async def _online(engine: AsyncEngine, station: int) -> bool:
    rows = await fetch(engine, "SELECT online FROM charging_station WHERE id = :i", i=station)
    return bool(rows[0]["online"])


async def _offline(engine: AsyncEngine, station: int) -> bool:
    return not await _online(engine, station)


async def _charging(cp: SimCharger, connector: int) -> bool:
    return cp.connectors[connector].transaction_id is not None


async def _connector_status(http: httpx.AsyncClient, station: str, connector: int, status: str) -> bool:
    result = await gql(http, CONNECTORS, {"s": station}, token=OPERATOR_TOKEN)
    found = {c["connectorId"]: c["status"] for c in result["data"]["station"]["connectors"]}
    return found.get(connector) == status


async def _used(http: httpx.AsyncClient, token: str, reservation_id: str) -> dict[str, Any] | None:
    node = (await gql(http, NODE, {"id": reservation_id}, token=token))["data"]["node"]
    return node if node and node["status"] == "USED" else None
