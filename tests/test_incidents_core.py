"""The incident lifecycle shared by every serviceability part: one unresolved incident per
problem (also when workers race), recurrences counted, resolution automatic or by a person,
and live `IncidentChanged` events published only after the handler's transaction commits."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.service import incidents
from api.service.incidents import Problem
from api.worker.processor import HandlerRegistry, Processor, publish_after_commit
from schema.bus import InProcessBus
from schema.errors import InvalidInput
from schema.events import Event, TransactionEnded, organization_incidents_topic
from schema.incident_models import IncidentKind, IncidentSeverity
from schema.outbox import OutboxMessage, event_payload
from tests.account_builders import make_user
from tests.builders import make_station
from tests.dbutil import fetch

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def fault(
    station_id: int, *, severity: IncidentSeverity = IncidentSeverity.HIGH, auto: bool = True
) -> Problem:
    return Problem(
        station_id=station_id,
        connector_id=2,
        kind=IncidentKind.FAULT,
        severity=severity,
        dedup_key=incidents.dedup_key(IncidentKind.FAULT, station_id, 2, "GroundFailure"),
        title="Connector 2: GroundFailure",
        error_code="GroundFailure",
        vendor_error_code="E-17",
        auto_resolve=auto,
        evidence={"status": "Faulted", "errorCode": "GroundFailure"},
    )


async def test_repeat_sightings_recur_on_one_incident_and_raise_severity(engine: AsyncEngine) -> None:
    sid = await make_station(engine, charge_point_id="CP-I1")
    async with engine.begin() as conn:
        first = await incidents.open_or_recur(conn, fault(sid, severity=IncidentSeverity.MEDIUM), at=T0)
        again = await incidents.open_or_recur(conn, fault(sid), at=T0 + timedelta(minutes=5))
    assert first.change == "opened" and again.change == "recurred"
    assert first.incident_id == again.incident_id
    rows = await fetch(engine, "SELECT * FROM incident")
    assert len(rows) == 1
    row = rows[0]
    assert (row["occurrences"], row["severity"], row["vendor_error_code"]) == (2, "high", "E-17")
    assert again.event.severity == "high" and again.event.organization_id == row["organization_id"]
    kinds = [r["kind"] for r in await fetch(engine, "SELECT kind FROM incident_entry ORDER BY id")]
    assert kinds == ["opened", "evidence"]
    # Resolved, the same problem opens a new incident.
    async with engine.begin() as conn:
        done = await incidents.resolve_by_key(
            conn, row["dedup_key"], at=T0 + timedelta(hours=1), resolution="ok"
        )
        assert done is not None and done.change == "resolved"
        reopened = await incidents.open_or_recur(conn, fault(sid), at=T0 + timedelta(hours=2))
    assert reopened.change == "opened" and reopened.incident_id != first.incident_id


async def test_incidents_needing_a_technician_are_not_resolved_by_recovery(engine: AsyncEngine) -> None:
    sid = await make_station(engine, charge_point_id="CP-I2")
    async with engine.begin() as conn:
        opened = await incidents.open_or_recur(conn, fault(sid, auto=False), at=T0)
        recovered = await incidents.resolve_by_key(
            conn, fault(sid).dedup_key, at=T0 + timedelta(minutes=3), resolution="Available"
        )
    assert recovered is not None and recovered.change == "recovered"
    assert recovered.event.state == "open"
    user_id = await make_user(engine, email="tech@example.com")
    async with engine.begin() as conn:
        ack = await incidents.acknowledge(
            conn, opened.incident_id, at=T0 + timedelta(minutes=4), user_id=user_id
        )
        assert ack.event.state == "acknowledged"
        with pytest.raises(InvalidInput):
            await incidents.acknowledge(conn, opened.incident_id, at=T0, user_id=user_id)
        with pytest.raises(InvalidInput):
            await incidents.comment(conn, opened.incident_id, at=T0, user_id=user_id, text="  ")
        await incidents.comment(conn, opened.incident_id, at=T0, user_id=user_id, text="replaced the RCD")
        done = await incidents.resolve(
            conn, opened.incident_id, at=T0 + timedelta(minutes=9), user_id=user_id, resolution="RCD replaced"
        )
        assert done.event.state == "resolved"
        with pytest.raises(InvalidInput):
            await incidents.resolve(conn, opened.incident_id, at=T0, user_id=user_id, resolution="again")
    row = (await fetch(engine, "SELECT * FROM incident"))[0]
    assert row["resolved_by"] == user_id and row["acknowledged_by"] == user_id
    kinds = [r["kind"] for r in await fetch(engine, "SELECT kind FROM incident_entry ORDER BY id")]
    assert kinds == ["opened", "recovered", "acknowledged", "comment", "resolved"]


async def test_racing_workers_open_one_incident(engine: AsyncEngine, db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    sid = await make_station(engine, charge_point_id="CP-I3")

    async def sight(i: int) -> str:
        async with engine.begin() as conn:
            return (await incidents.open_or_recur(conn, fault(sid), at=T0 + timedelta(seconds=i))).change

    changes = await asyncio.gather(*(sight(i) for i in range(8)))
    assert sorted(changes).count("opened") == 1
    row = (await fetch(engine, "SELECT count(*) AS n, max(occurrences) AS occ FROM incident"))[0]
    assert (row["n"], row["occ"]) == (1, 8)


async def test_live_events_reach_the_bus_only_after_commit(engine: AsyncEngine) -> None:
    sid = await make_station(engine, charge_point_id="CP-I4")
    bus = InProcessBus()
    org = (await fetch(engine, f"SELECT organization_id FROM charging_station WHERE id = {sid}"))[0][
        "organization_id"
    ]
    sub = bus.subscribe(organization_incidents_topic(org))
    fail = {"now": True}

    async def handler(conn: AsyncConnection, event: Event) -> None:
        change = await incidents.open_or_recur(conn, fault(sid), at=event.at)
        publish_after_commit([change.event])
        if fail["now"]:
            raise RuntimeError("handler failed after opening")

    registry = HandlerRegistry()
    registry.register(TransactionEnded, handler)
    processor = Processor(engine, registry, consumer="test", bus=bus)
    message = _message(sid)
    with pytest.raises(RuntimeError):
        await processor.process(message)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(sub), 0.2)
    assert await fetch(engine, "SELECT id FROM incident") == []
    fail["now"] = False
    assert await processor.process(message)
    event = await asyncio.wait_for(anext(sub), 1)
    assert event.kind == "incident.changed" and event.change == "opened"  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError):
        publish_after_commit([event])
    async with engine.connect() as conn:
        assert (await conn.execute(select(incidents.INCIDENT.c.state))).scalar() == "open"


def _message(station_id: int) -> OutboxMessage:
    ended = TransactionEnded(
        station_id=station_id,
        charge_point_id="CP-I4",
        location_id=None,
        at=T0,
        transaction_id=1,
        connector_id=1,
        state="Ended",
        id_tag=None,
        started_at=T0,
        stopped_at=T0,
        meter_start_wh=0,
        energy_wh=0,
        power_w=None,
        soc_percent=None,
        last_sample_at=None,
        stop_reason=None,
    )
    return OutboxMessage(id=1, event_type=ended.kind, payload=event_payload(ended))


async def test_many_openings_on_one_connection_keep_finding_the_dedup_index(engine: AsyncEngine) -> None:
    """PostgreSQL plans a statement generically after five executions on a connection: the
    ON CONFLICT target must still match the partial index then (a bound 'resolved' would not)."""
    sid = await make_station(engine, charge_point_id="CP-I9", connectors=1)
    async with engine.begin() as conn:
        for n in range(12):
            problem = fault(sid)
            opened = await incidents.open_or_recur(
                conn, replace(problem, dedup_key=f"{problem.dedup_key}:{n}"), at=T0 + timedelta(minutes=n)
            )
            assert opened.change == "opened"
    assert len(await fetch(engine, "SELECT id FROM incident")) == 12
