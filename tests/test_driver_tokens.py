"""Cards and app tokens of the signed-in driver, and remote start with an app token."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry import relay

from api.drivers.service import CARD_LINK_FAILURE_BUDGET
from schema.db import session_factory
from schema.models import IdToken
from tests.account_builders import give_token
from tests.builders import make_org
from tests.conftest import ApiServer, ChargerFactory
from tests.graphql_client import data, gql
from tests.test_driver_profile import driver, error_code

CARD_FIELDS = "id token label status"
LINK_CARD = f"""
mutation($input: LinkCardInput!) {{ linkCard(input: $input) {{ {CARD_FIELDS} }} }}
"""
UNLINK_CARD = "mutation($id: ID!) { unlinkCard(id: $id) }"
CREATE_APP_TOKEN = f"mutation($label: String) {{ createAppToken(label: $label) {{ {CARD_FIELDS} }} }}"
REVOKE_APP_TOKEN = "mutation($id: ID!) { revokeAppToken(id: $id) }"
MY_TOKENS = f"{{ me {{ cards {{ {CARD_FIELDS} }} appTokens {{ {CARD_FIELDS} }} }} }}"
NODE = "query($id: ID!) { node(id: $id) { id } }"

START = """
mutation($input: StartChargingInput!) {
  startCharging(input: $input) { outcome message transaction { id state idTag } }
}
"""
STOP = "mutation($input: StopChargingInput!) { stopCharging(input: $input) { outcome } }"
MY_SESSIONS = (
    "{ transactions(first: 10) { totalCount edges { node { id idTag station { chargePointId } } } } }"
)


async def _token_row(engine: AsyncEngine, token: str) -> tuple[Any, ...]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT token_type, status, user_id, label FROM id_token WHERE token = :t"), {"t": token}
            )
        ).one()
    return tuple(row)


class TestLinkCard:
    async def test_a_new_card_number_becomes_the_drivers_card(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a driver
        user, token = await driver(engine, api_server, "anna")
        # when they type the number as their reader shows it
        card = data(
            await gql(http, LINK_CARD, {"input": {"token": "04:a2:3b:4c:5d", "label": "Work"}}, token=token)
        )["linkCard"]
        # then the card is stored as chargers send it, accepted and theirs
        assert {k: card[k] for k in ("token", "label", "status")} == {
            "token": "04A23B4C5D",
            "label": "Work",
            "status": "ACCEPTED",
        }
        assert await _token_row(engine, "04A23B4C5D") == ("RFID", "Accepted", user, "Work")
        # when they link it again with a new label, then it is the same card, relabelled
        again = data(
            await gql(http, LINK_CARD, {"input": {"token": "04A23B4C5D", "label": "Mine"}}, token=token)
        )
        assert again["linkCard"] == {**card, "label": "Mine"}
        assert data(await gql(http, MY_TOKENS, token=token))["me"] == {
            "cards": [again["linkCard"]],
            "appTokens": [],
        }

    async def test_a_registered_card_nobody_holds_is_linked(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a card ChargeNet knows but nobody holds
        async with session_factory(engine)() as s:
            s.add(IdToken(token="ABC123"))
            await s.commit()
        user, token = await driver(engine, api_server, "ben")
        # when a driver links it, then it is theirs
        card = data(await gql(http, LINK_CARD, {"input": {"token": "abc123"}}, token=token))["linkCard"]
        assert card["token"] == "ABC123"
        assert await _token_row(engine, "ABC123") == ("RFID", "Accepted", user, None)

    async def test_cards_held_by_others_are_refused_without_saying_why(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given another driver's card, an organisation's fleet card and a blocked card
        other, _ = await driver(engine, api_server, "carl")
        await give_token(engine, user_id=other, token="CARL0001")
        org = await make_org(engine, slug="acme")
        async with session_factory(engine)() as s:
            s.add_all(
                [IdToken(token="FLEET01", organization_id=org), IdToken(token="LOST01", status="Blocked")]
            )
            await s.commit()
        _, token = await driver(engine, api_server, "dora")
        # when a driver tries to link each of them
        results = [
            await gql(http, LINK_CARD, {"input": {"token": tag}}, token=token)
            for tag in ("carl0001", "fleet01", "LOST01")
        ]
        # then each is refused with the same code and message, and nothing changes hands
        assert {(error_code(r), r["errors"][0]["message"]) for r in results} == {
            ("CARD_UNAVAILABLE", "this card cannot be linked to your account")
        }
        assert (await _token_row(engine, "CARL0001"))[2] == other
        assert data(await gql(http, MY_TOKENS, token=token))["me"]["cards"] == []

    async def test_probing_card_numbers_is_slowed_down(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a blocked card and a driver who keeps trying it
        async with session_factory(engine)() as s:
            s.add(IdToken(token="LOST02", status="Blocked"))
            await s.commit()
        _, token = await driver(engine, api_server, "erik")
        codes = [
            error_code(await gql(http, LINK_CARD, {"input": {"token": "LOST02"}}, token=token))
            for _ in range(CARD_LINK_FAILURE_BUDGET + 2)
        ]
        # then after the budget of refusals every further attempt waits, even a valid one
        assert codes == ["CARD_UNAVAILABLE"] * (CARD_LINK_FAILURE_BUDGET + 1) + ["RATE_LIMITED"]
        fresh = await gql(http, LINK_CARD, {"input": {"token": "NEW0001"}}, token=token)
        assert error_code(fresh) == "RATE_LIMITED"

    async def test_card_numbers_chargers_cannot_send_are_invalid(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        _, token = await driver(engine, api_server, "emil")
        for bad in ("", "not a card!", "A" * 21):
            assert (
                error_code(await gql(http, LINK_CARD, {"input": {"token": bad}}, token=token))
                == "INVALID_INPUT"
            )


class TestUnlinkCard:
    async def test_an_unlinked_card_is_blocked_for_good(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a driver's card
        _, token = await driver(engine, api_server, "fiona")
        card = data(await gql(http, LINK_CARD, {"input": {"token": "F10NA"}}, token=token))["linkCard"]
        # when they unlink it (lost)
        assert data(await gql(http, UNLINK_CARD, {"id": card["id"]}, token=token)) == {
            "unlinkCard": card["id"]
        }
        # then it is no longer theirs, cannot charge and cannot be linked again
        assert await _token_row(engine, "F10NA") == ("RFID", "Blocked", None, None)
        assert data(await gql(http, MY_TOKENS, token=token))["me"]["cards"] == []
        assert (
            error_code(await gql(http, LINK_CARD, {"input": {"token": "F10NA"}}, token=token))
            == "CARD_UNAVAILABLE"
        )
        assert error_code(await gql(http, UNLINK_CARD, {"id": card["id"]}, token=token)) == "NOT_FOUND"


class TestAppTokens:
    async def test_create_and_revoke(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given a driver
        user, token = await driver(engine, api_server, "gus")
        # when their app asks for a token
        app_token = data(await gql(http, CREATE_APP_TOKEN, {"label": "Pixel 9"}, token=token))[
            "createAppToken"
        ]
        # then it is a random idTag a charger accepts, listed apart from cards
        assert re.fullmatch(r"[A-Z0-9]{20}", app_token["token"])
        assert (app_token["label"], app_token["status"]) == ("Pixel 9", "ACCEPTED")
        assert await _token_row(engine, app_token["token"]) == ("Central", "Accepted", user, "Pixel 9")
        assert data(await gql(http, MY_TOKENS, token=token))["me"] == {"cards": [], "appTokens": [app_token]}
        # when they revoke it, then it is blocked and gone from the account
        revoked = await gql(http, REVOKE_APP_TOKEN, {"id": app_token["id"]}, token=token)
        assert data(revoked) == {"revokeAppToken": app_token["id"]}
        assert await _token_row(engine, app_token["token"]) == ("Central", "Blocked", None, None)
        assert data(await gql(http, MY_TOKENS, token=token))["me"]["appTokens"] == []


class TestAnotherDriversTokens:
    async def test_look_like_they_do_not_exist(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient
    ) -> None:
        # given Hana's card and app token
        _, hana = await driver(engine, api_server, "hana")
        card = data(await gql(http, LINK_CARD, {"input": {"token": "HANA1"}}, token=hana))["linkCard"]
        app_token = data(await gql(http, CREATE_APP_TOKEN, token=hana))["createAppToken"]
        # when Ivan probes their ids, and the app token's id disguised as a card's
        _, ivan = await driver(engine, api_server, "ivan")
        disguised = str(relay.GlobalID("Card", relay.GlobalID.from_id(app_token["id"]).node_id))
        nodes = [
            data(await gql(http, NODE, {"id": i}, token=ivan))["node"] for i in (card["id"], app_token["id"])
        ]
        codes = [
            error_code(await gql(http, UNLINK_CARD, {"id": card["id"]}, token=ivan)),
            error_code(await gql(http, REVOKE_APP_TOKEN, {"id": app_token["id"]}, token=ivan)),
            error_code(await gql(http, UNLINK_CARD, {"id": disguised}, token=hana)),
        ]
        # then he sees nothing and changes nothing; and an app token is never a card
        assert nodes == [None, None]
        assert codes == ["NOT_FOUND"] * 3
        assert data(await gql(http, MY_TOKENS, token=hana))["me"] == {
            "cards": [card],
            "appTokens": [app_token],
        }
        assert data(await gql(http, NODE, {"id": card["id"]}, token=hana))["node"] == {"id": card["id"]}


class TestRemoteStartWithAppToken:
    async def test_the_driver_starts_sees_and_stops_their_session_and_nobody_else_can(
        self,
        engine: AsyncEngine,
        api_server: ApiServer,
        http: httpx.AsyncClient,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        # given a driver with an app token and a connected charger
        _, jana = await driver(engine, api_server, "jana")
        app_token = data(await gql(http, CREATE_APP_TOKEN, {"label": "phone"}, token=jana))["createAppToken"]
        await connect_charger("CP-1", connectors=[22_000, 22_000], speed=600, meter_interval_s=60)
        station_id = str(relay.GlobalID("Station", str(station)))
        # when she starts charging without naming a token
        started = data(
            await gql(http, START, {"input": {"stationId": station_id, "connectorId": 1}}, token=jana)
        )["startCharging"]
        # then the session runs on her app token and is hers to see
        assert started["outcome"] == "ACCEPTED"
        tx = started["transaction"]
        assert (tx["state"], tx["idTag"]) == ("ACTIVE", app_token["token"])
        mine = data(await gql(http, MY_SESSIONS, token=jana))["transactions"]
        assert mine["totalCount"] == 1
        assert mine["edges"][0]["node"] == {
            "id": tx["id"],
            "idTag": app_token["token"],
            "station": {"chargePointId": "CP-1"},
        }
        # and another driver neither sees nor stops it
        _, karl = await driver(engine, api_server, "karl")
        assert data(await gql(http, MY_SESSIONS, token=karl))["transactions"] == {
            "totalCount": 0,
            "edges": [],
        }
        assert (
            error_code(await gql(http, STOP, {"input": {"transactionId": tx["id"]}}, token=karl))
            == "NOT_FOUND"
        )
        # while she can
        stopped = data(await gql(http, STOP, {"input": {"transactionId": tx["id"]}}, token=jana))
        assert stopped["stopCharging"]["outcome"] == "ACCEPTED"
