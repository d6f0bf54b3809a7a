"""Every query about reservations, scoped to who asks.

A reservation is a driver's plan and the station's organisation's business: a driver sees the
reservations made for them, an operator (or API key) with `network:read` those at their
organisations' stations, a platform admin all. Statements built here cannot return another
tenant's reservation, whatever id they are given.

The write side serves the service (one mutation's session) and the worker (one event's or one
job's connection): the checks before a reservation is made, and status changes that only
apply while the row is still in the status the caller saw, so a late station answer never
overwrites a reservation that was used or expired meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Row, Select, false, func, or_, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.auth.principal import Principal
from api.auth.roles import Permission
from api.orgs.repository import Page, page, rows
from schema.account_models import UserAccount
from schema.models import ChargingStation, IdToken
from schema.request_models import Reservation, ReservationStatus

Stmt = Select[Any]
S = TypeVar("S", Select[Any], SelectOfScalar[Reservation])
ACTIVE = ReservationStatus.ACTIVE.value


def readable_reservations(principal: Principal) -> Stmt:
    stmt = select(Reservation)
    orgs = principal.organizations_with(Permission.NETWORK_READ)
    if orgs is None:
        return stmt
    conditions = []
    if principal.is_user:
        conditions.append(col(Reservation.user_id) == principal.user_id)
    if orgs:
        conditions.append(col(Reservation.organization_id).in_(orgs))
    return stmt.where(or_(*conditions)) if conditions else stmt.where(false())


def _holding(stmt: S, now: datetime) -> S:
    """Still holding its connector: active and not past its expiry (the expiry job may lag)."""
    return stmt.where(col(Reservation.status) == ACTIVE, col(Reservation.expires_at) > now)


async def page_reservations(
    session: AsyncSession,
    principal: Principal,
    *,
    station_id: int | None,
    active_only: bool,
    now: datetime,
    first: int,
    after: int | None,
    count: bool,
) -> Page:
    stmt = readable_reservations(principal)
    if station_id is not None:
        stmt = stmt.where(col(Reservation.station_id) == station_id)
    if active_only:
        stmt = _holding(stmt, now)
    return await page(
        session, stmt, col(Reservation.id), first=first, after=after, newest_first=True, count=count
    )


async def reservations_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[int]
) -> dict[int, Row[Any]]:
    found = await rows(session, readable_reservations(principal).where(col(Reservation.id).in_(list(ids))))
    return {r.id: r for r in found}


# --- the service's checks and writes (one mutation's session) ---


async def lock_for_reservation(session: AsyncSession, *, station_id: int, user_id: int | None) -> None:
    """PostgreSQL: serialise reservations per station and per driver until this transaction
    ends, so two requests racing for the same connector (or by the same driver) cannot both
    pass the checks. SQLite has one writer at a time and ignores FOR UPDATE."""
    await session.exec(
        select(ChargingStation.id).where(col(ChargingStation.id) == station_id).with_for_update()
    )
    if user_id is not None:
        await session.exec(select(UserAccount.id).where(col(UserAccount.id) == user_id).with_for_update())


async def holding_connector(
    session: AsyncSession, *, station_id: int, connector_id: int, now: datetime
) -> Reservation | None:
    stmt = _holding(select(Reservation), now).where(
        col(Reservation.station_id) == station_id, col(Reservation.connector_id) == connector_id
    )
    return (await session.exec(stmt.limit(1))).first()


async def holding_for_driver(
    session: AsyncSession, *, user_id: int | None, id_tag: str, now: datetime
) -> Reservation | None:
    """The driver's reservation still holding a connector, found by account or by token."""
    mine = func.lower(col(Reservation.id_tag)) == id_tag.lower()
    if user_id is not None:
        mine = or_(mine, col(Reservation.user_id) == user_id)
    stmt = _holding(select(Reservation), now).where(mine)
    return (await session.exec(stmt.limit(1))).first()


async def tag_owner(session: AsyncSession, id_tag: str) -> int | None:
    """The account a token belongs to (an operator reserving for a customer's card)."""
    stmt = select(IdToken.user_id).where(func.lower(col(IdToken.token)) == id_tag.lower())
    return (await session.exec(stmt.limit(1))).first()


async def settle(
    session: AsyncSession,
    reservation_id: int,
    *,
    status: ReservationStatus,
    station_status: str | None,
    now: datetime,
) -> bool:
    """Move an active reservation to `status`; False if it had left `active` meanwhile."""
    values: dict[str, Any] = {"status": status.value, "updated_at": now}
    if station_status is not None:
        values["station_status"] = station_status[:30]
    result = await session.exec(
        update(Reservation)  # type: ignore[call-overload]
        .where(col(Reservation.id) == reservation_id, col(Reservation.status) == ACTIVE)
        .values(**values)
    )
    return bool(result.rowcount)


# --- the worker's writes (one event's or one job's connection) ---


async def use_for_transaction(conn: AsyncConnection, tx: dict[str, Any], now: datetime) -> int:
    """Link the session that used a reservation; how many reservations it used (0 or 1).

    The station's StartTransaction names the reservation it used (OCPP 1.6 §5.13), stored on
    the transaction: that is the station's word and wins over any status ChargeNet recorded
    (even one it thought expired). Stations that omit reservationId are matched on their
    station, connector and idTag against a reservation still holding the connector.
    """
    table = Reservation.__table__  # type: ignore[attr-defined]
    stmt = update(table).where(table.c.station_id == tx["station_id"], table.c.transaction_id.is_(None))
    if tx["reservation_id"] is not None:
        stmt = stmt.where(table.c.id == tx["reservation_id"])
    elif tx["id_tag"]:
        stmt = stmt.where(
            table.c.connector_id == tx["connector_id"],
            func.lower(table.c.id_tag) == str(tx["id_tag"]).lower(),
            table.c.status == ACTIVE,
            table.c.expires_at > tx["started_at"],
        )
    else:
        return 0
    values = {"status": ReservationStatus.USED.value, "transaction_id": tx["id"], "updated_at": now}
    return int((await conn.execute(stmt.values(**values))).rowcount or 0)


async def expire_due(conn: AsyncConnection, now: datetime) -> int:
    table = Reservation.__table__  # type: ignore[attr-defined]
    stmt = (
        update(table)
        .where(table.c.status == ACTIVE, table.c.expires_at <= now)
        .values(status=ReservationStatus.EXPIRED.value, updated_at=now)
    )
    return int((await conn.execute(stmt)).rowcount or 0)
