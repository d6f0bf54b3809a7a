"""Every query of the local-list context: tokens to list, the installed snapshot, sync state,
and which stations the worker must bring up to date."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col
from sqlmodel import select as model_select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.localauth.entries import ListEntry, Token
from schema.commands import SendLocalList, UpdateType
from schema.control_models import StationConfigurationKey
from schema.local_auth_models import LocalAuthListEntry, LocalAuthListState
from schema.models import ChargingStation, IdToken

STATE = LocalAuthListState.__table__  # type: ignore[attr-defined]
ENTRY = LocalAuthListEntry.__table__  # type: ignore[attr-defined]
TOKEN = IdToken.__table__  # type: ignore[attr-defined]
STATION = ChargingStation.__table__  # type: ignore[attr-defined]
STATION_OFFLINE = "STATION_OFFLINE"


async def configuration(s: AsyncSession, station_id: int, keys: Iterable[str]) -> dict[str, str | None]:
    table = StationConfigurationKey.__table__  # type: ignore[attr-defined]
    rows = (
        await (await s.connection()).execute(
            select(table.c.key, table.c.value).where(
                table.c.station_id == station_id, table.c.key.in_(list(keys))
            )
        )
    ).all()
    return {r.key: r.value for r in rows}


async def organization_tokens(s: AsyncSession, organization_id: int | None) -> list[Token]:
    """The organisation's tokens; none for a station without an organisation."""
    if organization_id is None:
        return []
    rows = (
        await (await s.connection()).execute(
            select(TOKEN.c.id, TOKEN.c.token, TOKEN.c.status, TOKEN.c.expires_at, TOKEN.c.parent_token).where(
                TOKEN.c.organization_id == organization_id
            )
        )
    ).all()
    return [Token(r.id, r.token, r.status, r.expires_at, r.parent_token) for r in rows]


async def state(s: AsyncSession, station_id: int) -> LocalAuthListState | None:
    return await s.get(LocalAuthListState, station_id, populate_existing=True)


async def states(s: AsyncSession, station_ids: Sequence[int]) -> dict[int, LocalAuthListState]:
    rows = (
        await s.exec(
            model_select(LocalAuthListState).where(col(LocalAuthListState.station_id).in_(station_ids))
        )
    ).all()
    return {r.station_id: r for r in rows}


async def installed(s: AsyncSession, station_id: int) -> dict[str, ListEntry]:
    rows = (
        await (await s.connection()).execute(
            select(ENTRY.c.id_token, ENTRY.c.status, ENTRY.c.expires_at, ENTRY.c.parent_token).where(
                ENTRY.c.station_id == station_id
            )
        )
    ).all()
    return {r.id_token: ListEntry(r.id_token, r.status, r.expires_at, r.parent_token) for r in rows}


async def apply_to_installed(s: AsyncSession, station_id: int, command: SendLocalList) -> None:
    """Follow one accepted SendLocalList in the snapshot, touching only the rows it names (a
    Full update replaces them all): a list sent in many parts costs each part's rows only."""
    conn = await s.connection()
    if command.update_type is UpdateType.FULL:
        await conn.execute(delete(ENTRY).where(ENTRY.c.station_id == station_id))
    elif command.entries:
        tags = [e.id_tag for e in command.entries]
        await conn.execute(delete(ENTRY).where(ENTRY.c.station_id == station_id, ENTRY.c.id_token.in_(tags)))
    rows = [
        {
            "station_id": station_id,
            "id_token": e.id_tag,
            "status": e.status,
            "expires_at": e.expires_at,
            "parent_token": e.parent_id_tag,
        }
        for e in command.entries
        if e.status is not None
    ]
    if rows:
        await conn.execute(insert(ENTRY), rows)


async def due_stations(
    conn: AsyncConnection, *, now: datetime, retry_before: datetime, limit: int
) -> list[Any]:
    """Managed stations whose list is owed an update: still pending (retried at once when the
    last attempt found the station offline or it rebooted since, else after `retry_before`),
    or a token of their organisation was added or changed since the last attempt, or a listed
    token was deleted or left the organisation. Rows: station_id, online."""
    changed = exists().where(
        TOKEN.c.organization_id == STATION.c.organization_id,
        func.coalesce(TOKEN.c.updated_at, TOKEN.c.created_at) > func.coalesce(STATE.c.attempted_at, now),
    )
    gone = exists().where(
        ENTRY.c.station_id == STATE.c.station_id,
        ~exists().where(
            TOKEN.c.token == ENTRY.c.id_token, TOKEN.c.organization_id == STATION.c.organization_id
        ),
    )
    retry = and_(
        STATE.c.pending,
        or_(
            STATE.c.attempted_at.is_(None),
            STATE.c.attempted_at <= retry_before,
            STATE.c.last_result == STATION_OFFLINE,
            STATION.c.last_boot_at > STATE.c.attempted_at,
        ),
    )
    stmt = (
        select(STATE.c.station_id, STATION.c.online)
        .select_from(STATE.join(STATION, STATION.c.id == STATE.c.station_id))
        .where(or_(retry, changed, gone))
        .order_by(STATE.c.attempted_at.is_not(None), STATE.c.attempted_at, STATE.c.station_id)
        .limit(limit)
    )
    return list((await conn.execute(stmt)).all())


async def mark_pending(conn: AsyncConnection, station_ids: Sequence[int]) -> None:
    if station_ids:
        await conn.execute(
            update(STATE).where(STATE.c.station_id.in_(list(station_ids))).values(pending=True)
        )


async def stations(conn: AsyncConnection, station_ids: Sequence[int]) -> list[Any]:
    """Station rows (ChargingStation attribute names) for the worker, which acts as the system."""
    return list((await conn.execute(select(STATION).where(STATION.c.id.in_(list(station_ids))))).all())
