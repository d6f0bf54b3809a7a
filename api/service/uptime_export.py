"""The quarterly uptime CSV: what 23 CFR 680.112 asks an operator to report per port.

One file, one row per fact, the kind in the first column so a spreadsheet filters it:

- `port`: the port's uptime over the quarter and over the 12 months ending with it (the
  680.116(b) figure), T_outage and T_excluded of the quarter;
- `month`: the same per month of the quarter;
- `outage`: each outage overlapping the quarter: start, end (empty while open), duration,
  cause, error code and the reasons of the unrevoked exclusions covering it;
- `failed_session`: each session of the port that ended in the quarter with an error stop
  reason or under 0.1 kWh, with the error codes the port reported while it ran.

Minutes have two decimals; times are ISO 8601 UTC. A quarter still running counts to now.
"""

from __future__ import annotations

import csv
import io
from bisect import bisect_left, bisect_right
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth.principal import Principal
from api.auth.roles import Permission
from api.service import uptime_repository as repo
from api.service.failure_rules import ERROR_STOP_REASONS, MIN_ENERGY_WH
from api.service.outage_review import overlapping
from api.service.uptime import SECONDS_PER_MINUTE, Month, PortFigure, Window, quarter_months
from api.service.uptime_rollups import compute_uptime, require
from schema.db import session_factory
from schema.errors import InvalidInput
from schema.timeutil import utcnow

COLUMNS = (
    "record",
    "station_id",
    "connector_id",
    "location",
    "period",
    "uptime_percent",
    "uptime_12_months_percent",
    "outage_minutes",
    "excluded_minutes",
    "start",
    "end",
    "duration_minutes",
    "cause",
    "error_code",
    "exclusion_reason",
    "transaction_id",
    "stop_reason",
    "energy_kwh",
)
ROWS_PER_CHUNK = 500


@dataclass(frozen=True, slots=True)
class QuarterRequest:
    organization_id: int
    year: int
    quarter: int

    def link_payload(self) -> dict[str, Any]:
        return {"o": self.organization_id, "y": self.year, "q": self.quarter}

    @classmethod
    def from_link(cls, payload: dict[str, Any]) -> QuarterRequest:
        return cls(int(payload["o"]), int(payload["y"]), int(payload["q"]))

    @property
    def months(self) -> list[Month]:
        return quarter_months(self.year, self.quarter)

    def filename(self) -> str:
        return f"uptime-{self.year}-Q{self.quarter}.csv"


def quarter_request(principal: Principal, organization_id: int, year: int, quarter: int) -> QuarterRequest:
    """A quarter that has begun, of an organisation whose network the caller may read."""
    require(principal, Permission.NETWORK_READ, organization_id)
    if not 1 <= quarter <= 4:
        raise InvalidInput("quarter is 1, 2, 3 or 4")
    if not 2000 <= year <= 9999:
        raise InvalidInput("year out of range")
    request = QuarterRequest(organization_id, year, quarter)
    if request.months[0].start > utcnow():
        raise InvalidInput("that quarter has not begun")
    return request


def _minutes(seconds: int) -> str:
    return f"{seconds / SECONDS_PER_MINUTE:.2f}"


def _percent(value: float) -> str:
    return f"{value:.3f}"


def _kwh(wh: int | None) -> str:
    value = int(wh or 0)
    return f"{value // 1000}.{value % 1000:03d}"


def _row(record: str, station: str, connector: int, **fields: Any) -> list[Any]:
    base = {"record": record, "station_id": station, "connector_id": connector}
    return [fields.get(c, base.get(c, "")) for c in COLUMNS]


def _port_rows(
    station: str, location: str, period: str, quarter: PortFigure, year: PortFigure | None
) -> list[list[Any]]:
    rows = [
        _row(
            "port",
            station,
            quarter.connector_id,
            location=location,
            period=period,
            uptime_percent=_percent(quarter.uptime),
            uptime_12_months_percent="" if year is None else _percent(year.uptime),
            outage_minutes=_minutes(quarter.outage_s),
            excluded_minutes=_minutes(quarter.excluded_s),
        )
    ]
    for m in quarter.months:
        rows.append(
            _row(
                "month",
                station,
                quarter.connector_id,
                location=location,
                period=m.month.label(),
                uptime_percent=_percent(m.uptime),
                outage_minutes=_minutes(m.outage_s),
                excluded_minutes=_minutes(m.excluded_s),
            )
        )
    return rows


