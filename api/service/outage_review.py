"""A station's outages as an operator reviews them before classifying: each with its duration,
cause, error code and the exclusions that overlap it (revoked ones too, marked, so a
withdrawn classification stays visible)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from api.auth.principal import Principal
from api.auth.roles import Permission
from api.service import uptime_repository as repo
from schema.errors import InvalidInput, NotFound

# A review screen covers a quarter or a year; 400 days allows a year plus the days either side.
MAX_PERIOD = timedelta(days=400)
# Far more than a healthy port has in a year; a station flapping beyond it needs a technician,
# not a longer list.
MAX_OUTAGES = 2_000


@dataclass(frozen=True, slots=True)
class OutageView:
    outage: Row[Any]
    duration_s: int  # an open outage: until now
    exclusions: tuple[Row[Any], ...]


def _end(row: Row[Any], now: datetime) -> datetime:
    return now if row.ended_at is None else row.ended_at  # type: ignore[no-any-return]


def overlapping(outage: Row[Any], exclusions: Sequence[Row[Any]], now: datetime) -> tuple[Row[Any], ...]:
    """The exclusions of the outage's port or of its whole station that overlap it."""
    end = _end(outage, now)
    return tuple(
        x
        for x in exclusions
        if x.station_id == outage.station_id
        and x.connector_id in (None, outage.connector_id)
        and x.started_at < end
        and _end(x, now) > outage.started_at
    )


async def station_outages(
    conn: AsyncConnection,
    principal: Principal,
    station_id: int,
    since: datetime,
    until: datetime,
    *,
    now: datetime,
) -> list[OutageView]:
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidInput("from and to need a time zone offset")
    if not since < until <= since + MAX_PERIOD:
        raise InvalidInput(f"to must be after from, at most {MAX_PERIOD.days} days later")
    station = await repo.station(conn, station_id)
    if station is None or not principal.can(Permission.NETWORK_READ, station.organization_id):
        raise NotFound("no such station")
    scope = repo.Scope(station_id=station_id)
    outages = await repo.outages(conn, scope, since, until, limit=MAX_OUTAGES)
    # An outage may reach beyond [since, until): its exclusions are looked up over all of it.
    first = min((o.started_at for o in outages), default=since)
    last = max((_end(o, now) for o in outages), default=until)
    exclusions = await repo.exclusions(conn, scope, min(first, since), max(last, until))
    return [
        OutageView(
            o,
            int((_end(o, now) - o.started_at).total_seconds()),
            overlapping(o, exclusions, now),
        )
        for o in outages
    ]
