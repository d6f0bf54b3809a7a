"""Who may connect: known stations, the OCPP subprotocol, Basic auth (security profile 1)."""

from __future__ import annotations

import base64

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.server import Gateway
from schema.secrets import hash_secret
from tests.builders import make_station
from tests.conftest import ChargerFactory, GatewayFactory
from tests.dbutil import scalar


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def url(gw: Gateway, cpid: str) -> str:
    return f"ws://127.0.0.1:{gw.bound_port}/ocpp/{cpid}"


class TestStationIdentity:
    async def test_unknown_station_is_refused(self, gateway: Gateway) -> None:
        with pytest.raises(InvalidStatus) as err:
            async with connect(url(gateway, "NOPE"), subprotocols=["ocpp1.6"]):
                pass
        assert err.value.response.status_code == 404

    async def test_auto_registration_when_enabled(
        self,
        engine: AsyncEngine,
        start_gateway: GatewayFactory,
    ) -> None:
        gw = await start_gateway(auto_register=True)
        async with connect(url(gw, "NEW-1"), subprotocols=["ocpp1.6"]) as ws:
            assert ws.subprotocol == "ocpp1.6"
        assert (
            await scalar(engine, "SELECT count(*) FROM charging_station WHERE charge_point_id = 'NEW-1'") == 1
        )

    async def test_wrong_path_is_refused(self, gateway: Gateway) -> None:
        with pytest.raises(InvalidStatus) as err:
            async with connect(
                f"ws://127.0.0.1:{gateway.bound_port}/elsewhere/CP-1", subprotocols=["ocpp1.6"]
            ):
                pass
        assert err.value.response.status_code == 404


class TestSubprotocol:
    @pytest.mark.parametrize("offered", [None, ["ocpp1.5"]])
    async def test_no_supported_subprotocol_is_closed_with_a_reason(
        self,
        gateway: Gateway,
        station: int,
        offered: list[str] | None,
    ) -> None:
        async with connect(url(gateway, "CP-1"), subprotocols=offered) as ws:  # type: ignore[arg-type]
            with pytest.raises(ConnectionClosed) as err:
                await ws.recv()
        assert err.value.rcvd is not None
        assert err.value.rcvd.code == 1002
        assert "ocpp1.6" in err.value.rcvd.reason


class TestBasicAuth:
    @pytest.fixture
    async def secured(self, engine: AsyncEngine) -> str:
        await make_station(engine, charge_point_id="SEC-1", password_hash=hash_secret("s3cret-Passw0rd"))
        return "SEC-1"

    async def test_password_is_stored_hashed(self, engine: AsyncEngine, secured: str) -> None:
        stored = await scalar(
            engine, "SELECT password_hash FROM charging_station WHERE charge_point_id = 'SEC-1'"
        )
        assert "s3cret" not in stored and stored.startswith("$argon2")

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            basic("SEC-1", "wrong"),
            basic("OTHER", "s3cret-Passw0rd"),
            {"Authorization": "Basic !!!"},
            {"Authorization": "Bearer x"},
        ],
    )
    async def test_missing_or_wrong_credentials_get_401(
        self,
        gateway: Gateway,
        secured: str,
        headers: dict[str, str],
    ) -> None:
        with pytest.raises(InvalidStatus) as err:
            async with connect(url(gateway, secured), subprotocols=["ocpp1.6"], additional_headers=headers):
                pass
        assert err.value.response.status_code == 401

    async def test_right_password_connects_and_boots(
        self,
        secured: str,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger(secured, password="s3cret-Passw0rd")
        assert cp.booted.is_set()
        # a reconnect uses the verified-credential cache; it must still work
        await cp.close()
        cp2 = await connect_charger(secured, password="s3cret-Passw0rd")
        assert cp2.booted.is_set()


class TestReconnect:
    async def test_second_connection_replaces_the_first(
        self,
        gateway: Gateway,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        first = await connect_charger("CP-1")
        second = await connect_charger("CP-1")
        assert first.ws is not None
        await first.ws.wait_closed()
        assert first.ws.close_code == 4000
        assert "currentTime" in await second.call("Heartbeat", {})
        assert gateway.connections["CP-1"].connection is not None


class TestBoot:
    async def test_pending_and_rejected_registration(
        self,
        engine: AsyncEngine,
        gateway: Gateway,
        connect_charger: ChargerFactory,
    ) -> None:
        await make_station(engine, charge_point_id="PEND-1", registration_status="Pending")
        await make_station(engine, charge_point_id="REJ-1", registration_status="Rejected")
        pend = await connect_charger("PEND-1", boot=False)
        rej = await connect_charger("REJ-1", boot=False)
        pending = await pend.boot()
        assert (pending["status"], pending["interval"]) == ("Pending", 60)
        reply = await rej.boot()
        assert (reply["status"], reply["interval"]) == ("Rejected", 60)


class TestProbes:
    async def test_health_and_readiness_over_plain_http(self, gateway: Gateway) -> None:
        base = f"http://127.0.0.1:{gateway.bound_port}"
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200
            # once shutdown begins, readiness fails and new chargers are turned away
            gateway.draining = True
            assert (await client.get("/readyz")).status_code == 503
            assert (await client.get("/healthz")).status_code == 200
        with pytest.raises(InvalidStatus) as err:
            async with connect(f"ws://127.0.0.1:{gateway.bound_port}/ocpp/CP-1", subprotocols=["ocpp1.6"]):
                pass
        assert err.value.response.status_code == 503
