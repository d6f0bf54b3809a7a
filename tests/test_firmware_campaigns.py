"""Firmware campaigns through the real API, the real gateway and simulated 1.6 and 2.0.1
chargers over real sockets: waves go out in turn, each station is followed through its
FirmwareStatusNotifications to a boot on the new version, failures pause the campaign, and
operators pause, resume and abort it. The progress job is called directly with an explicit
`now`, so wave intervals and timeouts pass without waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from api.auth.roles import Role
from api.firmware.progress import ProgressReport, advance_campaigns
from api.firmware.tracking import progress
from api.worker.service import scheduled_jobs
from api.worker.settings import WorkerSettings
from gateway.server import Gateway
from gateway.sim_v201 import SimCharger201
from gateway.simulator import SimCharger, SimConfig
from schema.bus import InProcessBus
from schema.campaign_models import CampaignStationState
from schema.db import session_factory
from schema.events import StationReported, station_topic
from schema.models import Organization
from schema.timeutil import utcnow
from tests.account_builders import add_member, make_user, sign_in
from tests.builders import make_location, make_org, make_station
from tests.conftest import ApiServer
from tests.dbutil import fetch, scalar
from tests.graphql_client import gql
from tests.test_access_matrix import SQLITE_ONLY, gid
from tests.test_remote_control import eventually

FIRMWARE = "ftp://files.example.com/chargenet-2.1.0.bin"  # the simulators install it as 2.1.0
TARGET = "2.1.0"
SPEED = 600.0  # a simulated update (download, install, reboot) takes well under a second
SLOW = 100.0
CAMPAIGN_FIELDS = """
  id name state currentWave waveCount pausedReason targetVersion createdBy runBy
  counts { total queued sent rejected offline downloading downloaded installing installed failed skipped }"""
CREATE = f"""
mutation ($input: CreateFirmwareCampaignInput!) {{
  createFirmwareCampaign(input: $input) {{ campaign {{ {CAMPAIGN_FIELDS} }} }} }}"""
TRANSITION = "mutation ($id: ID!) {{ {name}(id: $id) {{ campaign {{ {fields} }} }} }}"
CAMPAIGN = f"""
query ($id: ID!) {{ node(id: $id) {{ ... on FirmwareCampaign {{ {CAMPAIGN_FIELDS}
  stations(first: 50) {{ totalCount edges {{ node {{ id wave state attempts lastFirmwareStatus message
    commandId station {{ chargePointId }} }} }} }} }} }} }}"""
CAMPAIGNS = """
query { firmwareCampaigns(first: 10) { totalCount edges { node { id name state } } } }"""
COMMANDS = """
query ($s: ID!) { commands(stationId: $s, first: 20) {
  edges { node { id name outcome bulkId actor { kind label } } } } }"""


@dataclass(frozen=True)
class Operator:
    user_id: int
    token: str


async def make_operator(
    engine: AsyncEngine,
    api_server: ApiServer,
    *,
    name: str,
    org_slug: str = "acme",
    role: Role = Role.OPERATOR,
) -> Operator:
    user_id = await make_user(engine, email=f"{name}@example.com")
    await add_member(
        engine, user_id=user_id, organization_id=await make_org(engine, slug=org_slug), role=role
    )
    pair = await sign_in(engine, api_server.app.state.auth.keys, user_id=user_id)
    return Operator(user_id, pair.access_token)


Chargers = Callable[..., Awaitable[SimCharger]]


@pytest.fixture
async def chargers(gateway: Gateway) -> AsyncIterator[Chargers]:
    """Chargers kept connected by `run()`, as in the demo, so they come back after the reboot
    that ends an update (2.0.1 with v201=True)."""
    started: list[tuple[SimCharger, asyncio.Task[None]]] = []

    async def start(cpid: str, *, v201: bool = False, **cfg: Any) -> SimCharger:
        cfg = {
            "url": f"ws://127.0.0.1:{gateway.bound_port}/ocpp",
            "speed": SPEED,
            "connectors": [22_000],
            "heartbeat_interval_s": 3_600,
            **cfg,
        }
        charger = (SimCharger201 if v201 else SimCharger)(SimConfig(charge_point_id=cpid, **cfg))
        started.append((charger, asyncio.create_task(charger.run())))
        await asyncio.wait_for(charger.online.wait(), 10)
        return charger

    yield start
    for charger, task in started:
        await charger.close()
        task.cancel()


@pytest.fixture
async def operator(engine: AsyncEngine, api_server: ApiServer) -> Operator:
    return await make_operator(engine, api_server, name="olga")


async def stations(engine: AsyncEngine, *charge_point_ids: str) -> dict[str, int]:
    """Stations of organisation acme, created in the order given (so ids, and waves, follow it)."""
    return {cpid: await make_station(engine, charge_point_id=cpid, connectors=1) for cpid in charge_point_ids}


async def ok(http: httpx.AsyncClient, token: str, query: str, **variables: Any) -> dict[str, Any]:
    result = await gql(http, query, variables, token=token)
    assert not result.get("errors"), result
    data: dict[str, Any] = result["data"]
    return data


def error_code(result: dict[str, Any]) -> str:
    assert result.get("errors"), result
    return str(result["errors"][0]["extensions"]["code"])


async def create(
    http: httpx.AsyncClient, token: str, station_ids: list[int], **settings: Any
) -> dict[str, Any]:
    campaign_input = {
        "name": "Spring rollout",
        "location": FIRMWARE,
        "targetVersion": TARGET,
        "stations": {"stationIds": [gid("Station", i) for i in station_ids]},
        "start": True,
        **settings,
    }
    data = await ok(http, token, CREATE, input=campaign_input)
    campaign: dict[str, Any] = data["createFirmwareCampaign"]["campaign"]
    return campaign


async def act(http: httpx.AsyncClient, token: str, name: str, campaign_id: str) -> dict[str, Any]:
    return await gql(
        http, TRANSITION.format(name=name, fields="id state pausedReason"), {"id": campaign_id}, token=token
    )


async def read(http: httpx.AsyncClient, token: str, campaign_id: str) -> dict[str, Any]:
    node: dict[str, Any] = (await ok(http, token, CAMPAIGN, id=campaign_id))["node"]
    return node


def by_station(campaign: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["node"]["station"]["chargePointId"]: e["node"] for e in campaign["stations"]["edges"]}


def states(campaign: dict[str, Any]) -> dict[str, str]:
    return {cpid: s["state"] for cpid, s in by_station(campaign).items()}


async def update_calls(*chargers: SimCharger) -> list[str]:
    return [
        c.cfg.charge_point_id for c in chargers if any(a == "UpdateFirmware" for a, _ in c.received_calls)
    ]


async def run(engine: AsyncEngine, bus: InProcessBus, now: datetime | None = None) -> ProgressReport:
    return await advance_campaigns(engine, bus, command_timeout_s=5, now=now)


async def run_until(
    engine: AsyncEngine, bus: InProcessBus, done: Any, *, now: datetime | None = None, timeout: float = 10
) -> None:
    """Run the job until `done()` holds, as the scheduler would (every run sees fresh reports)."""

    async def step() -> bool:
        await run(engine, bus, now)
        return bool(await done())

    if not await eventually(step, timeout):
        found = await fetch(
            engine,
            "SELECT m.*, s.charge_point_id, s.firmware_status, s.firmware_status_at, s.firmware_version, "
            "s.last_boot_at FROM firmware_campaign_station m JOIN charging_station s ON s.id = m.station_id",
        )
        raise AssertionError(f"the campaign did not get there in time: {found}")


async def station_states(engine: AsyncEngine, campaign_pk: int) -> dict[str, str]:
    found = await fetch(
        engine,
        "SELECT s.charge_point_id, m.state FROM firmware_campaign_station m "
        "JOIN charging_station s ON s.id = m.station_id WHERE m.campaign_id = :c",
        c=campaign_pk,
    )
    return {r["charge_point_id"]: r["state"] for r in found}


async def campaign_state(engine: AsyncEngine, campaign_pk: int) -> str:
    return str(await scalar(engine, "SELECT state FROM firmware_campaign WHERE id = :c", c=campaign_pk))


def pk(global_id: str) -> int:
    from strawberry import relay

    return int(relay.GlobalID.from_id(global_id).node_id)


class TestRollout:
    async def test_a_mixed_fleet_updates_wave_by_wave_and_a_failing_station_is_recorded(
        self,
        engine: AsyncEngine,
        bus: InProcessBus,
        http: httpx.AsyncClient,
        operator: Operator,
        chargers: Chargers,
    ) -> None:
        # given two 1.6 and two 2.0.1 chargers of one organisation, one of which cannot install
        ids = await stations(engine, "CP-A16", "CP-B201", "CP-C16", "CP-D201")
        # (slower than elsewhere: an update takes about a second, so the job's second run
        # below surely finds wave 1 still at work)
        a = await chargers("CP-A16", speed=SLOW)
        b = await chargers("CP-B201", v201=True, speed=SLOW)
        c = await chargers("CP-C16", speed=SLOW)
        d = await chargers("CP-D201", v201=True, firmware_failure="InstallationFailed", speed=SLOW)
        await eventually(lambda: scalar(engine, "SELECT count(*) = 4 FROM charging_station WHERE online"))
        seen = bus.subscribe(station_topic(ids["CP-A16"]))
        # when an operator starts a campaign in waves of two, each after the previous finished
        created = await create(http, operator.token, list(ids.values()), waveSize=2, maxFailurePercent=50)
        campaign_pk = pk(created["id"])
        # then it runs, with four stations queued in two waves, nothing sent yet
        assert (created["state"], created["waveCount"], created["counts"]["queued"]) == ("RUNNING", 2, 4)
        assert created["createdBy"] == f"user:{operator.user_id}"
        assert await update_calls(a, b, c, d) == []

        # when the job runs: wave 1 (the first two stations) goes out, wave 2 waits
        report = await run(engine, bus)
        assert report.sent == 2
        assert await update_calls(a, b, c, d) == ["CP-A16", "CP-B201"]
        await run(engine, bus)
        assert await update_calls(a, b, c, d) == ["CP-A16", "CP-B201"], "wave 2 went before wave 1 finished"

        # then both stations of wave 1 install and reboot on 2.1.0, each in its own OCPP version
        async def wave_1_installed() -> bool:
            found = await station_states(engine, campaign_pk)
            return found["CP-A16"] == found["CP-B201"] == "installed"

        await run_until(engine, bus, wave_1_installed)
        assert a.firmware_version == b.firmware_version == TARGET
        # and wave 2 goes out on the next run
        await run(engine, bus)
        assert await update_calls(a, b, c, d) == ["CP-A16", "CP-B201", "CP-C16", "CP-D201"]

        # then CP-D201 reports InstallationFailed; at 1 failure of 2 (not above 50 %) the campaign completes
        async def completed() -> bool:
            return await campaign_state(engine, campaign_pk) == "completed"

        await run_until(engine, bus, completed)
        campaign = await read(http, operator.token, created["id"])
        assert states(campaign) == {
            "CP-A16": "INSTALLED",
            "CP-B201": "INSTALLED",
            "CP-C16": "INSTALLED",
            "CP-D201": "FAILED",
        }
        failed = by_station(campaign)["CP-D201"]
        assert (failed["lastFirmwareStatus"], failed["message"]) == (
            "InstallationFailed",
            "the station reported InstallationFailed",
        )
        assert {s["wave"] for s in by_station(campaign).values()} == {1, 2}
        assert (
            campaign["counts"]["installed"],
            campaign["counts"]["failed"],
            campaign["counts"]["total"],
        ) == (
            3,
            1,
            4,
        )
        # and no station of wave 2 was sent the update before wave 1 had finished
        rows = await fetch(
            engine,
            "SELECT wave, sent_at, updated_at FROM firmware_campaign_station WHERE campaign_id = :c",
            c=campaign_pk,
        )
        wave_1_done = max(r["updated_at"] for r in rows if r["wave"] == 1)
        assert min(r["sent_at"] for r in rows if r["wave"] == 2) > wave_1_done
        # and the command log names the operator and the campaign as the cause
        log = await ok(http, operator.token, COMMANDS, s=gid("Station", ids["CP-B201"]))
        command = next(e["node"] for e in log["commands"]["edges"] if e["node"]["name"] == "UpdateFirmware")
        assert (command["bulkId"], command["actor"]["label"], command["outcome"]) == (
            f"campaign:{campaign_pk}",
            f"user:{operator.user_id}",
            "ACCEPTED",
        )
        assert by_station(campaign)["CP-B201"]["commandId"] == command["id"]
        # and operators watching the station saw its progress live
        progress_events = []
        while True:
            try:
                event = await seen.next(0.01)
            except TimeoutError:
                break
            if isinstance(event, StationReported) and event.action == "FirmwareCampaignProgress":
                progress_events.append(event.detail["state"])
        assert progress_events[0] == "sent" and progress_events[-1] == "installed", progress_events
        seen.close()


class TestThresholdPauseResumeAbort:
    async def test_failures_pause_it_and_operators_steer_it(
        self,
        engine: AsyncEngine,
        bus: InProcessBus,
        http: httpx.AsyncClient,
        operator: Operator,
        chargers: Chargers,
    ) -> None:
        # given three chargers, the first of which cannot download the image
        ids = await stations(engine, "CP-F", "CP-G", "CP-H")
        f = await chargers("CP-F", firmware_failure="DownloadFailed")
        g = await chargers("CP-G")
        h = await chargers("CP-H")
        await eventually(lambda: scalar(engine, "SELECT count(*) = 3 FROM charging_station WHERE online"))
        # and a campaign of one station per wave, ten minutes apart, that tolerates no failure
        # (and waits a day for silent stations: the job's clock jumps hours ahead below)
        created = await create(
            http,
            operator.token,
            list(ids.values()),
            waveSize=1,
            waveIntervalSeconds=600,
            maxFailurePercent=0,
            stationTimeoutSeconds=86_400,
        )
        campaign_id, campaign_pk = created["id"], pk(created["id"])
        t0 = utcnow()
        # when wave 1 goes out and its station fails
        await run(engine, bus, t0)
        assert await update_calls(f, g, h) == ["CP-F"]

        async def paused() -> bool:
            return await campaign_state(engine, campaign_pk) == "paused"

        await run_until(engine, bus, paused, now=t0)
        # then the campaign paused itself, saying why
        campaign = await read(http, operator.token, campaign_id)
        assert campaign["pausedReason"] == "wave 1: 1 of 1 stations failed, more than the 0% allowed"
        assert states(campaign)["CP-F"] == "FAILED"
        # and no wave goes out while paused, however long it waits
        await run(engine, bus, t0 + timedelta(hours=1))
        assert await update_calls(f, g, h) == ["CP-F"]

        # when the operator resumes it
        resumed = await act(http, operator.token, "resumeFirmwareCampaign", campaign_id)
        assert resumed["data"]["resumeFirmwareCampaign"]["campaign"]["state"] == "RUNNING"
        # then wave 2 waits for its interval after wave 1...
        await run(engine, bus, t0 + timedelta(seconds=599))
        assert await update_calls(f, g, h) == ["CP-F"]
        # ...and goes out once it has passed; the tolerated failure of wave 1 does not pause it again
        await run(engine, bus, t0 + timedelta(seconds=601))
        assert await update_calls(f, g, h) == ["CP-F", "CP-G"]
        assert await campaign_state(engine, campaign_pk) == "running"

        # when the operator pauses it, wave 3 does not go out when due
        pause = await act(http, operator.token, "pauseFirmwareCampaign", campaign_id)
        assert (
            pause["data"]["pauseFirmwareCampaign"]["campaign"]["pausedReason"]
            == f"paused by user:{operator.user_id}"
        )
        assert error_code(await act(http, operator.token, "pauseFirmwareCampaign", campaign_id)) == (
            "INVALID_STATE_TRANSITION"
        )
        await run(engine, bus, t0 + timedelta(hours=2))
        assert await update_calls(f, g, h) == ["CP-F", "CP-G"]
        # when it is aborted, the station not yet sent to is skipped and nothing more goes out
        aborted = await act(http, operator.token, "abortFirmwareCampaign", campaign_id)
        assert aborted["data"]["abortFirmwareCampaign"]["campaign"]["state"] == "ABORTED"
        assert error_code(await act(http, operator.token, "resumeFirmwareCampaign", campaign_id)) == (
            "INVALID_STATE_TRANSITION"
        )

        # but the station already updating is still followed to the end
        async def g_installed() -> bool:
            return (await station_states(engine, campaign_pk))["CP-G"] == "installed"

        await run_until(engine, bus, g_installed, now=t0 + timedelta(hours=3))
        assert await update_calls(f, g, h) == ["CP-F", "CP-G"]
        assert await station_states(engine, campaign_pk) == {
            "CP-F": "failed",
            "CP-G": "installed",
            "CP-H": "skipped",
        }
        assert await campaign_state(engine, campaign_pk) == "aborted"


class TestOfflineStations:
    async def test_a_station_offline_when_its_wave_comes_is_sent_again_when_it_is_back(
        self,
        engine: AsyncEngine,
        bus: InProcessBus,
        http: httpx.AsyncClient,
        operator: Operator,
        chargers: Chargers,
    ) -> None:
        # given two stations of which only one is connected
        ids = await stations(engine, "CP-ON", "CP-LATE")
        on = await chargers("CP-ON")
        await eventually(lambda: scalar(engine, "SELECT count(*) = 1 FROM charging_station WHERE online"))
        created = await create(http, operator.token, list(ids.values()), waveSize=2)
        campaign_pk = pk(created["id"])
        # when their wave goes out
        t0 = utcnow()
        await run(engine, bus, t0)
        # then the absent one is recorded as offline, with the gateway's word
        campaign = await read(http, operator.token, created["id"])
        late = by_station(campaign)["CP-LATE"]
        assert (late["state"], late["attempts"]) == ("OFFLINE", 1)
        assert late["message"] == "station CP-LATE is not connected"
        assert await update_calls(on) == ["CP-ON"]

        # when the first station finishes, the campaign still waits for the offline one
        async def on_installed() -> bool:
            return (await station_states(engine, campaign_pk))["CP-ON"] == "installed"

        await run_until(engine, bus, on_installed, now=t0)
        assert await campaign_state(engine, campaign_pk) == "running"
        # and when it connects, it is sent the update and installs it
        late_cp = await chargers("CP-LATE")
        await eventually(lambda: scalar(engine, "SELECT count(*) = 2 FROM charging_station WHERE online"))

        async def completed() -> bool:
            return await campaign_state(engine, campaign_pk) == "completed"

        await run_until(engine, bus, completed, now=t0)
        assert await update_calls(late_cp) == ["CP-LATE"]
        assert await station_states(engine, campaign_pk) == {"CP-ON": "installed", "CP-LATE": "installed"}
        rows = await fetch(
            engine, "SELECT attempts FROM firmware_campaign_station WHERE station_id = :s", s=ids["CP-LATE"]
        )
        assert rows == [{"attempts": 2}]

    async def test_a_station_that_never_comes_back_does_not_hold_the_campaign_for_ever(
        self, engine: AsyncEngine, bus: InProcessBus, http: httpx.AsyncClient, operator: Operator
    ) -> None:
        # given a campaign whose only station is offline
        ids = await stations(engine, "CP-GONE")
        created = await create(http, operator.token, list(ids.values()), stationTimeoutSeconds=600)
        campaign_pk = pk(created["id"])
        t0 = utcnow()
        await run(engine, bus, t0)
        assert await station_states(engine, campaign_pk) == {"CP-GONE": "offline"}
        # when its timeout has not passed, the campaign waits for it
        await run(engine, bus, t0 + timedelta(seconds=300))
        assert await campaign_state(engine, campaign_pk) == "running"
        # then once it has, the campaign completes and the station stays offline
        await run(engine, bus, t0 + timedelta(seconds=700))
        assert await campaign_state(engine, campaign_pk) == "completed"
        campaign = await read(http, operator.token, created["id"])
        assert by_station(campaign)["CP-GONE"]["message"] == "offline until the campaign ended"


class TestCrashedRun:
    async def test_stations_of_a_wave_a_crashed_run_never_sent_to_are_sent_later(
        self, engine: AsyncEngine, bus: InProcessBus, http: httpx.AsyncClient, operator: Operator
    ) -> None:
        # given a campaign whose first wave was claimed by a run that died before sending
        ids = await stations(engine, "CP-ORPHAN")
        created = await create(http, operator.token, list(ids.values()))
        campaign_pk = pk(created["id"])
        t0 = utcnow()
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE firmware_campaign SET current_wave = 1, wave_sent_at = :t WHERE id = :c"),
                {"t": t0, "c": campaign_pk},
            )
        # when the job runs while that run could still be sending, it leaves the wave alone
        await run(engine, bus, t0 + timedelta(seconds=5))
        assert await station_states(engine, campaign_pk) == {"CP-ORPHAN": "queued"}
        # then once no run can still be at it, the station is sent to (and found offline)
        await run(engine, bus, t0 + timedelta(minutes=5))
        assert await station_states(engine, campaign_pk) == {"CP-ORPHAN": "offline"}
        assert await scalar(engine, "SELECT count(*) FROM station_command WHERE name = 'UpdateFirmware'") == 1


class TestRefusals:
    async def test_a_station_without_firmware_management_is_rejected_and_counts_as_a_failure(
        self,
        engine: AsyncEngine,
        bus: InProcessBus,
        http: httpx.AsyncClient,
        operator: Operator,
        chargers: Chargers,
    ) -> None:
        # given a 1.6 charger with the Core profile only, and a campaign that tolerates no failure
        ids = await stations(engine, "CP-CORE")
        await chargers("CP-CORE", feature_profiles=["Core"])
        await eventually(lambda: scalar(engine, "SELECT feature_profiles = 'Core' FROM charging_station"))
        created = await create(http, operator.token, list(ids.values()), maxFailurePercent=0)
        # when its wave goes out
        await run(engine, bus)
        await run(engine, bus)
        # then it is rejected with the reason, and the campaign paused
        campaign = await read(http, operator.token, created["id"])
        core = by_station(campaign)["CP-CORE"]
        assert (core["state"], campaign["state"], campaign["counts"]["rejected"]) == ("REJECTED", "PAUSED", 1)
        assert "FirmwareManagement" in core["message"]


class TestSilence:
    async def test_a_station_that_accepts_and_then_says_nothing_fails_after_the_timeout(
        self,
        engine: AsyncEngine,
        bus: InProcessBus,
        http: httpx.AsyncClient,
        operator: Operator,
        chargers: Chargers,
    ) -> None:
        # given a charger that accepts UpdateFirmware but never starts (its retrieve date is
        # ignored because it is scripted to answer without acting)
        ids = await stations(engine, "CP-MUTE")
        mute = await chargers("CP-MUTE")
        mute.on_call = lambda action, payload: {} if action == "UpdateFirmware" else None
        await eventually(lambda: scalar(engine, "SELECT online FROM charging_station"))
        created = await create(
            http, operator.token, list(ids.values()), stationTimeoutSeconds=900, maxFailurePercent=100
        )
        campaign_pk = pk(created["id"])
        t0 = utcnow()
        await run(engine, bus, t0)
        assert await station_states(engine, campaign_pk) == {"CP-MUTE": "sent"}
        # when the timeout passes without a word, it has failed (and the campaign, which
        # tolerates any failure share, completes)
        await run(engine, bus, t0 + timedelta(seconds=901))
        assert await station_states(engine, campaign_pk) == {"CP-MUTE": "failed"}
        await run(engine, bus, t0 + timedelta(seconds=902))
        assert await campaign_state(engine, campaign_pk) == "completed"


class TestAuthority:
    async def test_it_acts_for_whoever_ran_it_only_while_they_may(
        self,
        engine: AsyncEngine,
        bus: InProcessBus,
        api_server: ApiServer,
        http: httpx.AsyncClient,
        operator: Operator,
    ) -> None:
        # given a campaign of two waves the operator started (its stations are offline, which
        # holds back no wave)
        ids = await stations(engine, "CP-X1", "CP-X2")
        created = await create(http, operator.token, list(ids.values()), waveSize=1)
        campaign_pk = pk(created["id"])
        assert created["runBy"] == f"user:{operator.user_id}"
        await run(engine, bus)
        # when the operator is demoted to viewer
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE membership SET role = 'viewer' WHERE user_id = :u"), {"u": operator.user_id}
            )
        # then the campaign sends nothing more on their behalf, and says why
        await run(engine, bus)
        assert await campaign_state(engine, campaign_pk) == "paused"
        reason = await scalar(
            engine, "SELECT paused_reason FROM firmware_campaign WHERE id = :c", c=campaign_pk
        )
        assert reason == f"user:{operator.user_id} no longer holds stations:diagnose here; resume to continue"
        assert await station_states(engine, campaign_pk) == {"CP-X1": "offline", "CP-X2": "queued"}
        # when a technician resumes it, it goes on as theirs
        technician = await make_operator(engine, api_server, name="theo", role=Role.TECHNICIAN)
        resumed = await act(http, technician.token, "resumeFirmwareCampaign", created["id"])
        assert resumed["data"]["resumeFirmwareCampaign"]["campaign"]["state"] == "RUNNING"
        await run(engine, bus)
        logged = await fetch(
            engine,
            "SELECT station_id, actor_label, bulk_id FROM station_command WHERE name = 'UpdateFirmware' "
            "ORDER BY id",
        )
        assert [(r["station_id"], r["actor_label"]) for r in logged] == [
            (ids["CP-X1"], f"user:{operator.user_id}"),
            (ids["CP-X2"], f"user:{technician.user_id}"),
        ]
        assert {r["bulk_id"] for r in logged} == {f"campaign:{campaign_pk}"}


@SQLITE_ONLY
class TestAccess:
    async def test_filters_freeze_the_organisations_stations(
        self, engine: AsyncEngine, http: httpx.AsyncClient, operator: Operator
    ) -> None:
        # given acme stations on two firmware versions and at two sites, and a rival's station
        ids = await stations(engine, "CP-OLD-1", "CP-OLD-2", "CP-NEW")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE charging_station SET firmware_version = '1.0', vendor = 'Acme' "
                    "WHERE id IN (:a, :b)"
                ),
                {"a": ids["CP-OLD-1"], "b": ids["CP-OLD-2"]},
            )
            await conn.execute(
                text("UPDATE charging_station SET firmware_version = :v WHERE id = :c"),
                {"v": TARGET, "c": ids["CP-NEW"]},
            )
        rival = await _rival_station(engine, "CP-RIVAL")
        # when a campaign takes acme's stations on 1.0 of vendor acme (any case)
        by_version = await ok(
            http,
            operator.token,
            CREATE,
            input={
                "name": "old ones",
                "location": FIRMWARE,
                "stations": {"firmwareVersions": ["1.0"], "vendor": "ACME"},
            },
        )
        campaign = by_version["createFirmwareCampaign"]["campaign"]
        # then it holds exactly those two, as a draft
        assert (campaign["state"], campaign["counts"]["total"], campaign["counts"]["queued"]) == (
            "DRAFT",
            2,
            2,
        )
        # and a station already on the target version is skipped up front
        by_location = await ok(
            http,
            operator.token,
            CREATE,
            input={
                "name": "site",
                "location": FIRMWARE,
                "targetVersion": TARGET,
                "stations": {"stationIds": [gid("Station", ids["CP-NEW"]), gid("Station", ids["CP-OLD-1"])]},
            },
        )
        counts = by_location["createFirmwareCampaign"]["campaign"]["counts"]
        assert (counts["skipped"], counts["queued"]) == (1, 1)
        # and a filter that matches nothing, or names a rival's station, is refused
        empty = await gql(
            http,
            CREATE,
            {"input": {"name": "x", "location": FIRMWARE, "stations": {"firmwareVersions": ["9.9"]}}},
            token=operator.token,
        )
        assert error_code(empty) == "EMPTY_STATION_FILTER"
        spy = await gql(
            http,
            CREATE,
            {
                "input": {
                    "name": "x",
                    "location": FIRMWARE,
                    "stations": {"stationIds": [gid("Station", rival)]},
                }
            },
            token=operator.token,
        )
        assert error_code(spy) == "NOT_FOUND"
        no_filter = await gql(
            http, CREATE, {"input": {"name": "x", "location": FIRMWARE, "stations": {}}}, token=operator.token
        )
        assert error_code(no_filter) == "INVALID_INPUT"
        bad_url = await gql(
            http,
            CREATE,
            {"input": {"name": "x", "location": "file:///etc/passwd", "stations": {"vendor": "acme"}}},
            token=operator.token,
        )
        assert error_code(bad_url) == "INVALID_INPUT"

    async def test_another_organisation_neither_sees_nor_steers_the_campaign(
        self, engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient, operator: Operator
    ) -> None:
        # given a campaign of acme, and the owner of a rival organisation
        ids = await stations(engine, "CP-MINE")
        created = await create(http, operator.token, list(ids.values()), start=False)
        await _rival_station(engine, "CP-THEIRS")
        rival = await make_operator(engine, api_server, name="rita", org_slug="rival", role=Role.OWNER)
        viewer = await make_operator(engine, api_server, name="vic", role=Role.VIEWER)
        technician = await make_operator(engine, api_server, name="tess", role=Role.TECHNICIAN)
        # then the rival lists nothing, reads null, and every action is NOT_FOUND
        listed = await ok(http, rival.token, CAMPAIGNS)
        assert listed["firmwareCampaigns"]["totalCount"] == 0
        assert (await ok(http, rival.token, "query ($id: ID!) { node(id: $id) { id } }", id=created["id"]))[
            "node"
        ] is None
        for action in ("start", "pause", "resume", "abort"):
            result = await act(http, rival.token, f"{action}FirmwareCampaign", created["id"])
            assert error_code(result) == "NOT_FOUND", action
        # and a station id of acme in the rival's campaign is unknown to them
        spy = await gql(
            http,
            CREATE,
            {
                "input": {
                    "name": "x",
                    "location": FIRMWARE,
                    "stations": {"stationIds": [gid("Station", ids["CP-MINE"])]},
                }
            },
            token=rival.token,
        )
        assert error_code(spy) == "NOT_FOUND"
        # and within acme, a viewer (no stations:diagnose) sees nothing, a technician steers it
        assert (await ok(http, viewer.token, CAMPAIGNS))["firmwareCampaigns"]["totalCount"] == 0
        assert (
            error_code(await act(http, viewer.token, "startFirmwareCampaign", created["id"])) == "NOT_FOUND"
        )
        started = await act(http, technician.token, "startFirmwareCampaign", created["id"])
        assert started["data"]["startFirmwareCampaign"]["campaign"]["state"] == "RUNNING"
        listed = await ok(http, operator.token, CAMPAIGNS)
        assert [e["node"]["state"] for e in listed["firmwareCampaigns"]["edges"]] == ["RUNNING"]
        audit = await fetch(
            engine, "SELECT action FROM audit_entry WHERE target_type = 'firmware_campaign' ORDER BY id"
        )
        assert [r["action"] for r in audit] == ["firmware_campaign.create", "firmware_campaign.start"]


async def _rival_org(engine: AsyncEngine) -> int:
    """Organisation `rival` (make_org would give it acme's test tags, which are unique)."""
    async with session_factory(engine)() as s:
        found = (await s.exec(select(Organization).where(Organization.slug == "rival"))).first()
        if found is None:
            found = Organization(name="Rival", slug="rival")
            s.add(found)
            await s.commit()
        return found.id or 0


async def _rival_station(engine: AsyncEngine, charge_point_id: str) -> int:
    """A station of organisation `rival` (make_station files every station under acme)."""
    station_id = await make_station(engine, charge_point_id=charge_point_id, connectors=1)
    rival = await _rival_org(engine)
    location = await make_location(engine, name="Rival site", org_slug="rival")
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE charging_station SET organization_id = :o, location_id = :l WHERE id = :s"),
            {"o": rival, "l": location, "s": station_id},
        )
    return station_id


