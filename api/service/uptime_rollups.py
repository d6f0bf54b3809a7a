"""Uptime of an organisation's network, its locations, stations and ports over a window.

A roll-up is the mean of its ports' figures, each port counting once: NEVI's unit is the port
(680.116(b) asks ≥ 97 % per port), so a location with twelve ports weighs twelve times a
single-port site, and a station of two ports at 100 % and 90 % reads 95 %. A station is flagged
when its figure is below the threshold (97 % by default, the rule's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.auth.principal import Principal
from api.auth.roles import Permission
from api.service import uptime_repository as repo
from api.service.uptime import PortFigure, PortKey, Timeline, Window, epoch, figures_by_port, mean_uptime
from schema.errors import Forbidden, InvalidInput

NEVI_THRESHOLD = 97.0
# Enough to keep both the database and this process busy (two cores each way) without taking
# more than a few connections of the pool.
OUTAGE_SLICES = 4
# Two years of months is what a trend chart shows; more is a data export, not a report.
MAX_MONTHS = 24


@dataclass(frozen=True, slots=True)
class StationUptime:
    station_id: int
    charge_point_id: str
    location_id: int | None
    uptime: float
    below_threshold: bool
    ports: tuple[PortFigure, ...]


@dataclass(frozen=True, slots=True)
class LocationUptime:
    location_id: int | None
    name: str | None
    uptime: float
    stations: int
    ports: int


@dataclass(frozen=True, slots=True)
class UptimeReport:
    organization_id: int
    window: Window
    threshold: float
    uptime: float | None  # None: no port existed during the window
    stations: tuple[StationUptime, ...]
    locations: tuple[LocationUptime, ...]

    @property
    def ports(self) -> int:
        return sum(len(s.ports) for s in self.stations)

    def below(self) -> list[StationUptime]:
        """Flagged stations, worst first."""
        return sorted((s for s in self.stations if s.below_threshold), key=lambda s: (s.uptime, s.station_id))


def require(principal: Principal, permission: Permission, organization_id: int | None) -> None:
    if not principal.can(permission, organization_id):
        raise Forbidden(f"requires {permission.value} at this organisation")


def check_options(months: int, threshold: float) -> None:
    if not 1 <= months <= MAX_MONTHS:
        raise InvalidInput(f"months must be between 1 and {MAX_MONTHS}")
    if not 0 <= threshold <= 100:
        raise InvalidInput("threshold is a percentage between 0 and 100")


async def organization_uptime(
    db: async_sessionmaker[AsyncSession],
    principal: Principal,
    organization_id: int,
    window: Window,
    *,
    threshold: float = NEVI_THRESHOLD,
) -> UptimeReport:
    require(principal, Permission.NETWORK_READ, organization_id)
    return await compute_uptime(db, organization_id, window, threshold=threshold)


def _slices(station_ids: Sequence[int], count: int) -> list[tuple[int, int]]:
    """`count` ranges of station ids of about equal size, in order."""
    size = -(-len(station_ids) // count)
    return [
        (station_ids[k], station_ids[min(k + size, len(station_ids)) - 1])
        for k in range(0, len(station_ids), size)
    ]


async def compute_uptime(
    db: async_sessionmaker[AsyncSession],
    organization_id: int,
    window: Window,
    *,
    threshold: float = NEVI_THRESHOLD,
) -> UptimeReport:
    """The report, for a caller already allowed to read it (a signed export link).

    The outages are read in OUTAGE_SLICES ranges of stations, each on its own connection and
    all at once: the database aggregates the later slices while this process merges the
    earlier ones, so its work and ours overlap instead of adding up. (Slices may read
    snapshots a few milliseconds apart; a report is as of about now either way.)
    """
    since, until, now = window.start, window.end, epoch(window.now)
    async with db() as s:
        conn = await s.connection()
        port_rows = await repo.ports(conn, organization_id)
        exclusions = await repo.exclusion_spans(conn, organization_id, since, until)
    station_ids = sorted({r.station_id for r in port_rows})
    if not station_ids:
        return roll_up(organization_id, window, threshold, port_rows, [])

    async def fetch(lo: int, hi: int) -> dict[PortKey, Timeline]:
        async with db() as s:
            conn = await s.connection()
            return await repo.outage_timelines(
                conn, organization_id, since, until, now=now, stations=(lo, hi)
            )

    slices = _slices(station_ids, OUTAGE_SLICES)
    tasks = [asyncio.create_task(fetch(lo, hi)) for lo, hi in slices]
    ports = repo.as_ports(port_rows)
    port_figures: list[PortFigure] = []
    try:
        for (lo, hi), task in zip(slices, tasks, strict=True):
            timelines = await task
            in_slice = [p for p in ports if lo <= p.station_id <= hi]
            port_figures += figures_by_port(in_slice, timelines, exclusions, window)
    finally:
        for task in tasks:
            task.cancel()
    return roll_up(organization_id, window, threshold, port_rows, port_figures)


def roll_up(
    organization_id: int,
    window: Window,
    threshold: float,
    port_rows: Sequence[Row[Any]],
    port_figures: Sequence[PortFigure],
) -> UptimeReport:
    station_info = {r.station_id: r for r in port_rows}
    by_station: dict[int, list[PortFigure]] = {}
    for f in port_figures:
        by_station.setdefault(f.station_id, []).append(f)
    stations: list[StationUptime] = []
    by_location: dict[int | None, list[StationUptime]] = {}
    for station_id, ports in by_station.items():
        info = station_info[station_id]
        value = mean_uptime(ports) or 0.0
        s = StationUptime(
            station_id, info.charge_point_id, info.location_id, value, value < threshold, tuple(ports)
        )
        stations.append(s)
        by_location.setdefault(info.location_id, []).append(s)
    locations = tuple(
        LocationUptime(
            location_id,
            station_info[members[0].station_id].location_name,
            mean_uptime(p for s in members for p in s.ports) or 0.0,
            len(members),
            sum(len(s.ports) for s in members),
        )
        for location_id, members in by_location.items()
    )
    return UptimeReport(
        organization_id, window, threshold, mean_uptime(port_figures), tuple(stations), locations
    )
