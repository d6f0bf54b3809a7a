"""The work order lifecycle: created (by hand, from an incident, a driver report or an
inspection), assigned to a technician, started, resolved, verified — or cancelled from any
state before that. Each change is validated, stamped with its time, written to the order's
timeline with who made it, and announced live (`WorkOrderChanged`).

Functions take the caller's connection and never commit; they return the events the caller
publishes after its commit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from api.service import incidents
from api.service.work_order_access import is_technician
from schema.db import insert_on_conflict
from schema.errors import InvalidInput, NotFound
from schema.events import Event, WorkOrderChanged
from schema.incident_models import Incident, IncidentKind, IncidentSeverity, IncidentState, OutageExclusion
from schema.maintenance_models import (
    DONE_STATES,
    FINAL_STATES,
    MaintenanceSettings,
    WorkOrder,
    WorkOrderChecklistItem,
    WorkOrderEntry,
    WorkOrderSource,
    WorkOrderState,
)
from schema.models import ChargingStation, Organization

WORK_ORDER = WorkOrder.__table__  # type: ignore[attr-defined]
ENTRY = WorkOrderEntry.__table__  # type: ignore[attr-defined]
CHECKLIST = WorkOrderChecklistItem.__table__  # type: ignore[attr-defined]
SETTINGS = MaintenanceSettings.__table__  # type: ignore[attr-defined]
STATION = ChargingStation.__table__  # type: ignore[attr-defined]
ORGANIZATION = Organization.__table__  # type: ignore[attr-defined]
INCIDENT = Incident.__table__  # type: ignore[attr-defined]
EXCLUSION = OutageExclusion.__table__  # type: ignore[attr-defined]

S = WorkOrderState
# The state machine: where each state may go. Cancelling is possible until the order is final.
TRANSITIONS: dict[S, frozenset[S]] = {
    S.OPEN: frozenset({S.ASSIGNED, S.CANCELLED}),
    S.ASSIGNED: frozenset({S.IN_PROGRESS, S.CANCELLED}),
    S.IN_PROGRESS: frozenset({S.RESOLVED, S.CANCELLED}),
    S.RESOLVED: frozenset({S.VERIFIED, S.CANCELLED}),
    S.VERIFIED: frozenset(),
    S.CANCELLED: frozenset(),
}
# The timestamp column each state stamps when entered.
STAMP = {
    S.ASSIGNED: "assigned_at",
    S.IN_PROGRESS: "started_at",
    S.RESOLVED: "resolved_at",
    S.VERIFIED: "verified_at",
    S.CANCELLED: "cancelled_at",
}
MAX_TITLE = 200
MAX_DESCRIPTION = 4000
MAX_CHECKLIST_ITEMS = 100
MAX_CHECKLIST_TEXT = 300
# An SLA shorter than this cannot be met by anyone driving to a station; longer than a quarter
# is not an SLA.
MIN_SLA_MINUTES = 15
MAX_SLA_MINUTES = 90 * 24 * 60


@dataclass(frozen=True, slots=True)
class Rules:
    """An organisation's maintenance rules (stored settings, or the defaults)."""

    sla_minutes: dict[str, int]
    auto_create: frozenset[str]

    def due(self, severity: str, at: datetime) -> datetime:
        return at + timedelta(minutes=self.sla_minutes[severity])


DEFAULT_RULES = Rules(
    sla_minutes={
        IncidentSeverity.CRITICAL.value: 4 * 60,
        IncidentSeverity.HIGH.value: 24 * 60,
        IncidentSeverity.MEDIUM.value: 72 * 60,
        IncidentSeverity.LOW.value: 7 * 24 * 60,
    },
    auto_create=frozenset({IncidentSeverity.CRITICAL.value, IncidentSeverity.HIGH.value}),
)


