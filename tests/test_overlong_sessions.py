"""A session running past the maximum duration is stopped at the station and flagged."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from api.worker.overlong import OVER_MAX_DURATION, stop_overlong_sessions
from schema.bus import InProcessBus
from schema.commands import RemoteStart
from schema.timeutil import utcnow
from tests.builders import ACCEPTED_TAGS
from tests.conftest import ChargerFactory
from tests.dbutil import fetch


class TestEternalSessions:
    async def test_stopped_remotely_and_flagged_past_the_limit_only(
        self, engine: AsyncEngine, bus: InProcessBus, station: int, connect_charger: ChargerFactory
    ) -> None:
        # given a running session
        charger = await connect_charger("CP-1", speed=60)
        sub = bus.subscribe("transactions")
        assert (
            await bus.request("CP-1", RemoteStart(id_tag=ACCEPTED_TAGS[0], connector_id=1), timeout=5)
        ).accepted
        started = await sub.next(5)
        # when the check runs with a limit it has not reached, nothing happens
        young = await stop_overlong_sessions(engine, bus, max_age_s=3600, command_timeout_s=5)
        assert (young.found, young.stopped) == (0, 0)
        # and once it is past the limit, the station is told to stop and the session is flagged
        later = utcnow() + timedelta(hours=2)
        old = await stop_overlong_sessions(engine, bus, max_age_s=3600, command_timeout_s=5, now=later)
        assert (old.found, old.stopped) == (1, 1)
        assert ("RemoteStopTransaction", {"transactionId": started.transaction_id}) in charger.received_calls  # type: ignore[attr-defined]
        for _ in range(100):
            rows = await fetch(engine, "SELECT state FROM charging_transaction")
            if rows[0]["state"] != "Active":
                break
            await asyncio.sleep(0.05)
        assert rows[0]["state"] != "Active"
        flags = await fetch(engine, "SELECT reason FROM stuck_session")
        assert flags == [{"reason": OVER_MAX_DURATION}]
        # and the flag is a durable event, the stop is in the command log as the system's
        durable = await fetch(
            engine, "SELECT event_type FROM outbox_event WHERE event_type = 'session.flagged'"
        )
        assert len(durable) == 1
        logged = await fetch(engine, "SELECT name, actor_kind, outcome, payload FROM station_command")
        assert [(r["name"], r["actor_kind"], r["outcome"]) for r in logged] == [
            ("RemoteStop", "system", "ACCEPTED")
        ]
        audited = await fetch(engine, "SELECT action, actor_label FROM audit_entry")
        assert {"action": "station.command.RemoteStop", "actor_label": "system"} in audited


class TestTheSetting:
    def test_the_job_runs_only_when_a_maximum_is_set_and_commands_can_be_sent(
        self, engine: AsyncEngine
    ) -> None:
        from api.worker.service import scheduled_jobs
        from api.worker.settings import WorkerSettings

        def names(hours: float, bus: InProcessBus | None) -> set[str]:
            settings = WorkerSettings(CHARGENET_MAX_SESSION_HOURS=hours)
            return {job.name for job in scheduled_jobs(engine, settings, bus)}

        assert "overlong-sessions" not in names(0, InProcessBus())
        assert "overlong-sessions" not in names(24, None)
        assert "overlong-sessions" in names(24, InProcessBus())
