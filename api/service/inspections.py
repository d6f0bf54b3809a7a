"""Preventive maintenance: inspection plans and the job that turns a due inspection into a
work order.

A plan covers the organisation's stations of a vendor/model, at a location, or both. For each
covered station the counters run from the last time that plan's inspection was done there
(its work order resolved or verified; before any, from when the plan was made): days passed,
sessions ended, Wh delivered. Whichever of the plan's limits is reached first makes it due.
At most one unfinished inspection order exists per plan and station (a partial unique index),
so the job is idempotent and safe on racing replicas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.service import work_orders as wo
from api.service.work_order_jobs import Created, JobResult
from schema.bus import Bus
from schema.errors import InvalidInput, NotFound
from schema.incident_models import IncidentSeverity
from schema.maintenance_models import InspectionPlan, WorkOrderSource, WorkOrderState
from schema.models import Location
from schema.timeutil import utcnow
from schema.work_models import SessionSummary

PLAN = InspectionPlan.__table__  # type: ignore[attr-defined]
SUMMARY = SessionSummary.__table__  # type: ignore[attr-defined]
LOCATION = Location.__table__  # type: ignore[attr-defined]

DUE_CHECK_INTERVAL_S = 3_600.0
MAX_EVERY_DAYS = 3 * 366
MAX_EVERY_SESSIONS = 1_000_000
MAX_EVERY_KWH = 10_000_000


@dataclass(frozen=True, slots=True)
class PlanInput:
    name: str
    vendor: str | None
    model: str | None
    location_id: int | None
    every_days: int | None
    every_sessions: int | None
    every_kwh: int | None
    checklist: tuple[str, ...]
    severity: IncidentSeverity


def _validate(p: PlanInput) -> None:
    if not p.name.strip() or len(p.name) > 200:
        raise InvalidInput("a plan name is 1–200 characters")
    if p.vendor is None and p.model is None and p.location_id is None:
        raise InvalidInput("a plan covers a vendor/model, a location, or both")
    if p.every_days is None and p.every_sessions is None and p.every_kwh is None:
        raise InvalidInput("give at least one of everyDays, everySessions, everyKwh")
    for name, value, ceiling in (
        ("everyDays", p.every_days, MAX_EVERY_DAYS),
        ("everySessions", p.every_sessions, MAX_EVERY_SESSIONS),
        ("everyKwh", p.every_kwh, MAX_EVERY_KWH),
    ):
        if value is not None and not 1 <= value <= ceiling:
            raise InvalidInput(f"{name} is 1–{ceiling}")
    if len(p.checklist) > wo.MAX_CHECKLIST_ITEMS or any(
        not t.strip() or len(t) > wo.MAX_CHECKLIST_TEXT for t in p.checklist
    ):
        raise InvalidInput(
            f"at most {wo.MAX_CHECKLIST_ITEMS} checklist items of 1–{wo.MAX_CHECKLIST_TEXT} characters"
        )


async def create_plan(
    conn: AsyncConnection, organization_id: int, p: PlanInput, *, at: datetime, user_id: int | None
) -> int:
    _validate(p)
    if p.location_id is not None:
        org = (
            await conn.execute(select(LOCATION.c.organization_id).where(LOCATION.c.id == p.location_id))
        ).scalar()
        if org != organization_id:
            raise NotFound("no such location in this organisation")
    inserted = await conn.execute(
        PLAN.insert()
        .values(
            organization_id=organization_id,
            name=p.name.strip(),
            vendor=p.vendor,
            model=p.model,
            location_id=p.location_id,
            every_days=p.every_days,
            every_sessions=p.every_sessions,
            every_wh=None if p.every_kwh is None else p.every_kwh * 1000,
            checklist=[t.strip() for t in p.checklist],
            severity=p.severity.value,
            active=True,
            created_by=user_id,
            created_at=at,
        )
        .returning(PLAN.c.id)
    )
    return int(inserted.scalar_one())


async def set_active(conn: AsyncConnection, plan_id: int, active: bool) -> None:
    await conn.execute(update(PLAN).where(PLAN.c.id == plan_id).values(active=active))


def covered(plan: Any) -> list[Any]:
    """The conditions naming the plan's stations."""
    s = wo.STATION
    where = [s.c.organization_id == plan.organization_id]
    if plan.vendor is not None:
        where.append(s.c.vendor == plan.vendor)
    if plan.model is not None:
        where.append(s.c.model == plan.model)
    if plan.location_id is not None:
        where.append(s.c.location_id == plan.location_id)
    return where


