"""Subscriptions authenticate in `connection_init` and end when the access token does."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from api.auth.roles import Role
from tests.account_builders import add_member, make_user, sign_in
from tests.builders import make_org, make_station
from tests.conftest import ApiServer, ApiServerFactory
from tests.graphql_client import GraphQLWS
from tests.test_token_attacks import Keys, claims

STATUS = 'subscription { stationStatusChanged(stationId: "U3RhdGlvbjox") { chargePointId } }'
WS_FORBIDDEN = 4403


async def _close_code(url: str, token: str) -> int | None:
    """Open a socket, send connection_init with the token, return the close code."""
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        return ws.close_code


@pytest.fixture
async def member(engine: AsyncEngine) -> tuple[int, int]:
    org = await make_org(engine, slug="acme")
    await make_station(engine, charge_point_id="CP-1")
    user = await make_user(engine, email="ops@example.com", password=None)
    await add_member(engine, user_id=user, organization_id=org, role=Role.OPERATOR)
    return user, org


class TestSubscriptionAuth:
    async def test_an_expired_token_is_refused_with_4403(
        self, engine: AsyncEngine, api_server_factory: ApiServerFactory, member: tuple[int, int]
    ) -> None:
        keys = Keys()
        server = await api_server_factory(CHARGENET_JWT_KEYS=keys.jwks)
        pair = await sign_in(engine, server.app.state.auth.keys, user_id=member[0])
        expired = keys.sign(claims(member[0], pair.session_id, exp=int(time.time()) - 120))
        assert await _close_code(server.ws_url, expired) == WS_FORBIDDEN

    async def test_the_socket_closes_when_the_token_expires(
        self, engine: AsyncEngine, api_server_factory: ApiServerFactory, member: tuple[int, int]
    ) -> None:
        # given a subscription opened with a token that expires in two seconds
        keys = Keys()
        server = await api_server_factory(CHARGENET_JWT_KEYS=keys.jwks)
        pair = await sign_in(engine, server.app.state.auth.keys, user_id=member[0])
        short = keys.sign(claims(member[0], pair.session_id, exp=int(time.time()) + 2))
        client = await GraphQLWS.open(server.ws_url, payload={"Authorization": f"Bearer {short}"})
        await client.subscribe(STATUS)
        assert (await client.receive())["type"] == "next"  # the snapshot
        # then the server closes it with 4403 once the token has expired
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            while True:
                await client.receive(timeout=10)
        assert client.ws.close_code == WS_FORBIDDEN
        assert 0.5 < time.monotonic() - started < 6

    async def test_a_valid_token_subscribes_as_its_owner(
        self, engine: AsyncEngine, api_server: ApiServer, member: tuple[int, int]
    ) -> None:
        pair = await sign_in(engine, api_server.app.state.auth.keys, user_id=member[0])
        client = await GraphQLWS.open(
            api_server.ws_url, payload={"Authorization": f"Bearer {pair.access_token}"}
        )
        await client.subscribe(STATUS)
        assert (await client.next_payload())["stationStatusChanged"]["chargePointId"] == "CP-1"
        await client.close()