@dataclass
class _Member:
    sent_at: datetime
    state: str = CampaignStationState.SENT.value
    last_firmware_status: str | None = None
    last_firmware_status_at: datetime | None = None
    message: str | None = None


@dataclass
class _Station:
    firmware_status: str | None
    firmware_status_at: datetime | None
    firmware_version: str | None = "1.0"
    last_boot_at: datetime | None = None


class TestTrackingRules:
    """The rules on their own: which reports count, and what they make of the station."""

    T = datetime(2026, 5, 1, 12, 0, tzinfo=utcnow().tzinfo)

    def step(
        self, station: _Station, *, target: str | None = TARGET, minutes: float = 1
    ) -> tuple[str, str | None]:
        p = progress(
            _Member(sent_at=self.T),
            station,
            target_version=target,
            timeout_s=3600,
            now=self.T + timedelta(minutes=minutes),
        )
        return p.state.value, p.message

    def test_a_status_from_before_the_command_is_ignored(self) -> None:
        old = _Station("Installed", self.T - timedelta(days=3))
        assert self.step(old, target=None) == ("sent", None)

    def test_statuses_of_both_versions_advance_it(self) -> None:
        at = self.T + timedelta(seconds=5)
        assert self.step(_Station("DownloadScheduled", at))[0] == "downloading"
        assert self.step(_Station("SignatureVerified", at))[0] == "downloaded"
        assert self.step(_Station("InstallRebooting", at))[0] == "installing"
        assert self.step(_Station("InvalidSignature", at)) == (
            "failed",
            "the station reported InvalidSignature",
        )

    def test_with_a_target_installed_needs_a_boot_on_that_version(self) -> None:
        at = self.T + timedelta(seconds=5)
        assert self.step(_Station("Installed", at)) == (
            "installing",
            f"installed; waiting to boot with {TARGET}",
        )
        booted = _Station("Installed", at, TARGET, at + timedelta(seconds=5))
        assert self.step(booted) == ("installed", None)
        wrong = _Station("Installed", at, "1.0", at + timedelta(seconds=5))
        assert self.step(wrong) == ("failed", f"booted with firmware 1.0, expected {TARGET}")
        assert self.step(_Station("Installed", at), target=None) == ("installed", None)

    def test_silence_beyond_the_timeout_fails_it(self) -> None:
        at = self.T + timedelta(seconds=5)
        assert self.step(_Station("Downloading", at), minutes=30)[0] == "downloading"
        assert self.step(_Station("Downloading", at), minutes=61) == (
            "failed",
            "no progress reported for 60 min",
        )


def test_the_worker_runs_the_campaign_job_where_it_has_the_bus(
    engine: AsyncEngine, bus: InProcessBus
) -> None:
    settings = WorkerSettings()
    assert "firmware-campaigns" in {job.name for job in scheduled_jobs(engine, settings, bus)}
    assert "firmware-campaigns" not in {job.name for job in scheduled_jobs(engine, settings, None)}
