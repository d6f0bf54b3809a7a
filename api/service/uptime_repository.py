"""Every query uptime needs: an organisation's ports, the outages and exclusions overlapping a
window, a station's outages with their exclusions, a port's failed sessions.

Roll-ups read only the rows that overlap the window, of one organisation, with times as epoch
seconds computed by the database: a year of outages of 10,000 ports is then a few hundred
thousand small integer rows, merged in one pass in Python (api.service.uptime).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from operator import gt
from typing import Any

from sqlalchemy import BigInteger, Row, String, and_, cast, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.sqltypes import NullType

from api.service.uptime import ExclusionSpan, Port, PortKey, Timeline, timeline
from schema.incident_models import OutageExclusion, PortOutage
from schema.models import ChargingStation, Connector, ConnectorStatusEvent, Location, Transaction

STATION = ChargingStation.__table__  # type: ignore[attr-defined]
CONNECTOR = Connector.__table__  # type: ignore[attr-defined]
LOCATION = Location.__table__  # type: ignore[attr-defined]
OUTAGE = PortOutage.__table__  # type: ignore[attr-defined]
EXCLUSION = OutageExclusion.__table__  # type: ignore[attr-defined]
TRANSACTION = Transaction.__table__  # type: ignore[attr-defined]
STATUS = ConnectorStatusEvent.__table__  # type: ignore[attr-defined]


class epoch_seconds(FunctionElement[int]):  # lower case: it reads like the SQL function it is
    """A timestamp column as integer seconds since 1970 (UTC), computed by the database."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch_seconds, "postgresql")