@dataclass(frozen=True, slots=True)
class Progress:
    since: datetime
    days: float
    sessions: int
    energy_wh: int


_DONE = [WorkOrderState.RESOLVED.value, WorkOrderState.VERIFIED.value]
_FINISHED = [*_DONE, WorkOrderState.CANCELLED.value]


async def progress(conn: AsyncConnection, plan: Any, now: datetime) -> dict[int, Progress]:
    """The counters of each covered station without an unfinished inspection of this plan,
    since the plan's last completed inspection there (or since the plan began) — one query
    per plan, so the hourly check stays cheap on a large network."""
    w, st = wo.WORK_ORDER, wo.STATION
    last = (
        select(w.c.station_id, func.max(w.c.resolved_at).label("at"))
        .where(w.c.inspection_plan_id == plan.id, w.c.state.in_(_DONE))
        .group_by(w.c.station_id)
        .subquery()
    )
    open_for = select(w.c.station_id).where(w.c.inspection_plan_id == plan.id, w.c.state.not_in(_FINISHED))
    since = func.coalesce(last.c.at, literal(plan.created_at, type_=SUMMARY.c.stopped_at.type))
    stmt = (
        select(
            st.c.id,
            last.c.at,
            func.count(SUMMARY.c.id).label("sessions"),
            func.coalesce(func.sum(SUMMARY.c.energy_wh), 0).label("energy"),
        )
        .select_from(
            st.outerjoin(last, last.c.station_id == st.c.id).outerjoin(
                SUMMARY, and_(SUMMARY.c.station_id == st.c.id, SUMMARY.c.stopped_at > since)
            )
        )
        .where(*covered(plan), st.c.id.not_in(open_for))
        .group_by(st.c.id, last.c.at)
    )
    out = {}
    for r in (await conn.execute(stmt)).all():
        start = r.at or plan.created_at
        out[int(r.id)] = Progress(start, (now - start) / timedelta(days=1), int(r.sessions), int(r.energy))
    return out


def due_reason(plan: Any, p: Progress) -> str | None:
    if plan.every_days is not None and p.days >= plan.every_days:
        return f"{plan.every_days} days since the last inspection"
    if plan.every_sessions is not None and p.sessions >= plan.every_sessions:
        return f"{p.sessions} sessions since the last inspection"
    if plan.every_wh is not None and p.energy_wh >= plan.every_wh:
        return f"{p.energy_wh // 1000} kWh delivered since the last inspection"
    return None


async def create_due_orders(
    engine: AsyncEngine, bus: Bus | None = None, *, now: datetime | None = None
) -> JobResult:
    now = now or utcnow()
    created = Created()
    async with engine.begin() as conn:
        plans = (await conn.execute(select(PLAN).where(PLAN.c.active.is_(True)).order_by(PLAN.c.id))).all()
        for plan in plans:
            for station_id, counted in (await progress(conn, plan, now)).items():
                reason = due_reason(plan, counted)
                if reason is None:
                    continue
                made = await wo.create(
                    conn,
                    wo.NewWorkOrder(
                        station_id=int(station_id),
                        connector_id=None,
                        title=f"Inspection: {plan.name}"[: wo.MAX_TITLE],
                        description=f"Due: {reason}.",
                        source=WorkOrderSource.INSPECTION,
                        severity=IncidentSeverity(plan.severity),
                        inspection_plan_id=int(plan.id),
                        checklist=tuple(plan.checklist),
                    ),
                    at=now,
                    user_id=None,
                )
                created.add(made)
    return await created.announce(bus, "inspection work orders")