def rules_from_row(row: Any) -> Rules:
    if row is None:
        return DEFAULT_RULES
    return Rules(
        sla_minutes={
            IncidentSeverity.CRITICAL.value: row.sla_critical_minutes,
            IncidentSeverity.HIGH.value: row.sla_high_minutes,
            IncidentSeverity.MEDIUM.value: row.sla_medium_minutes,
            IncidentSeverity.LOW.value: row.sla_low_minutes,
        },
        auto_create=frozenset(row.auto_create_severities.split()),
    )


async def rules(conn: AsyncConnection, organization_id: int) -> Rules:
    row = (await conn.execute(select(SETTINGS).where(SETTINGS.c.organization_id == organization_id))).first()
    return rules_from_row(row)


async def save_rules(conn: AsyncConnection, organization_id: int, new: Rules, *, at: datetime) -> Rules:
    for severity, minutes in new.sla_minutes.items():
        if not MIN_SLA_MINUTES <= minutes <= MAX_SLA_MINUTES:
            raise InvalidInput(f"the {severity} SLA must be {MIN_SLA_MINUTES}–{MAX_SLA_MINUTES} minutes")
    unknown = new.auto_create - set(DEFAULT_RULES.sla_minutes)
    if unknown:
        raise InvalidInput(f"unknown severities: {sorted(unknown)}")
    values = {
        "sla_critical_minutes": new.sla_minutes[IncidentSeverity.CRITICAL.value],
        "sla_high_minutes": new.sla_minutes[IncidentSeverity.HIGH.value],
        "sla_medium_minutes": new.sla_minutes[IncidentSeverity.MEDIUM.value],
        "sla_low_minutes": new.sla_minutes[IncidentSeverity.LOW.value],
        "auto_create_severities": " ".join(sorted(new.auto_create)),
        "updated_at": at,
    }
    await conn.execute(
        insert_on_conflict(conn, SETTINGS)
        .values(organization_id=organization_id, **values)
        .on_conflict_do_update(index_elements=["organization_id"], set_=values)
    )
    return new


@dataclass(frozen=True, slots=True)
class NewWorkOrder:
    station_id: int
    connector_id: int | None
    title: str
    description: str
    source: WorkOrderSource
    severity: IncidentSeverity
    incident_id: int | None = None
    inspection_plan_id: int | None = None
    driver_report_id: int | None = None
    checklist: tuple[str, ...] = ()


def _check_text(new: NewWorkOrder) -> None:
    if not new.title.strip() or len(new.title) > MAX_TITLE:
        raise InvalidInput(f"a title is 1–{MAX_TITLE} characters")
    if len(new.description) > MAX_DESCRIPTION:
        raise InvalidInput(f"a description is at most {MAX_DESCRIPTION} characters")
    if len(new.checklist) > MAX_CHECKLIST_ITEMS:
        raise InvalidInput(f"at most {MAX_CHECKLIST_ITEMS} checklist items")
    if any(not t.strip() or len(t) > MAX_CHECKLIST_TEXT for t in new.checklist):
        raise InvalidInput(f"a checklist item is 1–{MAX_CHECKLIST_TEXT} characters")


