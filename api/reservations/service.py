"""Reserving a connector and cancelling a reservation, through the station.

A reservation row exists before the station is asked, because its id is the OCPP
reservationId the station will name in StartTransaction. Its status then follows the station:

- ReserveNow Accepted: the row stays `active` until it is used, cancelled or expires.
- Occupied / Faulted / Unavailable / Rejected: `refused`, with the station's word kept in
  `station_status`; so is a station that cannot be reached, times out, or lacks the
  Reservation profile (the outcome says which; the station gave no word of its own). A station
  that timed out may have accepted all the same, and would hold the connector against every
  other driver: ChargeNet cancels the reservation there, on the system's account, in the
  background.
- CancelReservation Accepted, Rejected or NotSupported: `cancelled`. Rejected means the station
  no longer knows the reservation (it expired there, or was used up or lost in a reboot), and
  NotSupported that it cannot hold one: either way nothing is held on the station any more, so
  keeping the row active would only block the driver. An unreachable station (offline, timed
  out, failed) may still hold the connector: the row stays active, the outcome says why, and
  the caller may try again; at worst it ends at its expiry like any other.

Commands leave the same trail as every operator command (command log and audit entry, written
by `api.control.operations`), with the driver as the actor when a driver reserves.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit.service import SYSTEM_ACTOR, Actor
from api.auth.principal import Principal
from api.auth.roles import Permission
from api.control import operations
from api.control.service import MAX_ID_TAG_LENGTH, CommandOutcome
from api.network import repository as network
from api.reservations import repository
from api.reservations.errors import ActiveReservationExists
from api.sessions import repository as sessions
from schema.bus import Bus
from schema.commands import CancelReservation, ReserveNow
from schema.errors import ConnectorBusy, Forbidden, InvalidInput, NotFound
from schema.request_models import Reservation, ReservationStatus
from schema.timeutil import utcnow

# A driver books the drive to the station, not the afternoon: two hours covers a long approach,
# and every minute a connector is held is a minute walk-in drivers find it Reserved.
MAX_RESERVATION_MINUTES = 120
MIN_RESERVATION_MINUTES = 1

# The station's answers to ReserveNow that are not a yes (OCPP 1.6 ReservationStatus), as told
# to the driver.
REFUSALS = {
    "Occupied": "the connector is in use",
    "Faulted": "the connector is faulted",
    "Unavailable": "the connector is out of service",
    "Rejected": "the station refused the reservation",
}
# Background cancellations of reservations whose ReserveNow timed out (kept so they are not
# garbage-collected mid-flight).
_RELEASING: set[asyncio.Task[Any]] = set()
# CancelReservation outcomes after which the station holds nothing for the reservation.
RELEASED = frozenset({CommandOutcome.ACCEPTED, CommandOutcome.REJECTED, CommandOutcome.NOT_SUPPORTED})


@dataclass(frozen=True, slots=True)
class ReservationResult:
    outcome: CommandOutcome
    message: str
    reservation: Reservation | None = None


async def _reserving_tag(
    s: AsyncSession, principal: Principal, station_org: int | None, id_tag: str | None
) -> tuple[str, int | None]:
    """The idTag to reserve for and the account the reservation belongs to.

    Operators with `stations:control` at the station's organisation reserve for any token (a
    customer on the phone); the reservation is that token's owner's, if ChargeNet knows one.
    Everybody else — and an operator who names no token — reserves for themselves, with one of
    their own tokens, by default their app token, exactly as they would start charging.
    """
    if id_tag and principal.can(Permission.STATIONS_CONTROL, station_org):
        return id_tag, await repository.tag_owner(s, id_tag)
    if not principal.is_user:
        if principal.can(Permission.STATIONS_CONTROL, station_org):
            raise InvalidInput("idTag is required")
        raise Forbidden("requires stations:control at this station's organisation")
    tag = await sessions.driver_start_tag(s, principal.user_id or 0, id_tag)
    if tag is None:
        raise InvalidInput(
            "that token is not one of your active cards or app tokens" if id_tag else "you have no app token"
        )
    return tag, principal.user_id


async def _settled(
    db: async_sessionmaker[AsyncSession],
    reservation_id: int,
    status: ReservationStatus,
    station_status: str | None,
) -> Reservation | None:
    """Apply the station's answer (unless the reservation moved on meanwhile) and re-read it."""
    async with db() as s:
        await repository.settle(s, reservation_id, status=status, station_status=station_status, now=utcnow())
        await s.commit()
        return await s.get(Reservation, reservation_id, populate_existing=True)


def _reserve_answer(result: operations.CommandResult, connector_id: int) -> tuple[ReservationStatus, str]:
    """What the row becomes after ReserveNow, and what the caller is told."""
    if result.outcome is CommandOutcome.ACCEPTED:
        return ReservationStatus.ACTIVE, f"connector {connector_id} is reserved"
    if result.outcome is CommandOutcome.NOT_SUPPORTED:
        return ReservationStatus.REFUSED, "this station does not support reservations"
    if result.outcome is CommandOutcome.REJECTED:
        word = result.station_status or "Rejected"
        return (
            ReservationStatus.REFUSED,
            f"not reserved: {REFUSALS.get(word, f'the station answered {word}')}",
        )
    return ReservationStatus.REFUSED, f"not reserved: {result.message}"


