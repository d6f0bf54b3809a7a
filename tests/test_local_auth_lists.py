"""Stations' local authorization lists follow their organisation's tokens: through the real API,
the real gateway and simulated 1.6 and 2.0.1 chargers over real sockets, on SQLite and
PostgreSQL. The first sync is Full, later ones Differential with only what changed; a station
that lost track gets a Full list again; an offline station stays pending until the worker
finds it back online; a station without local lists is told so."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncEngine

from api.localauth.entries import (
    ListEntry,
    Token,
    apply,
    changes,
    desired_entries,
    differential_plan,
    full_plan,
)
from api.localauth.jobs import sync_due_lists
from gateway.sim_auth import authorize_offline
from gateway.simulator import SimCharger
from schema.bus import Bus
from schema.db import session_factory
from schema.models import IdToken, Organization
from schema.timeutil import parse_ocpp_datetime, utcnow
from tests.builders import ACCEPTED_TAGS, BLOCKED_TAG
from tests.conftest import OPERATOR_TOKEN, ChargerFactory
from tests.dbutil import fetch
from tests.graphql_client import gql
from tests.ocpp201 import Charger201Factory, connect201
from tests.test_access_matrix import gid
from tests.test_remote_control import eventually

__all__ = ["connect201"]  # the fixture, imported for pytest

SYNC = """
mutation ($ids: [ID!]!, $full: Boolean! = false) {
  syncLocalAuthList(stationIds: $ids, full: $full) {
    results { outcome message updateType version entriesSent messagesSent leftOut pending
              station { chargePointId } } } }"""
STATUS = """
query ($s: ID!) { localAuthListStatus(stationId: $s) {
  managed version entryCount syncedAt attemptedAt pending lastResult lastMessage } }"""
COMMANDS = """
query ($s: ID!) { commands(stationId: $s, first: 50) {
  edges { node { name outcome stationStatus actor { kind label } } } } }"""

NEW_TAG = "TAG-NEW-1"
RIVAL_TAG = "RIVAL-1"
LOOSE_TAG = "LOOSE-1"
CONNECT = Callable[..., Awaitable[SimCharger]]


@pytest.fixture(params=["1.6", "2.0.1"])
def connect(
    request: pytest.FixtureRequest, connect_charger: ChargerFactory, connect201: Charger201Factory
) -> CONNECT:
    """A charger of either OCPP version (the 2.0.1 one is a SimCharger too)."""
    return connect_charger if request.param == "1.6" else connect201  # type: ignore[return-value]


@pytest.fixture
async def others(engine: AsyncEngine, station: int) -> None:
    """A token of another organisation and a driver's card of no organisation: never listed."""
    async with session_factory(engine)() as s:
        rival = Organization(name="Rival", slug="rival")
        s.add(rival)
        await s.flush()
        s.add(IdToken(token=RIVAL_TAG, organization_id=rival.id))
        s.add(IdToken(token=LOOSE_TAG))
        await s.commit()


async def _online(engine: AsyncEngine, station: int, online: bool = True) -> bool:
    rows = await fetch(engine, "SELECT online FROM charging_station WHERE id = :i", i=station)
    return bool(rows[0]["online"]) is online


async def sync(http: httpx.AsyncClient, station: int, *, full: bool = False) -> dict[str, Any]:
    result = await gql(http, SYNC, {"ids": [gid("Station", station)], "full": full}, token=OPERATOR_TOKEN)
    assert not result.get("errors"), result
    [one] = result["data"]["syncLocalAuthList"]["results"]
    return one  # type: ignore[no-any-return]


async def status(http: httpx.AsyncClient, station: int) -> dict[str, Any]:
    result = await gql(http, STATUS, {"s": gid("Station", station)}, token=OPERATOR_TOKEN)
    assert not result.get("errors"), result
    return result["data"]["localAuthListStatus"]  # type: ignore[no-any-return]


def statuses(cp: SimCharger) -> dict[str, str]:
    """The charger's list: idTag (case-folded) → status."""
    return {tag: info["status"] for tag, info in cp.local_auth.entries().items()}


def sent_lists(cp: SimCharger) -> list[dict[str, Any]]:
    return [p for a, p in cp.received_calls if a == "SendLocalList"]


def entry_tags(payload: dict[str, Any]) -> dict[str, str | None]:
    """idTag → status (None: removed) of one SendLocalList, whichever version sent it."""
    out: dict[str, str | None] = {}
    for e in payload.get("localAuthorizationList") or []:
        if "idToken" in e:  # 2.0.1
            out[e["idToken"]["idToken"]] = (e.get("idTokenInfo") or {}).get("status")
        else:
            out[e["idTag"]] = (e.get("idTagInfo") or {}).get("status")
    return out