async def create(
    conn: AsyncConnection, new: NewWorkOrder, *, at: datetime, user_id: int | None
) -> tuple[int, list[Event]] | None:
    """Create the order; None when it already exists (one order per incident, one unfinished
    order per inspection plan and station), so automatic creation is idempotent."""
    _check_text(new)
    station = (
        await conn.execute(
            select(STATION.c.organization_id, ORGANIZATION.c.currency)
            .join(ORGANIZATION, ORGANIZATION.c.id == STATION.c.organization_id)
            .where(STATION.c.id == new.station_id)
        )
    ).first()
    if station is None:
        raise NotFound("no such station")
    org = int(station.organization_id)
    due = (await rules(conn, org)).due(new.severity.value, at)
    inserted = (
        await conn.execute(
            insert_on_conflict(conn, WORK_ORDER)
            .values(
                organization_id=org,
                station_id=new.station_id,
                connector_id=new.connector_id,
                title=new.title.strip(),
                description=new.description,
                source=new.source.value,
                incident_id=new.incident_id,
                inspection_plan_id=new.inspection_plan_id,
                driver_report_id=new.driver_report_id,
                severity=new.severity.value,
                state=S.OPEN.value,
                sla_due_at=due,
                currency=station.currency,
                labour_cost=0,
                created_by=user_id,
                created_at=at,
                updated_at=at,
            )
            .on_conflict_do_nothing()
            .returning(WORK_ORDER.c.id)
        )
    ).scalar()
    if inserted is None:
        return None
    order_id = int(inserted)
    if new.checklist:
        await conn.execute(
            CHECKLIST.insert(),
            [
                {"work_order_id": order_id, "position": i, "text": t.strip()}
                for i, t in enumerate(new.checklist)
            ],
        )
    await add_entry(conn, order_id, "state", at=at, user_id=user_id, to_state=S.OPEN, text=new.source.value)
    events: list[Event] = [await change_event(conn, order_id, "created", at)]
    if new.incident_id is not None:
        await incidents.add_entry(
            conn,
            new.incident_id,
            "work_order",
            at=at,
            user_id=user_id,
            text=f"work order {order_id} created",
            detail={"work_order_id": order_id},
        )
        # fleetAlerts shows the incident is being taken care of.
        events.append(await incidents.change_event(conn, new.incident_id, "updated", at))
    return order_id, events


async def assign(
    conn: AsyncConnection, order: Any, assignee_id: int, *, at: datetime, user_id: int | None
) -> list[WorkOrderChanged]:
    """Give the order to a technician of its organisation (again, to hand it over)."""
    if not await is_technician(conn, order.organization_id, assignee_id):
        raise InvalidInput("the assignee must be a member whose role may work on work orders")
    state = S(order.state)
    if state in DONE_STATES:
        raise InvalidInput(f"a {state.value} work order cannot be reassigned")
    values: dict[str, Any] = {"assignee_id": assignee_id, "updated_at": at}
    if state is S.OPEN:
        values |= {"state": S.ASSIGNED.value, "assigned_at": at}
    await conn.execute(update(WORK_ORDER).where(WORK_ORDER.c.id == order.id).values(**values))
    await add_entry(
        conn,
        order.id,
        "state",
        at=at,
        user_id=user_id,
        from_state=state,
        to_state=S(values.get("state", state.value)),
        detail={"assignee_id": assignee_id},
    )
    event = await change_event(conn, order.id, "assigned", at)
    if order.assignee_id is not None and order.assignee_id != assignee_id:
        event = dataclasses.replace(event, previous_assignee_id=order.assignee_id)
    return [event]


async def transition(
    conn: AsyncConnection,
    order: Any,
    to: WorkOrderState,
    *,
    at: datetime,
    user_id: int | None,
    note: str | None,
) -> list[Any]:
    """Move the order on (start, resolve, verify, cancel); refuses moves the machine has not."""
    state = S(order.state)
    if to is S.ASSIGNED:
        raise InvalidInput("assign the work order to a technician instead")
    if to not in TRANSITIONS[state]:
        raise InvalidInput(f"a {state.value} work order cannot become {to.value}")
    if note is not None and len(note) > 2000:
        raise InvalidInput("a note is at most 2,000 characters")
    values: dict[str, Any] = {"state": to.value, STAMP[to]: at, "updated_at": at}
    if (
        to in DONE_STATES
        and order.sla_breached_at is None
        and at > order.sla_due_at
        and to is not S.CANCELLED
    ):
        values["sla_breached_at"] = at
    done = await conn.execute(
        update(WORK_ORDER)
        .where(WORK_ORDER.c.id == order.id, WORK_ORDER.c.state == state.value)
        .values(**values)
    )
    if done.rowcount == 0:
        raise InvalidInput("the work order changed meanwhile; reload it")
    await add_entry(conn, order.id, "state", at=at, user_id=user_id, from_state=state, to_state=to, text=note)
    events: list[Any] = []
    if to in DONE_STATES:
        await close_exclusions(conn, order.id, at=at)
    if to is S.RESOLVED and order.incident_id is not None:
        events += await _settle_incident(conn, order, at=at, user_id=user_id)
    events.append(await change_event(conn, order.id, "state", at))
    return events


