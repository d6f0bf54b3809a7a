"""Drivers report a problem at a station from the app; the operator gets it as an incident.

Each report is kept as the driver sent it and opens — or recurs on — one DRIVER_REPORT
incident per station, connector and category, so ten drivers reporting the same broken cable
make one incident with ten occurrences. The driver sees the status of its own reports only
(received / being fixed / fixed), derived from the incident and its work orders; never other
drivers' reports nor what the operator wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from api.auth.principal import Principal
from api.auth.roles import Permission
from api.files import service as files
from api.service import incidents
from api.service import work_orders as wo
from api.service.work_order_details import decode_photo
from schema.errors import InvalidInput, NotFound, RateLimited
from schema.events import Event
from schema.incident_models import IncidentKind, IncidentSeverity, IncidentState
from schema.maintenance_models import DriverReport, WorkOrderState
from schema.models import Connector

REPORT = DriverReport.__table__  # type: ignore[attr-defined]
CONNECTOR = Connector.__table__  # type: ignore[attr-defined]

MAX_TEXT = 2000
# A driver at a broken station reports once, maybe twice; more than this an hour is noise
# (or abuse) that would flood the operator's incidents.
REPORTS_PER_HOUR = 5
# The same driver on the same connector: one report per window is enough for the operator.
SAME_CONNECTOR_WINDOW = timedelta(minutes=10)


class ProblemCategory(StrEnum):
    NOT_CHARGING = "not_charging"
    CONNECTOR_DAMAGED = "connector_damaged"
    STATION_DAMAGED = "station_damaged"
    PAYMENT = "payment"
    DISPLAY = "display"
    ACCESS_BLOCKED = "access_blocked"
    OTHER = "other"


SEVERITY: dict[ProblemCategory, IncidentSeverity] = {
    ProblemCategory.NOT_CHARGING: IncidentSeverity.HIGH,
    ProblemCategory.CONNECTOR_DAMAGED: IncidentSeverity.HIGH,
    ProblemCategory.STATION_DAMAGED: IncidentSeverity.HIGH,
    ProblemCategory.PAYMENT: IncidentSeverity.MEDIUM,
    ProblemCategory.DISPLAY: IncidentSeverity.MEDIUM,
    ProblemCategory.ACCESS_BLOCKED: IncidentSeverity.LOW,
    ProblemCategory.OTHER: IncidentSeverity.LOW,
}


class ReportStatus(StrEnum):
    RECEIVED = "received"
    BEING_FIXED = "being_fixed"
    FIXED = "fixed"


@dataclass(frozen=True, slots=True)
class Photo:
    file_name: str
    content_type: str
    data_base64: str


async def _rate_limit(
    conn: AsyncConnection, user_id: int, station_id: int, connector_id: int | None, at: datetime
) -> None:
    recent = (
        await conn.execute(
            select(func.count()).where(
                REPORT.c.user_id == user_id, REPORT.c.created_at > at - timedelta(hours=1)
            )
        )
    ).scalar_one()
    if recent >= REPORTS_PER_HOUR:
        raise RateLimited("too many problem reports; try again later", retry_after_s=3600)
    same = (
        await conn.execute(
            select(func.count()).where(
                REPORT.c.user_id == user_id,
                REPORT.c.station_id == station_id,
                REPORT.c.connector_id.is_(None)
                if connector_id is None
                else REPORT.c.connector_id == connector_id,
                REPORT.c.created_at > at - SAME_CONNECTOR_WINDOW,
            )
        )
    ).scalar_one()
    if same:
        raise RateLimited(
            "you reported this already; the operator has it",
            retry_after_s=SAME_CONNECTOR_WINDOW.total_seconds(),
        )


async def report(
    conn: AsyncConnection,
    *,
    user_id: int,
    station_id: int,
    connector_id: int | None,
    category: ProblemCategory,
    text: str,
    photo: Photo | None,
    at: datetime,
) -> tuple[int, list[Event]]:
    body = text.strip()
    if not body or len(body) > MAX_TEXT:
        raise InvalidInput(f"describe the problem in 1–{MAX_TEXT} characters")
    station = (
        await conn.execute(
            select(wo.STATION.c.id, wo.STATION.c.organization_id, wo.STATION.c.charge_point_id).where(
                wo.STATION.c.id == station_id
            )
        )
    ).first()
    if station is None:
        raise NotFound("no such station")
    if connector_id is not None:
        found = (
            await conn.execute(
                select(CONNECTOR.c.id).where(
                    CONNECTOR.c.station_id == station_id, CONNECTOR.c.connector_id == connector_id
                )
            )
        ).first()
        if found is None:
            raise NotFound(f"station has no connector {connector_id}")
    await _rate_limit(conn, user_id, station_id, connector_id, at)
    photo_id = None
    if photo is not None:
        photo_id = await files.store_file(
            conn,
            station_id=station_id,
            organization_id=station.organization_id,
            kind="photo",
            file_name=photo.file_name,
            content_type=photo.content_type,
            body=decode_photo(photo.data_base64, photo.content_type),
        )
    report_id = int(
        (
            await conn.execute(
                REPORT.insert()
                .values(
                    user_id=user_id,
                    organization_id=station.organization_id,
                    station_id=station_id,
                    connector_id=connector_id,
                    category=category.value,
                    text=body,
                    photo_file_id=photo_id,
                    created_at=at,
                )
                .returning(REPORT.c.id)
            )
        ).scalar_one()
    )
    where = f"connector {connector_id}" if connector_id is not None else "the station"
    change = await incidents.open_or_recur(
        conn,
        incidents.Problem(
            station_id=station_id,
            connector_id=connector_id,
            kind=IncidentKind.DRIVER_REPORT,
            severity=SEVERITY[category],
            dedup_key=incidents.dedup_key(
                IncidentKind.DRIVER_REPORT, station_id, connector_id, category.value
            ),
            title=f"Driver report: {category.value.replace('_', ' ')} at {station.charge_point_id}, {where}",
            # The driver's words, never who they are: operators need the problem, not the person.
            evidence={"report_id": report_id, "category": category.value, "text": body[:500]},
            auto_resolve=False,
        ),
        at=at,
    )
    await conn.execute(update(REPORT).where(REPORT.c.id == report_id).values(incident_id=change.incident_id))
    return report_id, [change.event]


def readable_reports(principal: Principal) -> Select[Any]:
    """A driver's own reports, and those of organisations where the caller manages work orders."""
    clauses = []
    if principal.user_id is not None:
        clauses.append(REPORT.c.user_id == principal.user_id)
    orgs = principal.organizations_with(Permission.WORK_ORDERS)
    if orgs is None:
        return select(REPORT)
    if orgs:
        clauses.append(REPORT.c.organization_id.in_(orgs))
    return select(REPORT).where(or_(*clauses)) if clauses else select(REPORT).where(REPORT.c.id < 0)


