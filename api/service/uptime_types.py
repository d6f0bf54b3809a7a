"""GraphQL shapes of uptime: figures per month, port, station, location and network; outages
under review and the exclusions that classify them (network:read)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeAlias

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.roles import Permission
from api.network.types import int_ids
from api.service import uptime_repository as repo
from api.service import uptime_rollups as rollups
from api.service.outage_review import OutageView
from api.service.uptime import SECONDS_PER_MINUTE, MonthFigure, PortFigure
from schema.incident_models import ExclusionReason, OutageCause

strawberry.enum(ExclusionReason, name="ExclusionReason", description="Why an outage does not count (NEVI).")
strawberry.enum(OutageCause, name="OutageCause", description="Why a port could not charge.")
ExclusionReasonGQL: TypeAlias = ExclusionReason
OutageCauseGQL: TypeAlias = OutageCause


def minutes(seconds: int) -> float:
    return round(seconds / SECONDS_PER_MINUTE, 2)


def station_gid(station_id: int) -> relay.GlobalID:
    return relay.GlobalID("Station", str(station_id))


@strawberry.type(
    name="OutageExclusion",
    description="An interval excluded from uptime on one port or (connectorId null) every port "
    "of a station. Revoked ones count for nothing but stay visible.",
)
class OutageExclusionNode(relay.Node):
    id: relay.NodeID[int]
    station_id: relay.GlobalID
    connector_id: int | None
    start: datetime
    end: datetime | None
    reason: ExclusionReasonGQL
    note: str | None
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, r: Any) -> OutageExclusionNode:
        return cls(
            id=r.id,
            station_id=station_gid(r.station_id),
            connector_id=r.connector_id,
            start=r.started_at,
            end=r.ended_at,
            reason=ExclusionReason(r.reason),
            note=r.note,
            created_at=r.created_at,
            revoked_at=r.revoked_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[OutageExclusionNode | None]:
        principal = info.context.principal
        ids = int_ids(node_ids)
        out: list[OutageExclusionNode | None] = []
        async with info.context.db() as s:
            conn = await s.connection()
            for i in ids:
                row = await repo.exclusion(conn, i)
                visible = row is not None and principal.can(Permission.NETWORK_READ, row.organization_id)
                out.append(cls.from_row(row) if visible else None)
        return out


@strawberry.type(description="An interval one port could not deliver energy.")
class PortOutage:
    station_id: relay.GlobalID
    connector_id: int
    cause: OutageCauseGQL
    error_code: str | None
    start: datetime
    end: datetime | None = strawberry.field(description="Null while the port is still down.")
    duration_minutes: float = strawberry.field(description="Until now for an open outage.")
    exclusions: list[OutageExclusionNode] = strawberry.field(
        description="Exclusions of this port or its whole station overlapping the outage."
    )

    @classmethod
    def from_view(cls, v: OutageView) -> PortOutage:
        o = v.outage
        return cls(
            station_id=station_gid(o.station_id),
            connector_id=o.connector_id,
            cause=OutageCause(o.cause),
            error_code=o.error_code,
            start=o.started_at,
            end=o.ended_at,
            duration_minutes=minutes(v.duration_s),
            exclusions=[OutageExclusionNode.from_row(x) for x in v.exclusions],
        )


@strawberry.type(description="µ = (P − (T_outage − T_excluded)) / P × 100 over one period.")
class UptimeFigure:
    uptime: float = strawberry.field(description="Percent.")
    period_minutes: float
    outage_minutes: float = strawberry.field(description="T_outage: the union of the outages.")
    excluded_minutes: float = strawberry.field(description="T_excluded: the part of T_outage excluded.")


def _figure(f: MonthFigure | PortFigure) -> UptimeFigure:
    return UptimeFigure(
        uptime=f.uptime,
        period_minutes=minutes(f.period_s),
        outage_minutes=minutes(f.outage_s),
        excluded_minutes=minutes(f.excluded_s),
    )


@strawberry.type(description="One UTC calendar month of a port.")
class UptimeMonth:
    month: str = strawberry.field(description="YYYY-MM (UTC).")
    figure: UptimeFigure


@strawberry.type(description="One port (connector) over the window, and per month.")
class PortUptime:
    connector_id: int
    figure: UptimeFigure
    months: list[UptimeMonth]

    @classmethod
    def from_figure(cls, f: PortFigure) -> PortUptime:
        return cls(
            connector_id=f.connector_id,
            figure=_figure(f),
            months=[UptimeMonth(month=m.month.label(), figure=_figure(m)) for m in f.months],
        )


@strawberry.type(name="StationUptime", description="A station: the mean of its ports' figures.")
class StationUptimeType:
    station_id: relay.GlobalID
    charge_point_id: str
    uptime: float
    below_threshold: bool
    ports: list[PortUptime]

    @classmethod
    def from_station(cls, s: rollups.StationUptime) -> StationUptimeType:
        return cls(
            station_id=station_gid(s.station_id),
            charge_point_id=s.charge_point_id,
            uptime=s.uptime,
            below_threshold=s.below_threshold,
            ports=[PortUptime.from_figure(p) for p in s.ports],
        )


@strawberry.type(name="LocationUptime", description="A location: the mean of its ports' figures.")
class LocationUptimeType:
    location_id: relay.GlobalID | None
    name: str | None
    uptime: float
    stations: int
    ports: int

    @classmethod
    def from_location(cls, loc: rollups.LocationUptime) -> LocationUptimeType:
        return cls(
            location_id=None if loc.location_id is None else relay.GlobalID("Location", str(loc.location_id)),
            name=loc.name,
            uptime=loc.uptime,
            stations=loc.stations,
            ports=loc.ports,
        )


@strawberry.type(
    name="UptimeReport", description="An organisation's uptime over the window (UTC calendar months)."
)
class UptimeReportType:
    # Stations and locations are shaped only when asked for: a network figure over 10,000
    # ports need not build 120,000 month objects.
    report: strawberry.Private[rollups.UptimeReport]

    @strawberry.field
    def start(self) -> datetime:
        return self.report.window.start

    @strawberry.field
    def end(self) -> datetime:
        return self.report.window.end

    @strawberry.field
    def months(self) -> list[str]:
        return [m.label() for m in self.report.window.months]

    @strawberry.field
    def threshold(self) -> float:
        return self.report.threshold

    @strawberry.field(description="The network: the mean of every port's figure; null without ports.")
    def uptime(self) -> float | None:
        return self.report.uptime

    @strawberry.field
    def ports(self) -> int:
        return self.report.ports

    @strawberry.field
    def stations_below_threshold(self) -> int:
        return len(self.report.below())

    @strawberry.field
    def stations(self) -> list[StationUptimeType]:
        return [StationUptimeType.from_station(s) for s in self.report.stations]

    @strawberry.field
    def locations(self) -> list[LocationUptimeType]:
        return [LocationUptimeType.from_location(loc) for loc in self.report.locations]