async def _settle_incident(
    conn: AsyncConnection, order: Any, *, at: datetime, user_id: int | None
) -> list[Any]:
    """A driver's report is fixed when its work order is: nothing else would resolve it (no
    station message says "the driver's problem is gone"). Other incidents resolve themselves
    when the station recovers; they get a timeline entry."""
    row = (
        await conn.execute(
            select(INCIDENT.c.kind, INCIDENT.c.state).where(INCIDENT.c.id == order.incident_id)
        )
    ).first()
    if row is None or row.state == IncidentState.RESOLVED.value:
        return []
    text = f"work order {order.id} resolved"
    if row.kind == IncidentKind.DRIVER_REPORT.value:
        change = await incidents.resolve(conn, order.incident_id, at=at, user_id=user_id, resolution=text)
        return [change.event]
    await incidents.add_entry(
        conn,
        order.incident_id,
        "work_order",
        at=at,
        user_id=user_id,
        text=text,
        detail={"work_order_id": order.id},
    )
    return []


async def close_exclusions(conn: AsyncConnection, work_order_id: int, *, at: datetime) -> int:
    """End the scheduled-maintenance exclusions the visit opened (station back in service,
    or the order done)."""
    done = await conn.execute(
        update(EXCLUSION)
        .where(EXCLUSION.c.work_order_id == work_order_id, EXCLUSION.c.ended_at.is_(None))
        .values(ended_at=at)
    )
    return int(done.rowcount or 0)


async def add_entry(
    conn: AsyncConnection,
    work_order_id: int,
    kind: str,
    *,
    at: datetime,
    user_id: int | None = None,
    from_state: WorkOrderState | None = None,
    to_state: WorkOrderState | None = None,
    text: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        ENTRY.insert().values(
            work_order_id=work_order_id,
            at=at,
            kind=kind,
            user_id=user_id,
            from_state=None if from_state is None else from_state.value,
            to_state=None if to_state is None else to_state.value,
            text=text,
            detail=detail or {},
        )
    )


async def touch(
    conn: AsyncConnection, work_order_id: int, change: str, at: datetime
) -> list[WorkOrderChanged]:
    await conn.execute(update(WORK_ORDER).where(WORK_ORDER.c.id == work_order_id).values(updated_at=at))
    return [await change_event(conn, work_order_id, change, at)]


def require_open(order: Any) -> None:
    if S(order.state) in FINAL_STATES:
        raise InvalidInput(f"the work order is {order.state}")


async def change_event(
    conn: AsyncConnection, work_order_id: int, change: str, at: datetime
) -> WorkOrderChanged:
    return (await change_events(conn, [work_order_id], change, at))[0]


async def change_events(
    conn: AsyncConnection, work_order_ids: list[int], change: str, at: datetime
) -> list[WorkOrderChanged]:
    """The live events of many orders in one read (a sweep announcing a thousand breaches)."""
    rows = (
        await conn.execute(
            select(WORK_ORDER, STATION.c.charge_point_id, STATION.c.location_id)
            .join(STATION, STATION.c.id == WORK_ORDER.c.station_id)
            .where(WORK_ORDER.c.id.in_(work_order_ids))
            .order_by(WORK_ORDER.c.id)
        )
    ).all()
    return [
        WorkOrderChanged(
            station_id=row.station_id,
            charge_point_id=row.charge_point_id,
            location_id=row.location_id,
            at=at,
            work_order_id=int(row.id),
            organization_id=row.organization_id,
            assignee_id=row.assignee_id,
            state=row.state,
            severity=row.severity,
            title=row.title,
            sla_due_at=row.sla_due_at,
            change=change,
        )
        for row in rows
    ]
