"""2.0.1 sessions by the id the station chose: finding them, naming them in commands, and
what a station learns about them after their start (a token presented late, the first meter
reading when the start carried none)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.state import StationContext
from gateway.tables import TRANSACTION
from gateway.transactions import IdTagInfo, authorize, station_key
from gateway.writer import Unit, Writer
from schema.enums import TransactionState
from schema.events import Event


async def find_station_transaction(
    engine: AsyncEngine, ctx: StationContext, station_transaction_id: str
) -> tuple[int, bool] | None:
    """ChargeNet's id for the session a 2.0.1 station calls `station_transaction_id`, and
    whether it is still active; None when ChargeNet never heard of it."""
    for tx in ctx.transactions.values():
        if tx.station_transaction_id == station_transaction_id:
            return tx.transaction_id, True
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(TRANSACTION.c.id, TRANSACTION.c.state).where(
                    TRANSACTION.c.station_id == ctx.station_id,
                    TRANSACTION.c.start_key == station_key(station_transaction_id),
                )
            )
        ).first()
    if row is None:
        return None
    active = ctx.transactions.get(row.id)
    if active is not None:  # loaded at the handshake, which does not read the station's id
        active.station_transaction_id = station_transaction_id
    return int(row.id), row.state == TransactionState.ACTIVE.value


async def station_transaction_id(engine: AsyncEngine, ctx: StationContext, transaction_id: int) -> str | None:
    """The id a 2.0.1 station knows ChargeNet's session `transaction_id` by (None: not its session)."""
    active = ctx.transactions.get(transaction_id)
    if active is not None and active.station_transaction_id is not None:
        return active.station_transaction_id
    async with engine.connect() as conn:
        found = (
            await conn.execute(
                select(TRANSACTION.c.station_transaction_id).where(
                    TRANSACTION.c.id == transaction_id, TRANSACTION.c.station_id == ctx.station_id
                )
            )
        ).scalar()
    return None if found is None else str(found)


async def attach_id_tag(
    engine: AsyncEngine, writer: Writer, ctx: StationContext, transaction_id: int, id_tag: str
) -> IdTagInfo:
    """A token presented after the session started (2.0.1: plug in first, then authorize)
    becomes the session's, unless it already has one."""
    tag = await authorize(engine, id_tag)

    async def fn(conn: AsyncConnection, _events: list[Event]) -> None:
        await conn.execute(
            update(TRANSACTION)
            .where(
                TRANSACTION.c.id == transaction_id,
                TRANSACTION.c.station_id == ctx.station_id,
                TRANSACTION.c.id_tag.is_(None),
            )
            .values(id_tag=id_tag, user_id=tag.user_id)
        )

    await writer.submit(Unit(fn=fn))
    active = ctx.transactions.get(transaction_id)
    if active is not None and active.id_tag is None:
        active.id_tag = id_tag
    return tag


async def set_meter_start(
    writer: Writer, ctx: StationContext, transaction_id: int, meter_start_wh: int
) -> None:
    """The register at the start, learnt after it (a 2.0.1 Started without a meter reading)."""
    active = ctx.transactions.get(transaction_id)
    if active is not None:
        active.meter_start_wh = meter_start_wh

    async def fn(conn: AsyncConnection, _events: list[Event]) -> None:
        await conn.execute(
            update(TRANSACTION)
            .where(TRANSACTION.c.id == transaction_id, TRANSACTION.c.state == TransactionState.ACTIVE.value)
            .values(meter_start_wh=meter_start_wh)
        )

    await writer.submit(Unit(fn=fn))
