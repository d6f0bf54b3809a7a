"""Scheduled work-order jobs: work orders for new incidents, and SLA breaches.

Why a scan rather than a handler on IncidentChanged: that event is live only (no outbox), so a
worker that is down, restarting or on another replica when an incident opens would never see
it. The scan looks at the incidents table itself — unresolved incidents of a severity the
organisation's rules name, with no work order yet — so nothing is missed, and the unique
index on `work_order.incident_id` makes a repeated or concurrent run create nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from api.service import work_orders as wo
from schema.bus import Bus
from schema.events import Event
from schema.incident_models import IncidentKind, IncidentSeverity, IncidentState
from schema.maintenance_models import DONE_STATES, WorkOrderSource
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

AUTO_CREATE_INTERVAL_S = 30.0
SLA_CHECK_INTERVAL_S = 60.0
# Incidents looked at per run; the rest wait for the next run (a storm must not hold one
# transaction for minutes).
BATCH = 500


@dataclass(frozen=True, slots=True)
class JobResult:
    created: int = 0
    breached: int = 0


async def publish(bus: Bus | None, events: Sequence[Event]) -> None:
    """After the commit; a lost live event is caught up on the next read."""
    if bus is None or not events:
        return
    try:
        await bus.publish(list(events))
    except Exception:
        log.exception("work order changes not announced live")


@dataclass
class Created:
    """What a creating job made in its transaction, announced and logged after the commit."""

    count: int = 0
    events: list[Event] = field(default_factory=list)

    def add(self, made: tuple[int, list[Event]] | None) -> None:
        if made is not None:
            self.count += 1
            self.events += made[1]

    async def announce(self, bus: Bus | None, what: str) -> JobResult:
        await publish(bus, self.events)
        if self.count:
            log.info("created %d %s", self.count, what)
        return JobResult(created=self.count)


def _title(incident: Any) -> str:
    return f"{incident.title}"[: wo.MAX_TITLE]


async def create_for_incidents(
    engine: AsyncEngine, bus: Bus | None = None, *, now: datetime | None = None
) -> JobResult:
    now = now or utcnow()
    created = Created()
    async with engine.begin() as conn:
        no_order = ~exists().where(wo.WORK_ORDER.c.incident_id == wo.INCIDENT.c.id)
        candidates = (
            await conn.execute(
                select(wo.INCIDENT)
                .where(
                    wo.INCIDENT.c.state != IncidentState.RESOLVED.value,
                    wo.INCIDENT.c.organization_id.is_not(None),
                    no_order,
                )
                .order_by(wo.INCIDENT.c.id)
                .limit(BATCH)
            )
        ).all()
        rules: dict[int, wo.Rules] = {}
        for incident in candidates:
            org = int(incident.organization_id)
            if org not in rules:
                rules[org] = await wo.rules(conn, org)
            if incident.severity not in rules[org].auto_create:
                continue
            made = await wo.create(
                conn,
                wo.NewWorkOrder(
                    station_id=incident.station_id,
                    connector_id=incident.connector_id,
                    title=_title(incident),
                    description=f"Opened automatically for incident {incident.id} ({incident.kind}).",
                    source=WorkOrderSource.DRIVER_REPORT
                    if incident.kind == IncidentKind.DRIVER_REPORT.value
                    else WorkOrderSource.INCIDENT,
                    severity=IncidentSeverity(incident.severity),
                    incident_id=int(incident.id),
                ),
                at=now,
                user_id=None,
            )
            created.add(made)
    return await created.announce(bus, "work orders for new incidents")


async def mark_sla_breaches(
    engine: AsyncEngine, bus: Bus | None = None, *, now: datetime | None = None
) -> JobResult:
    """Unfinished orders past their due time are marked breached once, and announced."""
    now = now or utcnow()
    w = wo.WORK_ORDER
    async with engine.begin() as conn:
        breached = (
            (
                await conn.execute(
                    update(w)
                    .where(
                        w.c.sla_breached_at.is_(None),
                        w.c.sla_due_at < now,
                        w.c.state.not_in([s.value for s in DONE_STATES]),
                    )
                    .values(sla_breached_at=now, updated_at=now)
                    .returning(w.c.id)
                )
            )
            .scalars()
            .all()
        )
        events: list[Event] = []
        if breached:
            ids = [int(i) for i in breached]
            await conn.execute(
                wo.ENTRY.insert(),
                [
                    {"work_order_id": i, "at": now, "kind": "sla", "text": "SLA breached", "detail": {}}
                    for i in ids
                ],
            )
            events += await wo.change_events(conn, ids, "sla_breached", now)
    await publish(bus, events)
    if breached:
        log.warning("%d work orders breached their SLA", len(breached))
    return JobResult(breached=len(breached))