def _error_codes(events: Sequence[Row[Any]], since: datetime, until: datetime) -> str:
    """Codes reported in [since, until] by one port, in order, each once."""
    times = [e.received_at for e in events]
    seen: dict[str, None] = {}
    for e in events[bisect_left(times, since) : bisect_right(times, until)]:
        code = e.error_code if not e.vendor_error_code else f"{e.error_code}/{e.vendor_error_code}"
        seen[code] = None
    return ";".join(seen)


async def csv_chunks(engine: AsyncEngine, request: QuarterRequest) -> AsyncIterator[str]:
    """The CSV text, header first, in chunks of about ROWS_PER_CHUNK rows. The request was
    authorised when it was made (`quarter_request`) or signed into a link."""
    now = utcnow()
    quarter = Window(tuple(request.months), now)
    trailing = Window.trailing(request.months[-1].end, 12) if request.months[-1].end <= now else None
    since, until = quarter.start, quarter.end
    scope = repo.Scope(organization_id=request.organization_id)
    db = session_factory(engine)
    q_report = await compute_uptime(db, request.organization_id, quarter)
    y_report = None if trailing is None else await compute_uptime(db, request.organization_id, trailing)
    async with engine.connect() as conn:
        ports = {(r.station_id, r.connector_id): r for r in await repo.ports(conn, request.organization_id)}
        outage_rows = await repo.outages(conn, scope, since, until)
        exclusion_rows = await repo.exclusions(conn, scope, since, until)
        sessions = await repo.failed_sessions(
            conn,
            request.organization_id,
            since,
            until,
            error_stop_reasons=sorted(ERROR_STOP_REASONS),
            min_energy_wh=MIN_ENERGY_WH,
        )
        events = await repo.error_codes(conn, request.organization_id, since, until)
    yearly = (
        {}
        if y_report is None
        else {(p.station_id, p.connector_id): p for s in y_report.stations for p in s.ports}
    )
    by_station: dict[int, list[Row[Any]]] = {}
    for x in exclusion_rows:
        if x.revoked_at is None:
            by_station.setdefault(x.station_id, []).append(x)
    outages_of: dict[tuple[int, int], list[Row[Any]]] = {}
    for o in outage_rows:
        outages_of.setdefault((o.station_id, o.connector_id), []).append(o)
    sessions_of: dict[tuple[int, int], list[Row[Any]]] = {}
    for t in sessions:
        sessions_of.setdefault((t.station_id, t.connector_id), []).append(t)
    events_of: dict[tuple[int, int], list[Row[Any]]] = {}
    for e in events:
        events_of.setdefault((e.station_id, e.connector_id), []).append(e)

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    period = f"{request.year}-Q{request.quarter}"
    written = 0
    for station in q_report.stations:
        for figure in station.ports:
            key = (figure.station_id, figure.connector_id)
            info = ports[key]
            name, location = info.charge_point_id, info.location_name or ""
            rows = _port_rows(name, location, period, figure, yearly.get(key))
            for o in outages_of.get(key, ()):
                end = o.ended_at or now
                reasons = sorted({x.reason for x in overlapping(o, by_station.get(o.station_id, ()), now)})
                rows.append(
                    _row(
                        "outage",
                        name,
                        o.connector_id,
                        location=location,
                        start=o.started_at.isoformat(),
                        end="" if o.ended_at is None else o.ended_at.isoformat(),
                        duration_minutes=_minutes(int((end - o.started_at).total_seconds())),
                        cause=o.cause,
                        error_code=o.error_code or "",
                        exclusion_reason=";".join(reasons),
                    )
                )
            port_events = events_of.get(key, [])
            for t in sessions_of.get(key, ()):
                rows.append(
                    _row(
                        "failed_session",
                        name,
                        t.connector_id,
                        location=location,
                        start=t.started_at.isoformat(),
                        end=t.stopped_at.isoformat(),
                        error_code=_error_codes(port_events, t.started_at, t.stopped_at),
                        transaction_id=t.id,
                        stop_reason=t.stop_reason or "",
                        energy_kwh=_kwh(t.energy_wh),
                    )
                )
            writer.writerows(rows)
            written += len(rows)
            if written >= ROWS_PER_CHUNK:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
                written = 0
    yield buffer.getvalue()
