"""Operators register stations with a one-time password, approve unannounced ones, and rotate
passwords over OCPP without locking a station out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.server import Gateway
from gateway.simulator import SimCharger, SimConfig
from tests.builders import make_location, make_station
from tests.conftest import OPERATOR_TOKEN, ChargerFactory, GatewayFactory
from tests.dbutil import fetch, scalar
from tests.graphql_client import gql
from tests.test_access_matrix import gid

REGISTER = """
mutation ($l: ID!, $cp: String!, $profile: Int!) {
  registerStation(input: {
    locationId: $l, chargePointId: $cp, securityProfile: $profile,
    connectors: [{connectorId: 1, maxPowerW: 11000}, {connectorId: 2, currentType: "DC", maxPowerW: 150000}]
  }) {
    password station { id chargePointId } } }"""
ROTATE = """
mutation ($s: ID!) { rotateStationPassword(stationId: $s) {
  outcome stationStatus password command { payload } } }"""
APPROVE = "mutation ($s: ID!, $l: ID) { approveStation(input: {stationId: $s, locationId: $l}) { id } }"
CHANGE_KEY = """
mutation ($s: ID!) { changeConfiguration(input: {stationId: $s, key: "AuthorizationKey", value: "x"}) {
  outcome } }"""


async def op(http: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    result = await gql(http, query, variables, token=OPERATOR_TOKEN)
    assert not result.get("errors"), result
    data: dict[str, Any] = result["data"]
    return data


class TestRegistration:
    async def test_the_password_is_shown_once_stored_hashed_and_lets_the_station_in(
        self, http: httpx.AsyncClient, engine: AsyncEngine, gateway: Gateway
    ) -> None:
        # given a location
        location = await make_location(engine)
        # when an operator registers a station there
        data = await op(http, REGISTER, l=gid("Location", location), cp="NEW-CP-1", profile=1)
        password = data["registerStation"]["password"]
        # then it has a strong generated password, stored only as a hash
        assert len(password) == 40 and int(password, 16) >= 0
        row = (
            await fetch(
                engine,
                "SELECT password_hash, security_profile FROM charging_station "
                "WHERE charge_point_id = 'NEW-CP-1'",
            )
        )[0]
        assert (
            row["security_profile"] == 1
            and row["password_hash"].startswith("$argon2")
            and password not in row["password_hash"]
        )
        connectors = await fetch(
            engine,
            "SELECT connector_id, current_type, max_power_w FROM connector c "
            "JOIN charging_station s ON s.id = c.station_id "
            "WHERE s.charge_point_id = 'NEW-CP-1' ORDER BY connector_id",
        )
        assert [tuple(c.values()) for c in connectors] == [(1, "AC", 11000), (2, "DC", 150000)]
        # and the station connects with it (and not without it)
        url = f"ws://127.0.0.1:{gateway.bound_port}/ocpp"
        ok = SimCharger(SimConfig(charge_point_id="NEW-CP-1", url=url, password=password))
        await ok.connect()
        assert (await ok.boot())["status"] == "Accepted"
        await ok.close()
        bad = SimCharger(SimConfig(charge_point_id="NEW-CP-1", url=url, password="wrong-password-000"))
        try:
            await bad.connect()
            raise AssertionError("a wrong password got in")
        except Exception as exc:  # the simulator reports the refused handshake
            assert "401" in str(exc) or "InvalidStatus" in type(exc).__name__, exc
        # and the same id cannot be registered twice
        again = await gql(
            http,
            REGISTER,
            {"l": gid("Location", location), "cp": "NEW-CP-1", "profile": 1},
            token=OPERATOR_TOKEN,
        )
        assert again["errors"][0]["extensions"]["code"] == "INVALID_INPUT"

    async def test_a_certificate_station_gets_no_password(
        self, http: httpx.AsyncClient, engine: AsyncEngine
    ) -> None:
        location = await make_location(engine)
        data = await op(http, REGISTER, l=gid("Location", location), cp="CERT-CP-1", profile=3)
        assert data["registerStation"]["password"] is None


class TestApproval:
    async def test_an_unannounced_station_is_pending_until_approved_into_a_location(
        self, http: httpx.AsyncClient, engine: AsyncEngine, start_gateway: GatewayFactory
    ) -> None:
        gw = await start_gateway(unknown_stations="pending")
        charger = SimCharger(SimConfig(charge_point_id="WILD-1", url=f"ws://127.0.0.1:{gw.bound_port}/ocpp"))
        await charger.connect()
        assert (await charger.boot())["status"] == "Pending"
        station = await scalar(engine, "SELECT id FROM charging_station WHERE charge_point_id = 'WILD-1'")
        location = await make_location(engine)
        await op(http, APPROVE, s=gid("Station", station), l=gid("Location", location))
        assert (await charger.boot())["status"] == "Accepted"
        row = (
            await fetch(
                engine, "SELECT location_id, organization_id FROM charging_station WHERE id = :i", i=station
            )
        )[0]
        assert row["location_id"] == location and row["organization_id"] is not None
        await charger.close()


class TestPasswordsNeverReachTheMessageLog:
    def test_every_shape_that_carries_one_is_redacted(self) -> None:
        from gateway.message_log import redact

        frames = [
            [2, "1", "ChangeConfiguration", {"key": "authorizationKey", "value": "s3cret-0001"}],
            [
                2,
                "2",
                "SetVariables",
                {
                    "setVariableData": [
                        {
                            "attributeValue": "s3cret-0002",
                            "component": {"name": "SecurityCtrlr"},
                            "variable": {"name": "BasicAuthPassword"},
                        },
                        {
                            "attributeValue": "60",
                            "component": {"name": "OCPPCommCtrlr"},
                            "variable": {"name": "HeartbeatInterval"},
                        },
                    ]
                },
            ],
            [
                3,
                "3",
                {
                    "configurationKey": [
                        {"key": "AuthorizationKey", "readonly": False, "value": "s3cret-0003"}
                    ]
                },
            ],
            [
                2,
                "4",
                "NotifyReport",
                {
                    "reportData": [
                        {
                            "component": {"name": "SecurityCtrlr"},
                            "variable": {"name": "BasicAuthPassword"},
                            "variableAttribute": [{"value": "s3cret-0004"}],
                        }
                    ]
                },
            ],
        ]
        for frame in frames:
            logged = redact(json.dumps(frame))
            assert "s3cret" not in logged and "(redacted)" in logged
        assert '"60"' in redact(json.dumps(frames[1]))  # other values stay
        untouched = json.dumps([2, "5", "Heartbeat", {}])
        assert redact(untouched) is untouched


class TestPasswordRotation:
    async def test_accepted_rotation_returns_the_password_once_and_never_logs_it(
        self, http: httpx.AsyncClient, engine: AsyncEngine, gateway: Gateway, hashed_password: Any
    ) -> None:
        # given a connected profile 1 station
        station = await make_station(
            engine, charge_point_id="ROT-2", password_hash=hashed_password("old-password-22")
        )
        url = f"ws://127.0.0.1:{gateway.bound_port}/ocpp"
        charger = SimCharger(SimConfig(charge_point_id="ROT-2", url=url, password="old-password-22"))
        told: list[str] = []

        def on_call(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
            if action == "ChangeConfiguration" and payload["key"] == "AuthorizationKey":
                told.append(payload["value"])
                return {"status": "Accepted"}
            return None

        charger.on_call = on_call
        await charger.start()
        # when an operator rotates its password
        rotated = (await op(http, ROTATE, s=gid("Station", station)))["rotateStationPassword"]
        # then the station was told the new one, the operator sees it once, the log never does
        assert rotated["outcome"] == "ACCEPTED" and told == [rotated["password"]]
        assert json.loads(rotated["command"]["payload"]) == {"key": "AuthorizationKey", "value": "(redacted)"}
        logged = await fetch(engine, "SELECT payload, reply FROM station_command")
        assert rotated["password"] not in json.dumps(logged, default=str)
        await gateway.message_log.flush()
        frames = await fetch(engine, "SELECT payload FROM ocpp_message WHERE action = 'ChangeConfiguration'")
        assert frames and not any(rotated["password"] in f["payload"] for f in frames)
        # and the station reconnects with the new password, which then is its only one
        await charger.close()
        renewed = SimCharger(SimConfig(charge_point_id="ROT-2", url=url, password=rotated["password"]))
        await renewed.connect()
        await renewed.close()
        for _ in range(50):
            if (
                await scalar(
                    engine, "SELECT pending_password_hash FROM charging_station WHERE id = :i", i=station
                )
                is None
            ):
                break
            await asyncio.sleep(0.05)
        assert (
            await scalar(
                engine, "SELECT pending_password_hash FROM charging_station WHERE id = :i", i=station
            )
            is None
        )

    async def test_a_refused_rotation_keeps_the_old_password_only(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        connect_charger: ChargerFactory,
        hashed_password: Any,
    ) -> None:
        station = await make_station(
            engine, charge_point_id="ROT-3", password_hash=hashed_password("old-password-33")
        )
        charger = await connect_charger("ROT-3", password="old-password-33")
        charger.on_call = lambda action, _p: (
            {"status": "Rejected"} if action == "ChangeConfiguration" else None
        )
        rotated = (await op(http, ROTATE, s=gid("Station", station)))["rotateStationPassword"]
        assert (rotated["outcome"], rotated["password"]) == ("REJECTED", None)
        assert (
            await scalar(
                engine, "SELECT pending_password_hash FROM charging_station WHERE id = :i", i=station
            )
            is None
        )

    async def test_the_password_key_cannot_be_set_around_rotation(
        self, http: httpx.AsyncClient, engine: AsyncEngine, connect_charger: ChargerFactory
    ) -> None:
        station = await make_station(engine, charge_point_id="ROT-4")
        charger = await connect_charger("ROT-4")
        result = await gql(http, CHANGE_KEY, {"s": gid("Station", station)}, token=OPERATOR_TOKEN)
        assert result["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
        assert "ChangeConfiguration" not in {a for a, _ in charger.received_calls}