async def statuses(conn: AsyncConnection, reports: list[Any]) -> dict[int, ReportStatus]:
    """Each report's status from its incident and the work orders for it."""
    if not reports:
        return {}
    incident_ids = {r.incident_id for r in reports if r.incident_id is not None}
    resolved: set[int] = set(
        (
            await conn.execute(
                select(wo.INCIDENT.c.id).where(
                    wo.INCIDENT.c.id.in_(incident_ids), wo.INCIDENT.c.state == IncidentState.RESOLVED.value
                )
            )
        ).scalars()
    )
    w = wo.WORK_ORDER
    orders = (
        await conn.execute(
            select(w.c.incident_id, w.c.driver_report_id, w.c.state).where(
                or_(w.c.incident_id.in_(incident_ids), w.c.driver_report_id.in_([r.id for r in reports])),
                w.c.state != WorkOrderState.CANCELLED.value,
            )
        )
    ).all()
    out: dict[int, ReportStatus] = {}
    for r in reports:
        mine = [
            o
            for o in orders
            if (r.incident_id is not None and o.incident_id == r.incident_id) or o.driver_report_id == r.id
        ]
        done = any(o.state in (WorkOrderState.RESOLVED.value, WorkOrderState.VERIFIED.value) for o in mine)
        if r.incident_id in resolved or done:
            out[r.id] = ReportStatus.FIXED
        elif mine:
            out[r.id] = ReportStatus.BEING_FIXED
        else:
            out[r.id] = ReportStatus.RECEIVED
    return out


def mine(user_id: int) -> Select[Any]:
    return select(REPORT).where(and_(REPORT.c.user_id == user_id))
