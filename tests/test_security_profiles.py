"""OCPP security profiles 1–3 at the gateway, password rotation without lock-out, and
stations nobody registered waiting for approval."""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidMessage, InvalidStatus

from gateway.security import server_tls_context
from gateway.server import Gateway
from schema.secrets import hash_secret
from tests.builders import make_station
from tests.certs import TestAuthority
from tests.conftest import GatewayFactory
from tests.dbutil import fetch


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def authority(tmp_path: Path) -> TestAuthority:
    return TestAuthority(tmp_path)


@pytest.fixture
async def tls_gateway(start_gateway: GatewayFactory, authority: TestAuthority) -> Gateway:
    server = authority.issue("gateway.test", server=True)
    return await start_gateway(tls=server_tls_context(str(server.cert), str(server.key), str(authority.cert)))


def charger_tls(authority: TestAuthority, client_cn: str | None = None) -> ssl.SSLContext:
    """What a charger trusts (the CA) and, for profile 3, the certificate it presents."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(authority.cert))
    if client_cn is not None:
        issued = authority.issue(client_cn)
        context.load_cert_chain(str(issued.cert), str(issued.key))
    return context


async def boot(ws: ClientConnection) -> dict[str, object]:
    await ws.send(
        json.dumps([2, "1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}])
    )
    reply = json.loads(await ws.recv())
    assert reply[0] == 3, reply
    result: dict[str, object] = reply[2]
    return result


async def refused(url: str, **kwargs: object) -> int:
    with pytest.raises(InvalidStatus) as err:
        async with connect(url, subprotocols=["ocpp1.6"], **kwargs):  # type: ignore[arg-type]
            pass
    return err.value.response.status_code


class TestProfile2TlsAndBasicAuth:
    async def test_password_over_tls_connects_and_plain_text_or_no_password_does_not(
        self,
        engine: AsyncEngine,
        tls_gateway: Gateway,
        start_gateway: GatewayFactory,
        authority: TestAuthority,
    ) -> None:
        # given a profile 2 station
        await make_station(engine, charge_point_id="TLS-2", password_hash=hash_secret("s3cret-pass-2"))
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE charging_station SET security_profile = 2 WHERE charge_point_id = 'TLS-2'")
            )
        url = f"wss://127.0.0.1:{tls_gateway.bound_port}/ocpp/TLS-2"
        # then with its password over TLS it connects and boots
        async with connect(
            url,
            subprotocols=["ocpp1.6"],
            ssl=charger_tls(authority),
            additional_headers=basic("TLS-2", "s3cret-pass-2"),
        ) as ws:
            assert (await boot(ws))["status"] == "Accepted"
        # but not without the password
        assert await refused(url, ssl=charger_tls(authority)) == 401
        # and not over plain WebSocket, even with it
        plain = await start_gateway()
        ws_url = f"ws://127.0.0.1:{plain.bound_port}/ocpp/TLS-2"
        assert await refused(ws_url, additional_headers=basic("TLS-2", "s3cret-pass-2")) == 403


class TestProfile3ClientCertificate:
    async def test_only_a_certificate_naming_the_station_connects(
        self, engine: AsyncEngine, tls_gateway: Gateway, authority: TestAuthority
    ) -> None:
        await make_station(engine, charge_point_id="TLS-3")
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE charging_station SET security_profile = 3 WHERE charge_point_id = 'TLS-3'")
            )
        url = f"wss://127.0.0.1:{tls_gateway.bound_port}/ocpp/TLS-3"
        # its own certificate: in, no password needed
        async with connect(url, subprotocols=["ocpp1.6"], ssl=charger_tls(authority, "TLS-3")) as ws:
            assert (await boot(ws))["status"] == "Accepted"
        # another station's certificate, or none: out
        assert await refused(url, ssl=charger_tls(authority, "OTHER-1")) == 403
        assert await refused(url, ssl=charger_tls(authority)) == 403

    async def test_a_certificate_from_another_authority_fails_the_tls_handshake(
        self, engine: AsyncEngine, tls_gateway: Gateway, authority: TestAuthority, tmp_path: Path
    ) -> None:
        await make_station(engine, charge_point_id="TLS-3")
        rogue_dir = tmp_path / "rogue"
        rogue_dir.mkdir()
        rogue = TestAuthority(rogue_dir, "Rogue CA")
        context = charger_tls(authority)
        issued = rogue.issue("TLS-3")
        context.load_cert_chain(str(issued.cert), str(issued.key))
        with pytest.raises((ssl.SSLError, ConnectionError, OSError, InvalidMessage)):
            async with connect(
                f"wss://127.0.0.1:{tls_gateway.bound_port}/ocpp/TLS-3", subprotocols=["ocpp1.6"], ssl=context
            ) as ws:
                await ws.recv()


class TestPasswordRotation:
    async def test_both_passwords_work_until_the_new_one_is_used_then_only_it(
        self, engine: AsyncEngine, gateway: Gateway
    ) -> None:
        # given a station told to change its password (the change not yet confirmed)
        await make_station(engine, charge_point_id="ROT-1", password_hash=hash_secret("old-password-1"))
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE charging_station SET pending_password_hash = :h, security_profile = 1"),
                {"h": hash_secret("new-password-1")},
            )
        url = f"ws://127.0.0.1:{gateway.bound_port}/ocpp/ROT-1"
        # then the old one still works (the station may have missed the change)
        async with connect(
            url, subprotocols=["ocpp1.6"], additional_headers=basic("ROT-1", "old-password-1")
        ):
            pass
        # and once it connects with the new one, that one is its only password
        async with connect(
            url, subprotocols=["ocpp1.6"], additional_headers=basic("ROT-1", "new-password-1")
        ):
            pass
        await gateway.writer.stop()
        gateway.writer.start()
        row = (
            await fetch(
                engine, "SELECT pending_password_hash FROM charging_station WHERE charge_point_id = 'ROT-1'"
            )
        )[0]
        assert row["pending_password_hash"] is None
        assert await refused(url, additional_headers=basic("ROT-1", "old-password-1")) == 401


class TestUnknownStations:
    async def test_pending_until_approved(self, engine: AsyncEngine, start_gateway: GatewayFactory) -> None:
        gw = await start_gateway(unknown_stations="pending")
        async with connect(f"ws://127.0.0.1:{gw.bound_port}/ocpp/NEW-9", subprotocols=["ocpp1.6"]) as ws:
            reply = await boot(ws)
        assert reply["status"] == "Pending"
        rows = await fetch(
            engine, "SELECT registration_status FROM charging_station WHERE charge_point_id = 'NEW-9'"
        )
        assert rows == [{"registration_status": "Pending"}]

    async def test_refused_by_default(self, gateway: Gateway) -> None:
        assert await refused(f"ws://127.0.0.1:{gateway.bound_port}/ocpp/NEW-10") == 404


class TestBehindATlsProxy:
    async def test_the_proxys_tls_and_certificate_verdict_count_only_when_trusted(
        self, engine: AsyncEngine, start_gateway: GatewayFactory
    ) -> None:
        # given a profile 2 and a profile 3 station, and a gateway behind a TLS-terminating proxy
        await make_station(engine, charge_point_id="PX-2", password_hash=hash_secret("proxy-pass-22"))
        await make_station(engine, charge_point_id="PX-3")
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE charging_station SET security_profile = 2 WHERE charge_point_id = 'PX-2'")
            )
            await conn.execute(
                text("UPDATE charging_station SET security_profile = 3 WHERE charge_point_id = 'PX-3'")
            )
        behind = await start_gateway(trust_proxy=True)
        exposed = await start_gateway()
        tls = {"X-Forwarded-Proto": "https"}
        verified = {**tls, "X-Client-Verify": "SUCCESS", "X-Client-Subject-DN": "CN=PX-3,O=Charger Maker"}
        # then the trusted proxy's word admits them
        base = f"ws://127.0.0.1:{behind.bound_port}/ocpp"
        async with connect(
            f"{base}/PX-2",
            subprotocols=["ocpp1.6"],
            additional_headers={**tls, **basic("PX-2", "proxy-pass-22")},
        ):
            pass
        async with connect(f"{base}/PX-3", subprotocols=["ocpp1.6"], additional_headers=verified):
            pass
        # a failed verification or another station's subject does not
        failed = {**verified, "X-Client-Verify": "FAILED:unable to verify"}
        assert await refused(f"{base}/PX-3", additional_headers=failed) == 403
        other = {**verified, "X-Client-Subject-DN": "CN=PX-2"}
        assert await refused(f"{base}/PX-3", additional_headers=other) == 403
        # and a gateway that does not sit behind the proxy ignores such headers
        open_base = f"ws://127.0.0.1:{exposed.bound_port}/ocpp"
        assert await refused(f"{open_base}/PX-3", additional_headers=verified) == 403
        forged = {**tls, **basic("PX-2", "proxy-pass-22")}
        assert await refused(f"{open_base}/PX-2", additional_headers=forged) == 403


class TestSubjectNames:
    @pytest.mark.parametrize(
        ("subject", "cn"),
        [
            ("CN=CP-1,O=Acme", "CP-1"),
            ("O=Acme, CN=CP-2", "CP-2"),
            ("/C=DE/O=Acme/CN=CP-3", "CP-3"),
            ("O=Acme", None),
        ],
    )
    def test_cn_from_the_forms_proxies_write(self, subject: str, cn: str | None) -> None:
        from gateway.security import _cn_of

        assert _cn_of(subject) == cn