def _epoch_pg(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # date_part gives a double; EXTRACT gives a numeric since PostgreSQL 14, several times
    # slower over a few hundred thousand rows.
    return f"CAST(date_part('epoch', {compiler.process(element.clauses, **kw)}) AS BIGINT)"


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps UTC timestamps as naive ISO text (schema.timeutil.UTCDateTime).
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


def _overlapping(table: Any, since: datetime, until: datetime) -> Any:
    return and_(table.c.started_at < until, or_(table.c.ended_at.is_(None), table.c.ended_at > since))


async def ports(conn: AsyncConnection, organization_id: int) -> list[Row[Any]]:
    """Every connector of the organisation's stations, with its station and location."""
    stmt = (
        select(
            STATION.c.id.label("station_id"),
            STATION.c.charge_point_id,
            STATION.c.location_id,
            LOCATION.c.name.label("location_name"),
            epoch_seconds(STATION.c.created_at).label("created_at"),
            CONNECTOR.c.connector_id,
        )
        .select_from(CONNECTOR.join(STATION, STATION.c.id == CONNECTOR.c.station_id))
        .outerjoin(LOCATION, LOCATION.c.id == STATION.c.location_id)
        .where(STATION.c.organization_id == organization_id)
        .order_by(STATION.c.id, CONNECTOR.c.connector_id)
    )
    return list((await conn.execute(stmt)).all())


def as_ports(rows: Sequence[Row[Any]]) -> list[Port]:
    return [Port(r.station_id, r.connector_id, r.created_at) for r in rows]


def _spans(table: Any, organization_id: int, since: datetime, until: datetime, *where: Any) -> Any:
    """(station, connector, start, end) in epoch seconds of the organisation's rows of
    `table` overlapping [since, until)."""
    return (
        select(
            table.c.station_id,
            table.c.connector_id,
            epoch_seconds(table.c.started_at),
            epoch_seconds(table.c.ended_at),
        )
        .select_from(table.join(STATION, STATION.c.id == table.c.station_id))
        .where(STATION.c.organization_id == organization_id, _overlapping(table, since, until), *where)
    )


async def outage_timelines(
    conn: AsyncConnection,
    organization_id: int,
    since: datetime,
    until: datetime,
    *,
    now: int,
    stations: tuple[int, int] | None = None,
) -> dict[PortKey, Timeline]:
    """Each port's outages overlapping the window as (starts, ends) sorted by start, open
    ones ending at `now`.

    One row per port, its outages aggregated by the database: 10,000 rows of lists travel far
    faster than a few hundred thousand rows of integers through the driver one by one. On
    PostgreSQL two arrays (asyncpg decodes them in C): aggregates of one query level read the
    same input rows in the same order, so the k-th start and the k-th end are one outage;
    ordering inside the aggregates would cost a sort per port, so rows come in index order
    and are sorted here only when they are not. SQLite has no arrays: pairs come as text.
    """
    where = () if stations is None else (OUTAGE.c.station_id.between(*stations),)
    spans = _spans(OUTAGE, organization_id, since, until, *where).subquery()
    start, end = spans.c[2], func.coalesce(spans.c[3], now)
    port = (spans.c.station_id, spans.c.connector_id)
    out: dict[PortKey, Timeline] = {}
    if conn.dialect.name == "postgresql":
        # NullType: asyncpg's lists as they come, without SQLAlchemy's per-item array processing.
        raw = NullType()
        stmt = select(*port, func.array_agg(start, type_=raw), func.array_agg(end, type_=raw)).group_by(*port)
        for r in await conn.execute(stmt):
            starts, ends = list(r[2]), list(r[3])
            if any(map(gt, starts, islice(starts, 1, None))):
                starts, ends = timeline(zip(starts, ends, strict=True))
            out[(int(r[0]), int(r[1]))] = (starts, ends)
        return out
    pairs = func.aggregate_strings(cast(start, String) + literal(":") + cast(end, String), ",")
    for r in await conn.execute(select(*port, pairs).group_by(*port)):
        spans_of_port = (p.partition(":") for p in str(r[2]).split(","))
        out[(int(r[0]), int(r[1]))] = timeline((int(a), int(b)) for a, _, b in spans_of_port)
    return out


async def exclusion_spans(
    conn: AsyncConnection, organization_id: int, since: datetime, until: datetime
) -> list[ExclusionSpan]:
    """Unrevoked exclusions of the organisation's stations overlapping the window."""
    stmt = _spans(EXCLUSION, organization_id, since, until, EXCLUSION.c.revoked_at.is_(None))
    return [ExclusionSpan(r[0], r[1], r[2], r[3]) for r in await conn.execute(stmt)]


async def station(conn: AsyncConnection, station_id: int) -> Row[Any] | None:
    stmt = select(STATION.c.id, STATION.c.organization_id, STATION.c.charge_point_id).where(
        STATION.c.id == station_id
    )
    return (await conn.execute(stmt)).first()


async def connector_exists(conn: AsyncConnection, station_id: int, connector_id: int) -> bool:
    stmt = select(CONNECTOR.c.id).where(
        CONNECTOR.c.station_id == station_id, CONNECTOR.c.connector_id == connector_id
    )
    return (await conn.execute(stmt)).first() is not None


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose rows: one station's, or every station's of an organisation."""

    station_id: int | None = None
    organization_id: int | None = None

    def of(self, table: Any) -> Any:
        if self.station_id is not None:
            return table.c.station_id == self.station_id
        stations = select(STATION.c.id).where(STATION.c.organization_id == self.organization_id)
        return table.c.station_id.in_(stations)


async def outages(
    conn: AsyncConnection, scope: Scope, since: datetime, until: datetime, *, limit: int | None = None
) -> list[Row[Any]]:
    """Outages overlapping [since, until), by station, oldest first."""
    stmt = (
        select(OUTAGE)
        .where(scope.of(OUTAGE), _overlapping(OUTAGE, since, until))
        .order_by(OUTAGE.c.station_id, OUTAGE.c.started_at, OUTAGE.c.connector_id, OUTAGE.c.id)
        .limit(limit)
    )
    return list((await conn.execute(stmt)).all())


async def exclusions(conn: AsyncConnection, scope: Scope, since: datetime, until: datetime) -> list[Row[Any]]:
    """Exclusions overlapping [since, until), revoked ones included (an operator reviewing
    outages must see what was withdrawn, too)."""
    stmt = (
        select(EXCLUSION)
        .where(scope.of(EXCLUSION), _overlapping(EXCLUSION, since, until))
        .order_by(EXCLUSION.c.station_id, EXCLUSION.c.started_at, EXCLUSION.c.id)
    )
    return list((await conn.execute(stmt)).all())


async def exclusion(conn: AsyncConnection, exclusion_id: int) -> Row[Any] | None:
    return (await conn.execute(select(EXCLUSION).where(EXCLUSION.c.id == exclusion_id))).first()


async def failed_sessions(
    conn: AsyncConnection,
    organization_id: int,
    since: datetime,
    until: datetime,
    *,
    error_stop_reasons: Sequence[str],
    min_energy_wh: int,
) -> list[Row[Any]]:
    """Sessions of the organisation's stations that stopped in [since, until) with an error
    stop reason or less than `min_energy_wh`."""
    stmt = (
        select(
            TRANSACTION.c.id,
            TRANSACTION.c.station_id,
            TRANSACTION.c.connector_id,
            TRANSACTION.c.started_at,
            TRANSACTION.c.stopped_at,
            TRANSACTION.c.energy_wh,
            TRANSACTION.c.stop_reason,
        )
        .select_from(TRANSACTION.join(STATION, STATION.c.id == TRANSACTION.c.station_id))
        .where(
            STATION.c.organization_id == organization_id,
            TRANSACTION.c.stopped_at >= since,
            TRANSACTION.c.stopped_at < until,
            or_(TRANSACTION.c.stop_reason.in_(error_stop_reasons), TRANSACTION.c.energy_wh < min_energy_wh),
        )
        .order_by(TRANSACTION.c.station_id, TRANSACTION.c.connector_id, TRANSACTION.c.stopped_at)
    )
    return list((await conn.execute(stmt)).all())


async def error_codes(
    conn: AsyncConnection, organization_id: int, since: datetime, until: datetime
) -> list[Row[Any]]:
    """Status reports with an error code (≠ NoError) of the organisation's stations in
    [since, until)."""
    stmt = (
        select(
            STATUS.c.station_id,
            STATUS.c.connector_id,
            STATUS.c.received_at,
            STATUS.c.error_code,
            STATUS.c.vendor_error_code,
        )
        .select_from(STATUS.join(STATION, STATION.c.id == STATUS.c.station_id))
        .where(
            STATION.c.organization_id == organization_id,
            STATUS.c.received_at >= since,
            STATUS.c.received_at < until,
            STATUS.c.error_code != "NoError",
        )
        .order_by(STATUS.c.station_id, STATUS.c.connector_id, STATUS.c.received_at)
    )
    return list((await conn.execute(stmt)).all())
