"""Connector and station status: current value, change history, and the live event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.state import ConnectorView, StationContext
from gateway.tables import CONNECTOR, STATION, STATUS_EVENT
from gateway.writer import Unit, Writer
from schema.events import Event
from schema.timeutil import utcnow

# Connectors a station reports that nobody registered get these defaults until an operator
# edits them; the station's own report is the source of truth that they exist.
DEFAULT_CONNECTOR_TYPE = "Type2"
DEFAULT_MAX_POWER_W = 22_000


@dataclass(frozen=True, slots=True)
class StatusReport:
    connector_id: int
    status: str
    error_code: str
    info: str | None = None
    vendor_error_code: str | None = None
    timestamp: datetime | None = None


async def record_status(writer: Writer, ctx: StationContext, report: StatusReport) -> None:
    """Apply a StatusNotification. Connector 0 is the station as a whole.

    Only a change (status, error or vendor code) is written to the history, so the repeats
    chargers send after every reconnect do not distort uptime and utilization figures.
    """
    now = utcnow()
    cid = report.connector_id
    if cid == 0:
        changed = (ctx.status, ctx.error_code) != (report.status, report.error_code)
        ctx.status, ctx.error_code = report.status, report.error_code
        view = None
        is_new = False
    else:
        view = ctx.connectors.get(cid)
        is_new = view is None
        if view is None:
            view = ConnectorView(cid)
            ctx.connectors[cid] = view
        changed = is_new or (view.status, view.error_code) != (report.status, report.error_code)
        if changed:
            view.status, view.error_code, view.status_since = report.status, report.error_code, now

    async def fn(conn: AsyncConnection, _events: list[Event]) -> None:
        if cid == 0:
            await conn.execute(
                update(STATION)
                .where(STATION.c.id == ctx.station_id)
                .values(status=report.status, error_code=report.error_code, last_seen_at=now)
            )
        elif is_new:
            await conn.execute(
                CONNECTOR.insert().values(
                    station_id=ctx.station_id,
                    connector_id=cid,
                    connector_type=DEFAULT_CONNECTOR_TYPE,
                    current_type="AC",
                    max_power_w=DEFAULT_MAX_POWER_W,
                    status=report.status,
                    error_code=report.error_code,
                    vendor_error_code=report.vendor_error_code,
                    info=report.info,
                    status_since=now,
                )
            )
        elif changed:
            await conn.execute(
                update(CONNECTOR)
                .where(CONNECTOR.c.station_id == ctx.station_id, CONNECTOR.c.connector_id == cid)
                .values(
                    status=report.status,
                    error_code=report.error_code,
                    vendor_error_code=report.vendor_error_code,
                    info=report.info,
                    status_since=now,
                )
            )
        if changed:
            await conn.execute(
                STATUS_EVENT.insert().values(
                    station_id=ctx.station_id,
                    connector_id=cid,
                    status=report.status,
                    error_code=report.error_code,
                    vendor_error_code=report.vendor_error_code,
                    info=report.info,
                    reported_at=report.timestamp,
                    received_at=now,
                )
            )

    events: list[Event] = [ctx.status_event(now, changed_connector_id=cid)] if changed else []
    await writer.submit(Unit(fn=fn, events=events))
