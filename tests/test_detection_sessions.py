"""A connector where n sessions in a row failed (under 0.1 kWh, an error stop reason, or a
start the station refused or never made) is "not charging"; a good session resets the count
and resolves the incident. Failures that are not the connector's do not count."""

from __future__ import annotations

import itertools

from sqlalchemy.ext.asyncio import AsyncEngine

from api.service.failed_sessions import STREAK
from api.service.incidents import INCIDENT
from api.worker.service import DurableWork
from gateway.simulator import SimCharger
from schema.events import ChargingRequestFailed
from schema.outbox import append
from schema.timeutil import utcnow
from tests.builders import ACCEPTED_TAGS
from tests.conftest import ChargerFactory
from tests.detection_world import detector, gateway, make_watched_station, rows, wait_for
from tests.ocpp201 import ts

__all__ = ["detector", "gateway"]  # fixtures, imported for pytest

METER_START = 1_000_000
MINUTES = itertools.count(0, 5)


async def session(cp: SimCharger, *, energy_wh: int, reason: str = "Local", connector: int = 1) -> int:
    """One session on `connector`; each starts later than the last (an identical start would
    be a resend of the previous one, OCPP 1.6 §4.8)."""
    minute = next(MINUTES)
    start = await cp.call(
        "StartTransaction",
        {
            "connectorId": connector,
            "idTag": ACCEPTED_TAGS[0],
            "meterStart": METER_START,
            "timestamp": ts(minute),
        },
    )
    tx = int(start["transactionId"])
    await cp.call(
        "StopTransaction",
        {
            "transactionId": tx,
            "meterStop": METER_START + energy_wh,
            "timestamp": ts(minute + 1),
            "reason": reason,
        },
    )
    return tx


async def streak(engine: AsyncEngine, expected: int) -> None:
    await wait_for(engine, STREAK, lambda r: len(r) == 1 and r[0]["failures"] == expected)


class TestConsecutiveFailures:
    async def test_the_third_failed_session_opens_an_incident_a_good_one_resolves_it(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        # given a connector where sessions deliver (next to) nothing
        await make_watched_station(engine, charge_point_id="CP-N1", heartbeat_s=300)
        cp = await connect_charger("CP-N1")
        await session(cp, energy_wh=20)
        await session(cp, energy_wh=5_000, reason="EmergencyStop")  # energy, but an error stop
        await streak(engine, 2)
        # then two failures are not yet an incident
        assert await rows(engine, INCIDENT) == []
        # when the third fails
        await session(cp, energy_wh=0)
        [incident] = await wait_for(engine, INCIDENT, lambda r: len(r) == 1)
        assert (incident["kind"], incident["connector_id"], incident["severity"]) == (
            "not_charging",
            1,
            "high",
        )
        # when a driver then charges properly
        await session(cp, energy_wh=12_000)
        # then the count is reset and the incident resolved by itself
        [incident] = await wait_for(engine, INCIDENT, lambda r: r[0]["state"] == "resolved")
        assert incident["resolved_by"] is None
        await streak(engine, 0)

    async def test_a_good_session_in_between_breaks_the_run(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        await make_watched_station(engine, charge_point_id="CP-N2", heartbeat_s=300)
        cp = await connect_charger("CP-N2")
        for energy in (10, 10, 8_000, 10, 10):
            await session(cp, energy_wh=energy)
        await streak(engine, 2)
        assert await rows(engine, INCIDENT) == []

    async def test_refused_starts_count_but_an_offline_station_does_not(
        self, engine: AsyncEngine, detector: DurableWork, connect_charger: ChargerFactory
    ) -> None:
        sid = await make_watched_station(engine, charge_point_id="CP-N3", heartbeat_s=300)
        cp = await connect_charger("CP-N3")
        await session(cp, energy_wh=0)
        await session(cp, energy_wh=0)
        await streak(engine, 2)

        def failed(request_id: int, reason: str) -> ChargingRequestFailed:
            return ChargingRequestFailed(
                station_id=sid,
                charge_point_id="CP-N3",
                location_id=None,
                at=utcnow(),
                request_id=request_id,
                connector_id=1,
                user_id=None,
                reason=reason,
            )

        # when the worker records a start the station was offline for: not the connector's fault
        async with engine.begin() as conn:
            await append(conn, [failed(1, "STATION_OFFLINE: the station is not connected")], utcnow())
        detector.nudge()
        await streak(engine, 2)
        assert await rows(engine, INCIDENT) == []
        # when a start is refused by the station, it is the third failure
        async with engine.begin() as conn:
            await append(conn, [failed(2, "REJECTED: the station refused")], utcnow())
        detector.nudge()
        [incident] = await wait_for(engine, INCIDENT, lambda r: len(r) == 1)
        assert incident["kind"] == "not_charging"
