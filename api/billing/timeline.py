"""A stored session as the price engine reads it: register readings and the end of charging.

Energy comes from the register samples (Energy.Active.Import.Register, all phases together),
framed by the session's start and stop registers. Charging ended when the connector last left
`Charging` during the session without coming back (StatusNotification history); a station that
never reports `Charging` is taken to have charged until its register stopped rising.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from api.billing.pricing import Timeline
from schema.models import ConnectorStatusEvent, MeterSample, Transaction
from schema.timeutil import utcnow

TRANSACTION = Transaction.__table__  # type: ignore[attr-defined]
SAMPLE = MeterSample.__table__  # type: ignore[attr-defined]
STATUS = ConnectorStatusEvent.__table__  # type: ignore[attr-defined]
REGISTER = "Energy.Active.Import.Register"
CHARGING = "Charging"
# Register units a station may report, in Wh.
_WH = {"Wh": 1, "kWh": 1000, None: 1}


async def of_session(
    conn: AsyncConnection, transaction_id: int, *, now: datetime | None = None
) -> Timeline | None:
    """The session so far (an active one up to `now`), or None if there is no such session."""
    tx = (await conn.execute(select(TRANSACTION).where(TRANSACTION.c.id == transaction_id))).first()
    if tx is None:
        return None
    end = max(tx.stopped_at or now or utcnow(), tx.started_at)
    rows = await conn.execute(
        select(SAMPLE.c.sampled_at, SAMPLE.c.value, SAMPLE.c.unit)
        .where(
            SAMPLE.c.transaction_id == transaction_id,
            SAMPLE.c.measurand == REGISTER,
            SAMPLE.c.phase == "",
            SAMPLE.c.location.in_(("", "Outlet")),
        )
        .order_by(SAMPLE.c.sampled_at)
    )
    readings = [(tx.started_at, int(tx.meter_start_wh))]
    for r in rows:
        if tx.started_at <= r.sampled_at and (tx.stopped_at is None or r.sampled_at <= tx.stopped_at):
            readings.append((r.sampled_at, round(r.value * _WH.get(r.unit, 1))))
    # a running session lasts at least until its latest reading (a station clock a little ahead)
    end = max(end, readings[-1][0])
    if tx.meter_stop_wh is not None and tx.stopped_at is not None:
        readings.append((tx.stopped_at, int(tx.meter_stop_wh)))
    charging_end = await _charging_ended(conn, tx.station_id, tx.connector_id, tx.started_at, end)
    if charging_end is None and tx.stopped_at is not None:
        charging_end = _register_stopped_rising(readings)
    return Timeline(tx.started_at, end, tuple(readings), charging_end)


async def _charging_ended(
    conn: AsyncConnection, station_id: int, connector_id: int, start: datetime, end: datetime
) -> datetime | None:
    """When the connector left Charging for the last time, if it did and never came back;
    None if it never reported Charging (then the register decides) or is still charging."""
    rows = (
        await conn.execute(
            select(STATUS.c.status, STATUS.c.reported_at, STATUS.c.received_at)
            .where(
                STATUS.c.station_id == station_id,
                STATUS.c.connector_id == connector_id,
                STATUS.c.received_at >= start,
            )
            .order_by(STATUS.c.received_at, STATUS.c.id)
        )
    ).all()
    seen_charging = False
    left_at: datetime | None = None
    for r in rows:
        at = r.reported_at or r.received_at
        if at > end:
            break
        if r.status == CHARGING:
            seen_charging, left_at = True, None
        elif seen_charging and left_at is None:
            left_at = at
    return left_at if seen_charging else None


def _register_stopped_rising(readings: list[tuple[datetime, int]]) -> datetime | None:
    """The first reading that already shows the final register (None if it rose to the end)."""
    final = readings[-1][1]
    first = next((at for at, wh in readings if wh >= final), None)
    return None if first is None or first == readings[-1][0] else first
