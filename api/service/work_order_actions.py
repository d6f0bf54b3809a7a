"""Station actions run from a work order: reset, unlock, availability, status trigger and
diagnostics — through the same command path as the operator's own (command log, audit log,
`stationEvents`), but authorised by the order rather than by station permissions: the
technician the order is assigned to (or a manager of its organisation) may act on that
station while the order is not done.

Taking the station out of service during the visit (order in progress) records a scheduled
maintenance exclusion for uptime, until the station is put back in service or the order is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit.service import Actor
from api.auth.roles import Permission
from api.control import operations
from api.control.service import CommandOutcome
from api.files import service as files
from api.service import work_order_access as access
from api.service import work_orders as wo
from api.service.work_order_details import attach_file
from schema import commands as c
from schema.bus import Bus
from schema.errors import Forbidden, InvalidInput
from schema.events import Event
from schema.incident_models import ExclusionReason
from schema.maintenance_models import DONE_STATES, WorkOrderState
from schema.models import ChargingStation
from schema.timeutil import utcnow


class StationAction(StrEnum):
    RESET_SOFT = "reset_soft"
    RESET_HARD = "reset_hard"
    UNLOCK = "unlock"
    MAKE_INOPERATIVE = "make_inoperative"
    MAKE_OPERATIVE = "make_operative"
    TRIGGER_STATUS = "trigger_status"
    DIAGNOSTICS = "diagnostics"


# Station answers that mean the change will happen (now, or when the running session ends).
_TAKES_EFFECT = frozenset({"Accepted", "Scheduled"})


@dataclass(frozen=True, slots=True)
class ActionResult:
    command: operations.CommandResult
    file_id: int | None
    exclusion_recorded: bool


# Resets, triggers and diagnostics are a diagnoser's commands anywhere (roles.py): the order
# does not grant them. Unlock and availability change what drivers get, which normally takes
# stations:control — the order grants those, for its station, to the one doing the job.
_DIAGNOSE = frozenset(
    {
        StationAction.RESET_SOFT,
        StationAction.RESET_HARD,
        StationAction.TRIGGER_STATUS,
        StationAction.DIAGNOSTICS,
    }
)


def _check_diagnose(actor: Actor, station: ChargingStation, action: StationAction) -> None:
    if action in _DIAGNOSE and not actor.principal.can(Permission.STATIONS_DIAGNOSE, station.organization_id):
        raise Forbidden("requires stations:diagnose at this station's organisation")


def _command(action: StationAction, connector_id: int | None, location: str | None) -> c.Command:
    if action is StationAction.RESET_SOFT:
        return c.Reset(kind=c.ResetKind.SOFT)
    if action is StationAction.RESET_HARD:
        return c.Reset(kind=c.ResetKind.HARD)
    if action is StationAction.UNLOCK:
        if connector_id is None or connector_id < 1:
            raise InvalidInput("unlocking needs a connectorId (1 or more)")
        return c.UnlockConnector(connector_id=connector_id)
    if action in (StationAction.MAKE_INOPERATIVE, StationAction.MAKE_OPERATIVE):
        return c.ChangeAvailability(
            connector_id=connector_id or 0, operative=action is StationAction.MAKE_OPERATIVE
        )
    if action is StationAction.TRIGGER_STATUS:
        return c.TriggerMessage(message="StatusNotification", connector_id=connector_id)
    assert location is not None
    return c.GetDiagnostics(location=location)


async def run(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    actor: Actor,
    *,
    work_order_id: int,
    action: StationAction,
    connector_id: int | None,
    timeout_s: float,
    upload_base_url: str,
) -> tuple[ActionResult, list[Event]]:
    async with db() as s:
        conn = await s.connection()
        r = await access.reach(conn, actor.principal)
        order = await access.readable_order(conn, r, work_order_id)
        if not r.may_work_on(order):
            raise Forbidden("only the technician assigned to this work order (or a manager) acts from it")
        if WorkOrderState(order.state) in DONE_STATES:
            raise InvalidInput(f"the work order is {order.state}")
        station = await s.get(ChargingStation, order.station_id)
        assert station is not None  # a work order's station is never deleted (foreign key)
    _check_diagnose(actor, station, action)
    file_id, location = None, None
    if action is StationAction.DIAGNOSTICS:
        file_id, location = await files.create_upload(
            db, station, base_url=upload_base_url, kind="diagnostics"
        )
    command = _command(action, connector_id, location)
    result = await operations.send_logged(db, bus, actor, station, command, timeout_s)
    effective = result.outcome is CommandOutcome.ACCEPTED or (result.station_status or "") in _TAKES_EFFECT
    now = utcnow()
    user_id = actor.principal.user_id
    excluded = False
    async with db() as s:
        conn = await s.connection()
        order = (await conn.execute(select(wo.WORK_ORDER).where(wo.WORK_ORDER.c.id == work_order_id))).one()
        await wo.add_entry(
            conn,
            order.id,
            "action",
            at=now,
            user_id=user_id,
            text=action.value,
            detail={
                "command_id": None if result.command is None else result.command.id,
                "outcome": result.outcome.value,
                "station_status": result.station_status,
                "connector_id": connector_id,
            },
        )
        if file_id is not None and effective:
            await attach_file(conn, order, file_id, "diagnostics", at=now, user_id=user_id)
        if (
            effective
            and action is StationAction.MAKE_INOPERATIVE
            and order.state == WorkOrderState.IN_PROGRESS.value
        ):
            await conn.execute(
                wo.EXCLUSION.insert().values(
                    organization_id=order.organization_id,
                    station_id=order.station_id,
                    connector_id=connector_id or None,
                    started_at=now,
                    reason=ExclusionReason.SCHEDULED_MAINTENANCE.value,
                    note=f"maintenance visit, work order {order.id}",
                    work_order_id=order.id,
                    created_by=user_id,
                    created_at=now,
                )
            )
            excluded = True
        if effective and action is StationAction.MAKE_OPERATIVE:
            await wo.close_exclusions(conn, order.id, at=now)
        events: list[Event] = list(await wo.touch(conn, order.id, "action", now))
        await s.commit()
    return ActionResult(result, file_id if effective else None, excluded), events
