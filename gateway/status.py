"""Connector and station status: current value, change history, and the live event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, update

from gateway.state import ConnectorView, StationContext
from gateway.tables import CONNECTOR, STATION, STATUS_EVENT
from gateway.writer import Unit, Writer
from schema.timeutil import utcnow

# Connectors a station reports that nobody registered get these defaults until an operator
# edits them; the station's own report is the source of truth that they exist.
DEFAULT_CONNECTOR_TYPE = "Type2"
DEFAULT_MAX_POWER_W = 22_000


# Bound statements, so the writer merges every status in a batch into one executemany each.
_STATION_STATUS = (
    update(STATION)
    .where(STATION.c.id == bindparam("b_station_id"))
    .values(
        status=bindparam("b_status"), error_code=bindparam("b_error_code"), last_seen_at=bindparam("b_now")
    )
)
_CONNECTOR_STATUS = (
    update(CONNECTOR)
    .where(
        CONNECTOR.c.station_id == bindparam("b_station_id"),
        CONNECTOR.c.connector_id == bindparam("b_connector_id"),
    )
    .values(
        status=bindparam("b_status"),
        error_code=bindparam("b_error_code"),
        vendor_error_code=bindparam("b_vendor_error_code"),
        info=bindparam("b_info"),
        status_since=bindparam("b_now"),
    )
)


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

    unit = Unit()
    if cid == 0:
        unit.updates.append(
            (
                _STATION_STATUS,
                {
                    "b_station_id": ctx.station_id,
                    "b_status": report.status,
                    "b_error_code": report.error_code,
                    "b_now": now,
                },
            )
        )
    elif is_new:
        unit.inserts.append(
            (
                CONNECTOR,
                [
                    {
                        "station_id": ctx.station_id,
                        "connector_id": cid,
                        "connector_type": DEFAULT_CONNECTOR_TYPE,
                        "current_type": "AC",
                        "max_power_w": DEFAULT_MAX_POWER_W,
                        "status": report.status,
                        "error_code": report.error_code,
                        "vendor_error_code": report.vendor_error_code,
                        "info": report.info,
                        "status_since": now,
                    }
                ],
            )
        )
    elif changed:
        unit.updates.append(
            (
                _CONNECTOR_STATUS,
                {
                    "b_station_id": ctx.station_id,
                    "b_connector_id": cid,
                    "b_status": report.status,
                    "b_error_code": report.error_code,
                    "b_vendor_error_code": report.vendor_error_code,
                    "b_info": report.info,
                    "b_now": now,
                },
            )
        )
    if changed:
        unit.inserts.append(
            (
                STATUS_EVENT,
                [
                    {
                        "station_id": ctx.station_id,
                        "connector_id": cid,
                        "status": report.status,
                        "error_code": report.error_code,
                        "vendor_error_code": report.vendor_error_code,
                        "info": report.info,
                        "reported_at": report.timestamp,
                        "received_at": now,
                    }
                ],
            )
        )
        unit.events.append(ctx.status_event(now, changed_connector_id=cid))
    await writer.submit(unit)