def update_type(payload: dict[str, Any]) -> str:
    return str(payload["updateType"])


def version(payload: dict[str, Any]) -> int:
    return int(payload.get("listVersion", payload.get("versionNumber", -1)))


async def change_tokens(engine: AsyncEngine) -> None:
    """Block one token, add one, delete one (through the ORM/Core, as the API changes tokens)."""
    org_id = (
        await fetch(engine, "SELECT organization_id FROM id_token WHERE token = :t", t=ACCEPTED_TAGS[1])
    )[0]["organization_id"]
    async with session_factory(engine)() as s:
        await s.exec(update(IdToken).where(IdToken.token == ACCEPTED_TAGS[1]).values(status="Blocked"))  # type: ignore[call-overload, arg-type]
        await s.exec(delete(IdToken).where(IdToken.token == BLOCKED_TAG))  # type: ignore[call-overload, arg-type]
        expires = utcnow().replace(microsecond=0) + timedelta(days=30)
        s.add(IdToken(token=NEW_TAG, organization_id=org_id, parent_token="FLEET-A", expires_at=expires))
        await s.commit()


ORG_LIST = {
    ACCEPTED_TAGS[0].casefold(): "Accepted",
    ACCEPTED_TAGS[1].casefold(): "Accepted",
    BLOCKED_TAG.casefold(): "Blocked",
}
CHANGED_LIST = {
    ACCEPTED_TAGS[0].casefold(): "Accepted",
    ACCEPTED_TAGS[1].casefold(): "Blocked",
    NEW_TAG.casefold(): "Accepted",
}


class TestFullThenDifferential:
    async def test_the_first_sync_is_full_and_the_next_sends_only_what_changed(
        self, engine: AsyncEngine, http: httpx.AsyncClient, station: int, others: None, connect: CONNECT
    ) -> None:
        # given a connected charger of an organisation with three tokens (one blocked), and
        # tokens of another organisation and of no organisation
        cp = await connect("CP-1")
        await eventually(lambda: _online(engine, station))
        # when the operator syncs its local list for the first time
        first = await sync(http, station)
        # then a Full list with exactly the organisation's tokens, blocked ones as Blocked
        assert (first["outcome"], first["updateType"], first["version"]) == ("UPDATED", "FULL", 1)
        assert (first["entriesSent"], first["messagesSent"], first["pending"]) == (3, 1, False)
        [full] = sent_lists(cp)
        assert update_type(full) == "Full" and version(full) == 1
        assert entry_tags(full) == {
            ACCEPTED_TAGS[0]: "Accepted",
            ACCEPTED_TAGS[1]: "Accepted",
            BLOCKED_TAG: "Blocked",
        }
        assert statuses(cp) == ORG_LIST and cp.local_auth.version == 1
        # when one token is blocked, one added and one deleted
        await change_tokens(engine)
        second = await sync(http, station)
        # then a Differential update with exactly those three, one version up
        assert (second["outcome"], second["updateType"], second["version"], second["entriesSent"]) == (
            "UPDATED",
            "DIFFERENTIAL",
            2,
            3,
        )
        diff = sent_lists(cp)[-1]
        assert update_type(diff) == "Differential" and version(diff) == 2
        assert entry_tags(diff) == {ACCEPTED_TAGS[1]: "Blocked", NEW_TAG: "Accepted", BLOCKED_TAG: None}
        # and the charger's list is the organisation's tokens now, with the new card's group
        assert statuses(cp) == CHANGED_LIST and cp.local_auth.version == 2
        new = cp.local_auth.entries()[NEW_TAG.casefold()]
        assert new.get("parentIdTag") == "FLEET-A" and parse_ocpp_datetime(new["expiryDate"]) > utcnow()
        # when nothing changed, nothing but the version check is sent
        third = await sync(http, station)
        assert (third["outcome"], third["version"], third["entriesSent"]) == ("UP_TO_DATE", 2, 0)
        assert len(sent_lists(cp)) == 2
        # and the status and the command log tell the story
        st = await status(http, station)
        assert (st["managed"], st["version"], st["entryCount"], st["pending"], st["lastResult"]) == (
            True,
            2,
            3,
            False,
            "UP_TO_DATE",
        )
        assert st["syncedAt"] is not None
        log = await gql(http, COMMANDS, {"s": gid("Station", station)}, token=OPERATOR_TOKEN)
        names = [e["node"]["name"] for e in log["data"]["commands"]["edges"]]
        assert names.count("SendLocalList") == 2 and names.count("GetLocalListVersion") == 3

    async def test_a_long_list_goes_in_several_messages_each_with_its_own_version(
        self, engine: AsyncEngine, http: httpx.AsyncClient, station: int, connect: CONNECT
    ) -> None:
        # given a charger that takes at most 2 entries per SendLocalList (1.6
        # SendLocalListMaxLength, 2.0.1 LocalAuthListCtrlr.ItemsPerMessage), and 3 tokens
        cp = await connect("CP-1")
        await eventually(lambda: _online(engine, station))
        cp.config.set_value("SendLocalListMaxLength", "2")
        await gql(
            http,
            "mutation ($s: ID!) { readConfiguration(input: {stationId: $s}) { outcome } }",
            {"s": gid("Station", station)},
            token=OPERATOR_TOKEN,
        )
        # when the list is synced
        result = await sync(http, station)
        # then a Full with two entries and a Differential with the third, versions 1 and 2
        assert (result["outcome"], result["version"], result["messagesSent"], result["entriesSent"]) == (
            "UPDATED",
            2,
            2,
            3,
        )
        sent = sent_lists(cp)
        assert [(update_type(p), version(p), len(entry_tags(p))) for p in sent] == [
            ("Full", 1, 2),
            ("Differential", 2, 1),
        ]
        assert statuses(cp) == ORG_LIST


