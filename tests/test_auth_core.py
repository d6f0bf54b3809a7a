"""The authenticator end to end: access tokens, API keys and revocation against a real API."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth import authenticator as authenticator_module
from api.auth.keys import CLOCK_SKEW_S, KeyRing
from api.auth.roles import Permission, Role
from api.cli import main
from schema.errors import Unauthenticated
from tests.account_builders import add_member, make_api_key, make_user, sign_in
from tests.builders import make_org, make_station
from tests.conftest import ApiServer
from tests.graphql_client import data, gql

TRANSACTIONS = "{ transactions(first: 5) { totalCount } }"
SERIAL = '{ station(chargePointId: "CP-A") { serialNumber } }'
JWKS = "/.well-known/jwks.json"


class TestAccessTokens:
    async def test_a_signed_in_member_reads_their_organisation(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a viewer of acme and a station of acme
        org = await make_org(engine, slug="acme")
        await make_station(engine, charge_point_id="CP-A")
        user = await make_user(engine, email="viewer@example.com")
        await add_member(engine, user_id=user, organization_id=org, role=Role.VIEWER)
        pair = await sign_in(engine, api_server.app.state.auth.keys, user_id=user)
        # when they ask for operator-only data
        result = await gql(http, SERIAL, token=pair.access_token)
        # then they get it
        assert "errors" not in result
        assert data(await gql(http, TRANSACTIONS, token=pair.access_token))["transactions"]["totalCount"] == 0

    async def test_jwks_publishes_the_signing_key(
        self, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        response = await http.get(JWKS)
        assert response.status_code == 200
        keys = response.json()["keys"]
        assert [k["kid"] for k in keys] == [api_server.app.state.auth.keys.signing_kid]
        assert all("d" not in k for k in keys)  # never the private part
        assert keys[0]["alg"] == "ES256"


class TestApiKeys:
    async def test_a_key_acts_with_its_permissions_only(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        org = await make_org(engine, slug="acme")
        await make_station(engine, charge_point_id="CP-A")
        reader = await make_api_key(
            engine, organization_id=org, permissions=frozenset({Permission.SESSIONS_READ})
        )
        assert data(await gql(http, TRANSACTIONS, token=reader))["transactions"]["totalCount"] == 0
        denied = await gql(http, SERIAL, token=reader)
        assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    async def test_a_wrong_secret_is_a_401(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        org = await make_org(engine, slug="acme")
        key = await make_api_key(
            engine, organization_id=org, permissions=frozenset({Permission.SESSIONS_READ})
        )
        await gql(http, TRANSACTIONS, token=key[:-4] + "AAAA", status=401)


class TestJwtKeysCommand:
    def test_generate_then_rotate(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        # given a key set printed by the command
        assert main(["jwt-keys"]) == 0
        first = tmp_path / "keys.json"
        first.write_text(capsys.readouterr().out)
        # when a key is appended for rotation
        assert main(["jwt-keys", "--append", str(first)]) == 0
        rotated = json.loads(capsys.readouterr().out)
        # then the old key stays (it still verifies) and the new one signs
        old_kid = json.loads(first.read_text())["keys"][0]["kid"]
        assert rotated["keys"][0]["kid"] == old_kid and len(rotated["keys"]) == 2
        ring = KeyRing(rotated, issuer="i", audience="a", ttl_s=60)
        assert ring.signing_kid == rotated["keys"][1]["kid"]
        old_ring = KeyRing(json.loads(first.read_text()), issuer="i", audience="a", ttl_s=60)
        token, _ = old_ring.issue(user_id=1, session_id=2)
        assert ring.verify(token).session_id == 2


class TestVerifiedTokenCache:
    async def test_a_remembered_token_still_expires(
        self, engine: AsyncEngine, api_server: ApiServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # given a token the authenticator has verified (and so remembers)
        auth = api_server.app.state.auth
        user = await make_user(engine, email="driver@example.com", password=None)
        pair = await sign_in(engine, auth.keys, user_id=user)
        header = f"Bearer {pair.access_token}"
        assert (await auth.authenticator.principal_for(header)).user_id == user
        # when its lifetime (plus the clock-skew allowance) has passed
        later = pair.access_expires_at + CLOCK_SKEW_S + 1
        monkeypatch.setattr(
            authenticator_module, "time", SimpleNamespace(time=lambda: later, monotonic=time.monotonic)
        )
        # then it is refused although its signature was checked before
        with pytest.raises(Unauthenticated, match="expired"):
            await auth.authenticator.principal_for(header)
