"""Rows as the gateway, the worker and offline detection write them, for health tests:
keyword-only builders of each input, and a station whose week went badly on all of them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.service import health_repository as repo
from tests.builders import make_station

LOW_SOC_PERCENT = 50.0  # the setting's default


async def add_faults(engine: AsyncEngine, station_id: int, *, at: list[datetime]) -> None:
    rows = [
        {
            "station_id": station_id,
            "connector_id": 1,
            "status": "Faulted",
            "error_code": "GroundFailure",
            "received_at": t,
        }
        for t in at
    ] + [
        # recoveries are status changes too, but no fault
        {
            "station_id": station_id,
            "connector_id": 1,
            "status": "Available",
            "error_code": "NoError",
            "received_at": t + timedelta(minutes=5),
        }
        for t in at
    ]
    await _insert(engine, repo.STATUS, rows)


async def add_sessions(
    engine: AsyncEngine,
    station_id: int,
    *,
    started: datetime,
    energy_wh: list[int],
    stop_reason: str = "EVDisconnected",
) -> list[int]:
    ids = []
    for i, wh in enumerate(energy_wh):
        t = started + timedelta(hours=i)
        async with engine.begin() as conn:
            result = await conn.execute(
                insert(repo.TRANSACTION)
                .values(
                    station_id=station_id,
                    connector_id=1,
                    start_key=f"h-{station_id}-{t.isoformat()}",
                    state="Completed",
                    started_at=t,
                    stopped_at=t + timedelta(minutes=30),
                    energy_wh=wh,
                    meter_start_wh=0,
                    meter_stop_wh=wh,
                    stop_reason=stop_reason,
                    created_at=t,
                )
                .returning(repo.TRANSACTION.c.id)
            )
            ids.append(int(result.scalar_one()))
    return ids


async def add_failed_requests(
    engine: AsyncEngine, station_id: int, *, at: datetime, reasons: list[str]
) -> None:
    rows = [
        {
            "station_id": station_id,
            "id_tag": "TAG-OK-1",
            "state": "failed",
            "failure_reason": reason,
            "created_at": at,
            "updated_at": at,
        }
        for reason in reasons
    ]
    await _insert(engine, repo.REQUEST, rows)


async def add_boots(engine: AsyncEngine, charge_point_id: str, *, at: list[datetime]) -> None:
    rows = [
        {
            "charge_point_id": charge_point_id,
            "direction": "in",
            "message_type": 2,
            "message_id": f"boot-{i}",
            "action": "BootNotification",
            "payload": '[2,"x","BootNotification",{}]',
            "logged_at": t,
        }
        for i, t in enumerate(at)
    ]
    await _insert(engine, repo.MESSAGE, rows)


async def add_offline_episodes(engine: AsyncEngine, station_id: int, *, at: list[datetime]) -> None:
    rows = [
        {
            "station_id": station_id,
            "connector_id": c,
            "cause": "offline",
            "started_at": t,
            "ended_at": t + timedelta(minutes=20),
        }
        for t in at
        for c in (1, 2)  # one row per connector, one episode
    ]
    await _insert(engine, repo.OUTAGE, rows)


async def add_power_samples(
    engine: AsyncEngine,
    station_id: int,
    transaction_id: int,
    *,
    start: datetime,
    points: list[tuple[float, float]],
) -> None:
    """(power W, SoC %) every minute, as a 1.6 charger's MeterValues store them; then what the
    worker keeps of the ended session (its TransactionEnded handler's check)."""
    rows: list[dict[str, Any]] = []
    for i, (power_w, soc) in enumerate(points):
        t = start + timedelta(minutes=i)
        base = {
            "station_id": station_id,
            "connector_id": 1,
            "transaction_id": transaction_id,
            "sampled_at": t,
        }
        rows.append(
            base
            | {
                "measurand": "Power.Active.Import",
                "unit": "W",
                "value": power_w,
                "location": "",
                "context": "Sample.Periodic",
            }
        )
        rows.append(
            base
            | {
                "measurand": "SoC",
                "unit": "Percent",
                "value": soc,
                "location": "EV",
                "context": "Sample.Periodic",
            }
        )
    await _insert(engine, repo.SAMPLE, rows)
    async with engine.begin() as conn:
        stopped = (
            await conn.execute(
                select(repo.TRANSACTION.c.stopped_at).where(repo.TRANSACTION.c.id == transaction_id)
            )
        ).scalar_one()
        await repo.check_session_power(
            conn, transaction_id, stopped_at=stopped, low_soc_percent=LOW_SOC_PERCENT
        )


async def _insert(engine: AsyncEngine, table: Any, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(table), rows)


async def troubled_station(engine: AsyncEngine, *, cpid: str, now: datetime) -> int:
    """A station whose week went badly on every input."""
    sid = await make_station(engine, charge_point_id=cpid, power_w=22_000)
    day = timedelta(days=1)
    await add_faults(
        engine, sid, at=[now - day * d - timedelta(hours=h) for d in range(1, 6) for h in (1, 3)]
    )
    failed = await add_sessions(engine, sid, started=now - 3 * day, energy_wh=[20, 0, 50, 15_000])
    await add_sessions(engine, sid, started=now - 2 * day, energy_wh=[9_000], stop_reason="PowerLoss")
    await add_failed_requests(
        engine,
        sid,
        at=now - day,
        reasons=["REJECTED: the station refused", "the payment was not confirmed within 180 s"],
    )
    # 7 boot frames, two pairs of them a retry a minute apart: 5 reboots
    boots = [now - day * d for d in (1, 2, 3, 4, 5)]
    await add_boots(
        engine, cpid, at=[*boots, boots[0] + timedelta(minutes=1), boots[1] + timedelta(seconds=30)]
    )
    await add_offline_episodes(engine, sid, at=[now - day * d for d in (1, 2, 4, 6)])
    # a good session at 3 kW on a 22 kW connector while the car was at 20–40 %: underpowered
    await add_power_samples(
        engine, sid, failed[3], start=now - 3 * day, points=[(3_000.0, 20.0 + i) for i in range(20)]
    )
    # out of the window: none of this counts
    await add_faults(engine, sid, at=[now - 9 * day])
    await add_boots(engine, cpid, at=[now - 10 * day])
    return sid