class TestStationLostTrack:
    async def test_version_mismatch_to_a_differential_update_gets_a_full_list(
        self, engine: AsyncEngine, http: httpx.AsyncClient, station: int, connect: CONNECT
    ) -> None:
        # given a synced charger that will refuse the next differential update
        cp = await connect("CP-1")
        await eventually(lambda: _online(engine, station))
        assert (await sync(http, station))["outcome"] == "UPDATED"
        refused: list[int] = []

        def mismatch(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
            if action == "SendLocalList" and payload["updateType"] == "Differential" and not refused:
                refused.append(version(payload))
                return {"status": "VersionMismatch"}
            return None

        cp.on_call = mismatch
        await change_tokens(engine)
        # when the list is synced
        result = await sync(http, station)
        # then the refused differential was followed by a Full list
        assert refused == [2]
        assert (result["outcome"], result["updateType"]) == ("UPDATED", "FULL")
        last = sent_lists(cp)[-1]
        assert update_type(last) == "Full" and version(last) > 2 and result["version"] == version(last)
        assert statuses(cp) == CHANGED_LIST

    async def test_a_station_whose_version_moved_on_gets_a_full_list(
        self, engine: AsyncEngine, http: httpx.AsyncClient, station: int, connect_charger: ChargerFactory
    ) -> None:
        # given a synced charger whose list was replaced by someone else (version 7, one entry)
        cp = await connect_charger("CP-1")
        await eventually(lambda: _online(engine, station))
        await sync(http, station)
        cp.local_auth.send_local_list(
            {
                "listVersion": 7,
                "updateType": "Full",
                "localAuthorizationList": [{"idTag": "X", "idTagInfo": {"status": "Accepted"}}],
            },
            enabled=True,
            max_send=100,
            max_length=100,
        )
        # when the list is synced
        result = await sync(http, station)
        # then ChargeNet noticed (GetLocalListVersion) and sent a Full list above version 7
        assert (result["outcome"], result["updateType"], result["version"]) == ("UPDATED", "FULL", 8)
        assert statuses(cp) == ORG_LIST


class TestNotSupported:
    async def test_a_station_without_local_lists_is_told_so_and_nothing_is_sent(
        self, engine: AsyncEngine, http: httpx.AsyncClient, station: int, connect_charger: ChargerFactory
    ) -> None:
        # given a 1.6 charger without the LocalAuthListManagement profile, its features read
        cp = await connect_charger("CP-1", feature_profiles=["Core", "RemoteTrigger"])

        async def features_known() -> bool:
            rows = await fetch(
                engine, "SELECT feature_profiles FROM charging_station WHERE id = :i", i=station
            )
            return rows[0]["feature_profiles"] is not None

        assert await eventually(features_known)
        # when the operator syncs its list
        result = await sync(http, station)
        # then the result says why, nothing was sent, and nothing is pending
        assert result["outcome"] == "NOT_SUPPORTED" and not result["pending"]
        assert "does not support local authorization lists" in result["message"]
        assert not [a for a, _ in cp.received_calls if a in ("SendLocalList", "GetLocalListVersion")]
        st = await status(http, station)
        assert (st["lastResult"], st["pending"], st["version"]) == ("NOT_SUPPORTED", False, None)

    async def test_a_201_station_without_a_local_list_controller_is_told_so(
        self, engine: AsyncEngine, http: httpx.AsyncClient, station: int, connect201: Charger201Factory
    ) -> None:
        # given a 2.0.1 charger whose device model has no LocalAuthListCtrlr, its report read
        cp = await connect201("CP-1", feature_profiles=["Core", "RemoteTrigger"])

        async def reported() -> bool:
            rows = await fetch(
                engine, "SELECT configuration_read_at FROM charging_station WHERE id = :i", i=station
            )
            return rows[0]["configuration_read_at"] is not None

        assert await eventually(reported)
        result = await sync(http, station)
        assert result["outcome"] == "NOT_SUPPORTED" and "LocalAuthListCtrlr" in result["message"]
        assert not [a for a, _ in cp.received_calls if a == "SendLocalList"]


class TestOfflineAndTheWorker:
    async def test_an_offline_station_stays_pending_and_the_worker_syncs_it_when_back(
        self, engine: AsyncEngine, bus: Bus, http: httpx.AsyncClient, station: int, connect: CONNECT
    ) -> None:
        # given a synced charger that then loses its connection
        cp = await connect("CP-1")
        await eventually(lambda: _online(engine, station))
        await sync(http, station)
        assert cp.ws is not None
        await cp.ws.close()
        assert await eventually(lambda: _online(engine, station, False))
        # when tokens change and the operator syncs
        await change_tokens(engine)
        result = await sync(http, station)
        # then the update is pending, and the worker does not send into the void
        assert (result["outcome"], result["pending"]) == ("STATION_OFFLINE", True)
        assert (await status(http, station))["pending"] is True
        job = await sync_due_lists(engine, bus, command_timeout_s=5)
        assert (job.synced, job.waiting_offline) == (0, 1)
        # when the charger is back
        await cp.start()
        assert await eventually(lambda: _online(engine, station))
        job = await sync_due_lists(engine, bus, command_timeout_s=5)
        # then the worker brought its list up to date, as the system
        assert (job.synced, job.failed) == (1, 0)
        assert statuses(cp) == CHANGED_LIST
        st = await status(http, station)
        assert (st["pending"], st["lastResult"], st["version"]) == (False, "UPDATED", 2)
        log = await gql(http, COMMANDS, {"s": gid("Station", station)}, token=OPERATOR_TOKEN)
        actors = {
            e["node"]["actor"]["kind"]
            for e in log["data"]["commands"]["edges"]
            if e["node"]["outcome"] == "ACCEPTED"
        }
        assert actors == {"platform", "system"}

    async def test_the_worker_picks_up_a_token_change_of_a_managed_station_only(
        self,
        engine: AsyncEngine,
        bus: Bus,
        http: httpx.AsyncClient,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        # given a synced charger (managed) and nothing changed since
        cp = await connect_charger("CP-1")
        await eventually(lambda: _online(engine, station))
        await sync(http, station)
        assert (await sync_due_lists(engine, bus, command_timeout_s=5)).synced == 0
        # when a token of its organisation is blocked
        async with session_factory(engine)() as s:
            await s.exec(update(IdToken).where(IdToken.token == ACCEPTED_TAGS[0]).values(status="Blocked"))  # type: ignore[call-overload, arg-type]
            await s.commit()
        job = await sync_due_lists(engine, bus, command_timeout_s=5)
        # then the next run sends it as a differential update
        assert job.synced == 1
        diff = sent_lists(cp)[-1]
        assert (update_type(diff), entry_tags(diff)) == ("Differential", {ACCEPTED_TAGS[0]: "Blocked"})
        # and a token of another organisation changing leaves the station alone
        async with session_factory(engine)() as s:
            rival = Organization(name="Rival", slug="rival")
            s.add(rival)
            await s.flush()
            s.add(IdToken(token=RIVAL_TAG, organization_id=rival.id))
            await s.commit()
        assert (await sync_due_lists(engine, bus, command_timeout_s=5)).synced == 0

    async def test_a_station_that_keeps_failing_is_retried_after_a_pause(
        self,
        engine: AsyncEngine,
        bus: Bus,
        http: httpx.AsyncClient,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        # given a charger that answers Failed to every list
        cp = await connect_charger("CP-1")
        await eventually(lambda: _online(engine, station))
        cp.on_call = lambda action, _p: {"status": "Failed"} if action == "SendLocalList" else None
        result = await sync(http, station)
        assert (result["outcome"], result["pending"]) == ("FAILED", True)
        # then the worker leaves it alone for a while, and tries again later
        assert (await sync_due_lists(engine, bus, command_timeout_s=5)).synced == 0
        cp.on_call = None
        later = utcnow() + timedelta(hours=1)
        assert (await sync_due_lists(engine, bus, command_timeout_s=5, now=later)).synced == 1
        assert statuses(cp) == ORG_LIST


class TestOfflineAuthorization:
    async def test_a_listed_token_authorizes_offline_and_others_do_not(
        self, engine: AsyncEngine, http: httpx.AsyncClient, station: int, connect: CONNECT
    ) -> None:
        # given a charger with the organisation's list, then offline
        cp = await connect("CP-1")
        await eventually(lambda: _online(engine, station))
        await sync(http, station)
        assert cp.ws is not None
        await cp.ws.close()
        await cp.ws.wait_closed()
        assert await eventually(lambda: _online(engine, station, False))
        # then an accepted listed token may start, a blocked or unknown one may not
        assert authorize_offline(cp, ACCEPTED_TAGS[0].lower()) is True
        assert authorize_offline(cp, BLOCKED_TAG) is False
        assert authorize_offline(cp, "NEVER-SEEN") is False
        assert await cp.run_session(1, BLOCKED_TAG) is None


class TestAccess:
    async def test_syncing_needs_control_and_reading_needs_diagnose_in_the_stations_organisation(
        self, engine: AsyncEngine, http: httpx.AsyncClient, station: int
    ) -> None:
        # an unknown station is NOT_FOUND; too many or no stations are refused
        result = await gql(http, SYNC, {"ids": [gid("Station", 999_999)]}, token=OPERATOR_TOKEN)
        assert result["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        result = await gql(http, SYNC, {"ids": []}, token=OPERATOR_TOKEN)
        assert result["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
        # a never-synced station is not managed
        st = await status(http, station)
        assert (st["managed"], st["version"], st["pending"], st["entryCount"]) == (False, None, False, 0)


class TestWhatGoesOnTheList:
    """The list's rules on plain values (entries.py): no station needed."""

    def test_expired_blocked_too_long_duplicate_and_over_the_cap(self) -> None:
        now = utcnow()
        tokens = [
            Token(1, "CARD-1", "Accepted", now + timedelta(days=30), "FLEET"),
            Token(2, "CARD-2", "Accepted", now - timedelta(minutes=1), None),  # past its expiry
            Token(3, "CARD-3", "Blocked", None, None),
            Token(4, "card-1", "Accepted", None, None),  # the station compares without case
            Token(5, "A" * 21, "Accepted", None, None),  # longer than a 1.6 idTag
            Token(6, "CARD-6", "NoCredit", None, "B" * 21),  # 2.0.1-only status, long parent
            Token(7, "CARD-7", "Accepted", None, None),
        ]
        wanted = desired_entries(tokens, now=now, max_id_length=20, max_entries=None)
        assert [(e.id_token, e.status, e.parent_token) for e in wanted.entries] == [
            ("CARD-1", "Accepted", "FLEET"),
            ("CARD-7", "Accepted", None),
            ("CARD-2", "Expired", None),
            ("CARD-3", "Blocked", None),
            ("CARD-6", "Invalid", None),
        ]
        assert wanted.left_out == 2
        # a station holding three entries gets the accepted ones first
        capped = desired_entries(tokens, now=now, max_id_length=20, max_entries=3)
        assert [e.id_token for e in capped.entries] == ["CARD-1", "CARD-7", "CARD-2"]
        assert capped.left_out == 4
        # 2.0.1 takes 36-character tokens
        assert desired_entries(tokens, now=now, max_id_length=36, max_entries=None).left_out == 1

    def test_a_differential_names_only_added_changed_and_removed_tokens(self) -> None:
        installed = {
            "KEEP": ListEntry("KEEP", "Accepted"),
            "BLOCK": ListEntry("BLOCK", "Accepted"),
            "GONE": ListEntry("GONE", "Accepted"),
        }
        desired = [ListEntry("KEEP", "Accepted"), ListEntry("BLOCK", "Blocked"), ListEntry("NEW", "Accepted")]
        updates = changes(installed, desired)
        assert {(u.id_tag, u.status) for u in updates} == {
            ("BLOCK", "Blocked"),
            ("NEW", "Accepted"),
            ("GONE", None),
        }
        plan = differential_plan(updates, base_version=4, per_message=2)
        assert [(p.version, len(p.entries)) for p in plan] == [(5, 2), (6, 1)]
        after = dict(installed)
        for command in plan:
            after = apply(after, command)
        assert after == {e.id_token: e for e in desired}
        # an empty organisation still gets a Full (empty) list
        [empty] = full_plan([], base_version=0, per_message=50)
        assert (empty.version, empty.update_type.value, empty.entries) == (1, "Full", ())