async def reserve_connector(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    actor: Actor,
    *,
    station_id: int,
    connector_id: int,
    minutes: int,
    id_tag: str | None,
    command_timeout_s: float,
) -> ReservationResult:
    if not MIN_RESERVATION_MINUTES <= minutes <= MAX_RESERVATION_MINUTES:
        raise InvalidInput(f"minutes must be {MIN_RESERVATION_MINUTES}–{MAX_RESERVATION_MINUTES}")
    if connector_id < 1:
        raise InvalidInput("connectorId starts at 1")
    if id_tag is not None and (not id_tag or len(id_tag) > MAX_ID_TAG_LENGTH):
        raise InvalidInput(f"idTag must be 1–{MAX_ID_TAG_LENGTH} characters")
    principal = actor.principal
    async with db() as s:
        station = (await network.stations_by_ids(s, principal, [station_id])).get(station_id)
        if station is None:
            raise NotFound("no such station")
        tag, user_id = await _reserving_tag(s, principal, station.organization_id, id_tag)
        connectors = await network.connectors_by_station_ids(s, principal, [station_id])
        if connector_id not in {c.connector_id for c in connectors.get(station_id, [])}:
            raise NotFound(f"station has no connector {connector_id}")
        if not station.online:
            return ReservationResult(CommandOutcome.STATION_OFFLINE, "the station is offline")
        now = utcnow()
        await repository.lock_for_reservation(s, station_id=station_id, user_id=user_id)
        if await repository.holding_for_driver(s, user_id=user_id, id_tag=tag, now=now) is not None:
            raise ActiveReservationExists("there is already an active reservation for this driver")
        if await repository.holding_connector(s, station_id=station_id, connector_id=connector_id, now=now):
            raise ConnectorBusy(f"connector {connector_id} is already reserved")
        reservation = Reservation(
            station_id=station_id,
            organization_id=station.organization_id,
            connector_id=connector_id,
            user_id=user_id,
            id_tag=tag,
            expires_at=now + timedelta(minutes=minutes),
        )
        s.add(reservation)
        await s.commit()
    reservation_id = reservation.id or 0
    command = ReserveNow(
        reservation_id=reservation_id,
        connector_id=connector_id,
        id_tag=tag,
        expires_at=reservation.expires_at,
    )
    result = await operations.send_logged(db, bus, actor, station, command, command_timeout_s)
    status, message = _reserve_answer(result, connector_id)
    row = await _settled(db, reservation_id, status, result.station_status)
    if result.outcome is CommandOutcome.TIMED_OUT:
        release = operations.send_logged(
            db,
            bus,
            SYSTEM_ACTOR,
            station,
            CancelReservation(reservation_id=reservation_id),
            command_timeout_s,
        )
        task = asyncio.create_task(release, name=f"release-reservation-{reservation_id}")
        _RELEASING.add(task)
        task.add_done_callback(_RELEASING.discard)
    return ReservationResult(result.outcome, message, row)


async def cancel_reservation(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    actor: Actor,
    *,
    reservation_id: int,
    command_timeout_s: float,
) -> ReservationResult:
    """The driver it is for, or an operator with `stations:control` at its station's
    organisation, cancels it; see the module docstring for which answers count as cancelled."""
    principal = actor.principal
    async with db() as s:
        found = (await repository.reservations_by_ids(s, principal, [reservation_id])).get(reservation_id)
        if found is None:
            raise NotFound("no such reservation")
        own = principal.is_user and found.user_id == principal.user_id
        if not own and not principal.can(Permission.STATIONS_CONTROL, found.organization_id):
            raise Forbidden("only its driver or an operator with stations:control may cancel it")
        station = (await network.stations_by_ids(s, principal, [found.station_id]))[found.station_id]
        current = await s.get(Reservation, reservation_id)
    assert current is not None
    if current.status != ReservationStatus.ACTIVE.value or current.expires_at <= utcnow():
        status = effective_status(current)
        return ReservationResult(
            CommandOutcome.NOT_ACTIVE, f"the reservation is already {status.value}", current
        )
    result = await operations.send_logged(
        db, bus, actor, station, CancelReservation(reservation_id=reservation_id), command_timeout_s
    )
    if result.outcome in RELEASED:
        row = await _settled(db, reservation_id, ReservationStatus.CANCELLED, None)
        return ReservationResult(result.outcome, "reservation cancelled", row)
    return ReservationResult(result.outcome, f"not cancelled, still reserved: {result.message}", current)


def effective_status(r: Any) -> ReservationStatus:
    """The stored status, except that an active reservation past its expiry is expired: the
    station lets it go at `expires_at` itself, whenever the expiry job gets to the row."""
    status = ReservationStatus(r.status)
    if status is ReservationStatus.ACTIVE and r.expires_at <= utcnow():
        return ReservationStatus.EXPIRED
    return status
