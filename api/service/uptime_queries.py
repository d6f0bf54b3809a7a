"""Uptime reads (network:read in the organisation): the roll-up, the stations below the
threshold, and a station's outages for review."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import Has
from api.auth.roles import Permission
from api.network.types import parse_global_id
from api.orgs.types import parse_organization_id
from api.service import outage_review, uptime_export, uptime_rollups, uptime_routes
from api.service.uptime import Window
from api.service.uptime_types import PortOutage, StationUptimeType, UptimeReportType
from schema.timeutil import utcnow

NEVI_THRESHOLD = uptime_rollups.NEVI_THRESHOLD


async def _report(
    info: Info, organization_id: relay.GlobalID, months: int, threshold: float
) -> uptime_rollups.UptimeReport:
    uptime_rollups.check_options(months, threshold)
    return await uptime_rollups.organization_uptime(
        info.context.db,
        info.context.principal,
        parse_organization_id(organization_id),
        Window.trailing(utcnow(), months),
        threshold=threshold,
    )


@strawberry.type
class UptimeQuery:
    @strawberry.field(
        permission_classes=[Has(Permission.NETWORK_READ)],
        description="NEVI uptime of the organisation's ports over the last `months` complete UTC "
        "months, rolled up per station, location and network (each port counting once); "
        "stations below `threshold` percent are flagged.",
    )
    async def uptime(
        self,
        info: Info,
        organization_id: relay.GlobalID,
        months: int = 12,
        threshold: float = NEVI_THRESHOLD,
    ) -> UptimeReportType:
        return UptimeReportType(report=await _report(info, organization_id, months, threshold))

    @strawberry.field(
        permission_classes=[Has(Permission.NETWORK_READ)],
        description="Stations whose uptime over the last `months` complete UTC months is below "
        "`threshold` percent, worst first.",
    )
    async def stations_below_uptime(
        self,
        info: Info,
        organization_id: relay.GlobalID,
        threshold: float = NEVI_THRESHOLD,
        months: int = 12,
    ) -> list[StationUptimeType]:
        report = await _report(info, organization_id, months, threshold)
        return [StationUptimeType.from_station(s) for s in report.below()]

    @strawberry.field(
        permission_classes=[Has(Permission.NETWORK_READ)],
        description="A link to the quarter's uptime CSV (per port: uptime, T_outage and "
        "T_excluded per month, each outage, failed sessions' error codes and stop reasons; the "
        "fields 23 CFR 680.112 asks for) that works without a bearer token until it expires.",
    )
    def uptime_export_url(
        self,
        info: Info,
        organization_id: relay.GlobalID,
        year: int,
        quarter: int,
        expires_in_minutes: int | None = None,
    ) -> str:
        export = uptime_export.quarter_request(
            info.context.principal, parse_organization_id(organization_id), year, quarter
        )
        token = uptime_routes.export_token(info.context.settings, export, expires_in_minutes)
        base = str(info.context.request.base_url).rstrip("/")
        return f"{base}{uptime_routes.EXPORT_PATH}?token={token}"

    @strawberry.field(
        permission_classes=[Has(Permission.NETWORK_READ)],
        description="The station's port outages overlapping [from, to) (at most 400 days), oldest "
        "first and at most 2,000, each with the exclusions overlapping it.",
    )
    async def port_outages(
        self,
        info: Info,
        station_id: relay.GlobalID,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
    ) -> list[PortOutage]:
        async with info.context.db() as s:
            views = await outage_review.station_outages(
                await s.connection(),
                info.context.principal,
                parse_global_id(station_id, "Station"),
                from_,
                to,
                now=utcnow(),
            )
        return [PortOutage.from_view(v) for v in views]
