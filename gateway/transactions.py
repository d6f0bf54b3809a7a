"""Charging sessions as the station reports them: authorize, start, meter, stop.

Every function here is idempotent against the resends OCPP allows: a repeated start returns
the same transaction id, a repeated stop changes nothing, and meter values that arrive late
are filed under the transaction they name. A 1.6 session is known by the integer id ChargeNet
gave it; a 2.0.1 session also by the id the station chose (`station_transaction_id`), which
is its start key, so a Started replayed after its Ended finds the ended session, never a new one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.meter import Sample, first_register, latest_reading, parse_samples
from gateway.state import ActiveTransaction, StationContext
from gateway.tables import ID_TOKEN, METER_SAMPLE, TRANSACTION, insert_into
from gateway.writer import Unit, Writer
from schema.enums import TransactionState
from schema.events import Event, TransactionEnded, TransactionStarted, TransactionUpdated
from schema.timeutil import to_ocpp, utcnow

# OCPP 1.6 §6.47: a StopTransaction without a reason means the session ended locally.
DEFAULT_STOP_REASON = "Local"


@dataclass(frozen=True, slots=True)
class IdTagInfo:
    status: str
    expiry_date: datetime | None = None
    parent_id_tag: str | None = None
    # The driver owning the token; not sent to the station, stored on the session.
    user_id: int | None = None

    def to_ocpp(self) -> dict[str, Any]:
        info: dict[str, Any] = {"status": self.status}
        if self.expiry_date is not None:
            info["expiryDate"] = to_ocpp(self.expiry_date)
        if self.parent_id_tag:
            info["parentIdTag"] = self.parent_id_tag
        return info


async def authorize(engine: AsyncEngine, id_tag: str) -> IdTagInfo:
    """Unknown tags are Invalid; expired ones Expired; the stored status otherwise."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(
                    ID_TOKEN.c.status, ID_TOKEN.c.expires_at, ID_TOKEN.c.parent_token, ID_TOKEN.c.user_id
                ).where(ID_TOKEN.c.token == id_tag)
            )
        ).first()
    if row is None:
        return IdTagInfo("Invalid")
    if row.expires_at is not None and row.expires_at <= utcnow():
        return IdTagInfo("Expired", row.expires_at, row.parent_token, row.user_id)
    return IdTagInfo(row.status, row.expires_at, row.parent_token, row.user_id)


async def token_types(engine: AsyncEngine, tokens: Collection[str]) -> dict[str, str]:
    """How ChargeNet issued each known token (IdToken.token_type: RFID, Central…)."""
    if not tokens:
        return {}
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(ID_TOKEN.c.token, ID_TOKEN.c.token_type).where(ID_TOKEN.c.token.in_(list(tokens)))
        )
        return {row.token: row.token_type for row in rows}


def _sample_rows(
    ctx: StationContext, connector_id: int, transaction_id: int | None, samples: list[Sample]
) -> list[dict[str, Any]]:
    return [
        {
            "station_id": ctx.station_id,
            "connector_id": connector_id,
            "transaction_id": transaction_id,
            "sampled_at": s.sampled_at,
            "measurand": s.measurand,
            # '' for absent: part of the sample's key (see MeterSample)
            "phase": s.phase or "",
            "location": s.location or "",
            "context": s.context or "",
            "unit": s.unit,
            "value": s.value,
        }
        for s in samples
    ]


def _tx_event(
    cls: type[TransactionStarted | TransactionUpdated | TransactionEnded],
    ctx: StationContext,
    at: datetime,
    row: dict[str, Any],
    **extra: Any,
) -> Event:
    return cls(
        station_id=ctx.station_id,
        charge_point_id=ctx.charge_point_id,
        location_id=ctx.location_id,
        at=at,
        transaction_id=row["id"],
        connector_id=row["connector_id"],
        state=row["state"],
        id_tag=row["id_tag"],
        started_at=row["started_at"],
        stopped_at=row["stopped_at"],
        meter_start_wh=row["meter_start_wh"],
        energy_wh=row["energy_wh"],
        power_w=row["power_w"],
        soc_percent=row["soc_percent"],
        last_sample_at=row["last_sample_at"],
        stop_reason=row["stop_reason"],
        **extra,
    )


@dataclass(frozen=True, slots=True)
class StartRequest:
    connector_id: int
    # None: the station started without a token (2.0.1 NoAuthorization, or authorized later).
    id_tag: str | None
    meter_start_wh: int
    timestamp: datetime
    reservation_id: int | None = None
    station_transaction_id: str | None = None
    remote_start_id: int | None = None


# A session started without a token has nothing to refuse.
NO_TOKEN = IdTagInfo("Accepted")


def _start_key(connector_id: int, timestamp: datetime, meter_start_wh: int) -> str:
    return f"{connector_id}:{to_ocpp(timestamp)}:{meter_start_wh}"


def station_key(station_transaction_id: str) -> str:
    """The start key of a session the station named (2.0.1): unique per station."""
    return f"tx:{station_transaction_id}"


async def start_transaction(
    engine: AsyncEngine, writer: Writer, ctx: StationContext, req: StartRequest
) -> tuple[int, IdTagInfo]:
    tag = await authorize(engine, req.id_tag) if req.id_tag is not None else NO_TOKEN
    if req.station_transaction_id is not None:
        start_key = station_key(req.station_transaction_id)
    else:
        start_key = _start_key(req.connector_id, req.timestamp, req.meter_start_wh)

    async def fn(conn: AsyncConnection, events: list[Event]) -> tuple[int, bool]:
        existing = (
            await conn.execute(
                select(TRANSACTION.c.id, TRANSACTION.c.state).where(
                    TRANSACTION.c.station_id == ctx.station_id, TRANSACTION.c.start_key == start_key
                )
            )
        ).first()
        if existing is not None:
            return int(existing.id), existing.state == TransactionState.ACTIVE.value
        row: dict[str, Any] = {
            "station_id": ctx.station_id,
            "connector_id": req.connector_id,
            "id_tag": req.id_tag,
            "user_id": tag.user_id,
            "start_key": start_key,
            "state": TransactionState.ACTIVE.value,
            "started_at": req.timestamp,
            "stopped_at": None,
            "meter_start_wh": req.meter_start_wh,
            "meter_stop_wh": None,
            "energy_wh": 0,
            "power_w": None,
            "soc_percent": None,
            "last_sample_at": None,
            "stop_reason": None,
            "reservation_id": req.reservation_id,
            "start_missing": False,
            "station_transaction_id": req.station_transaction_id,
            "created_at": utcnow(),
        }
        result = await conn.execute(TRANSACTION.insert().values(**row))
        row["id"] = int(result.inserted_primary_key[0])  # type: ignore[index]
        events.append(
            _tx_event(TransactionStarted, ctx, row["created_at"], row, remote_start_id=req.remote_start_id)
        )
        return row["id"], True

    tx_id, active = await writer.submit(Unit(fn=fn))
    # A start repeated after its stop names an ended session: it must not come alive again.
    if active and tx_id not in ctx.transactions:
        ctx.transactions[tx_id] = ActiveTransaction(
            transaction_id=tx_id,
            connector_id=req.connector_id,
            id_tag=req.id_tag,
            started_at=req.timestamp,
            meter_start_wh=req.meter_start_wh,
            station_transaction_id=req.station_transaction_id,
        )
    return tx_id, tag


# Only an active session's live view moves: a MeterValues that arrives after the stop (another
# gateway, a resend) must not overwrite the final figures.
_UPDATE_LIVE = (
    update(TRANSACTION)
    .where(TRANSACTION.c.id == bindparam("b_id"), TRANSACTION.c.state == TransactionState.ACTIVE.value)
    .values(
        energy_wh=bindparam("b_energy"),
        power_w=bindparam("b_power"),
        soc_percent=bindparam("b_soc"),
        last_sample_at=bindparam("b_at"),
    )
)


async def record_meter_values(
    writer: Writer,
    ctx: StationContext,
    connector_id: int,
    transaction_id: int | None,
    meter_values: list[dict[str, Any]],
) -> None:
    """Store every sample; advance the live view of an active session from the register.

    The fast path (a session this connection knows) is merged into the writer's batch;
    a transaction id the gateway does not hold in memory is checked in the database.
    """
    samples = parse_samples(meter_values)
    active = ctx.transactions.get(transaction_id) if transaction_id is not None else None
    if transaction_id is not None and active is None:
        await writer.submit(Unit(fn=_late_samples_fn(ctx, connector_id, transaction_id, samples)))
        return
    unit = Unit(inserts=[(METER_SAMPLE, _sample_rows(ctx, connector_id, transaction_id, samples))])
    if active is not None:
        reading = latest_reading(samples)
        if reading.at is not None and (active.last_sample_at is None or reading.at >= active.last_sample_at):
            if reading.register_wh is not None:
                active.energy_wh = max(0, reading.register_wh - active.meter_start_wh)
            if reading.power_w is not None:
                active.power_w = reading.power_w
            if reading.soc_percent is not None:
                active.soc_percent = reading.soc_percent
            active.last_sample_at = reading.at
            unit.updates.append(
                (
                    _UPDATE_LIVE,
                    {
                        "b_id": active.transaction_id,
                        "b_energy": active.energy_wh,
                        "b_power": active.power_w,
                        "b_soc": active.soc_percent,
                        "b_at": reading.at,
                    },
                )
            )
            unit.events.append(_live_event(ctx, active))
    await writer.submit(unit)


def _live_event(ctx: StationContext, tx: ActiveTransaction) -> Event:
    row = {
        "id": tx.transaction_id,
        "connector_id": tx.connector_id,
        "state": TransactionState.ACTIVE.value,
        "id_tag": tx.id_tag,
        "started_at": tx.started_at,
        "stopped_at": None,
        "meter_start_wh": tx.meter_start_wh,
        "energy_wh": tx.energy_wh,
        "power_w": tx.power_w,
        "soc_percent": tx.soc_percent,
        "last_sample_at": tx.last_sample_at,
        "stop_reason": None,
    }
    return _tx_event(TransactionUpdated, ctx, utcnow(), row)


def _late_samples_fn(
    ctx: StationContext, connector_id: int, transaction_id: int, samples: list[Sample]
) -> Any:
    async def fn(conn: AsyncConnection, _events: list[Event]) -> None:
        owner = (
            await conn.execute(
                select(TRANSACTION.c.id).where(
                    TRANSACTION.c.id == transaction_id, TRANSACTION.c.station_id == ctx.station_id
                )
            )
        ).scalar()
        # A transaction id this station never had is kept as an out-of-session sample rather
        # than attached to someone else's session.
        rows = _sample_rows(ctx, connector_id, owner, samples)
        if rows:
            await conn.execute(insert_into(METER_SAMPLE, conn.dialect.name), rows)

    return fn


@dataclass(frozen=True, slots=True)
class StopRequest:
    """`transaction_id` (1.6) or `station_transaction_id` (2.0.1) names the session. Without
    `meter_stop_wh` (a 2.0.1 Ended without a reading) the last reading stands."""

    transaction_id: int | None
    meter_stop_wh: int | None
    timestamp: datetime
    id_tag: str | None = None
    reason: str | None = None
    transaction_data: list[dict[str, Any]] | None = None
    station_transaction_id: str | None = None
    # Where a stop whose start ChargeNet never saw happened (1.6 does not say: 0).
    connector_id: int | None = None


async def stop_transaction(
    engine: AsyncEngine, writer: Writer, ctx: StationContext, req: StopRequest
) -> IdTagInfo | None:
    """Close the session. Always answered, even for a blocked tag or an unknown transaction."""
    tag = await authorize(engine, req.id_tag) if req.id_tag else None
    samples = parse_samples(req.transaction_data or [])
    reason = req.reason or DEFAULT_STOP_REASON

    if req.station_transaction_id is not None:
        named = TRANSACTION.c.start_key == station_key(req.station_transaction_id)
    else:
        named = TRANSACTION.c.id == req.transaction_id

    async def fn(conn: AsyncConnection, events: list[Event]) -> int | None:
        found = (
            (
                await conn.execute(
                    select(TRANSACTION)
                    .where(named, TRANSACTION.c.station_id == ctx.station_id)
                    # PostgreSQL: a stop resent through another gateway waits here, then sees
                    # the session completed, so it ends (and is announced) exactly once.
                    .with_for_update()
                )
            )
            .mappings()
            .first()
        )
        now = utcnow()
        if found is None:
            await _record_orphan_stop(conn, events, ctx, req, samples, reason, now)
            return None
        row = dict(found)
        if row["state"] == TransactionState.COMPLETED.value:
            return int(row["id"])
        connector_id = row["connector_id"]
        reading = latest_reading(samples)
        meter_stop = req.meter_stop_wh
        if meter_stop is None:
            meter_stop = row["meter_start_wh"] + row["energy_wh"]
        row.update(
            state=TransactionState.COMPLETED.value,
            stopped_at=req.timestamp,
            meter_stop_wh=meter_stop,
            energy_wh=max(0, meter_stop - row["meter_start_wh"]),
            stop_reason=reason,
            soc_percent=reading.soc_percent if reading.soc_percent is not None else row["soc_percent"],
            power_w=0,
            last_sample_at=max(filter(None, (row["last_sample_at"], reading.at)))
            if (row["last_sample_at"] or reading.at)
            else None,
        )
        closed = await conn.execute(
            update(TRANSACTION)
            # Still active: where no row lock exists (SQLite), a stop that raced another one
            # through a second connection changes nothing and announces nothing.
            .where(TRANSACTION.c.id == row["id"], TRANSACTION.c.state == TransactionState.ACTIVE.value)
            .values(
                state=row["state"],
                stopped_at=row["stopped_at"],
                meter_stop_wh=row["meter_stop_wh"],
                energy_wh=row["energy_wh"],
                stop_reason=row["stop_reason"],
                soc_percent=row["soc_percent"],
                power_w=0,
                last_sample_at=row["last_sample_at"],
            )
        )
        if closed.rowcount == 0:
            return int(row["id"])
        if samples:
            await conn.execute(
                insert_into(METER_SAMPLE, conn.dialect.name),
                _sample_rows(ctx, connector_id, row["id"], samples),
            )
        events.append(_tx_event(TransactionEnded, ctx, now, row))
        return int(row["id"])

    stopped = await writer.submit(Unit(fn=fn))
    if stopped is not None:
        ctx.transactions.pop(stopped, None)
    return tag


async def _record_orphan_stop(
    conn: AsyncConnection,
    events: list[Event],
    ctx: StationContext,
    req: StopRequest,
    samples: list[Sample],
    reason: str,
    now: datetime,
) -> None:
    """OCPP 1.6: a stop may arrive for a start ChargeNet never saw. Record it, flagged. (A 2.0.1
    orphan takes the station's id as its key, so its late Started finds it ended.)"""
    if req.station_transaction_id is not None:
        start_key = station_key(req.station_transaction_id)
    else:
        start_key = f"orphan:{req.transaction_id}:{to_ocpp(req.timestamp)}"
    if (
        await conn.execute(
            select(TRANSACTION.c.id).where(
                TRANSACTION.c.station_id == ctx.station_id, TRANSACTION.c.start_key == start_key
            )
        )
    ).scalar() is not None:
        return
    first = first_register(samples)
    first_wh = first[1] if first else None
    # Without a reading at either end the session is recorded with no energy rather than a guess.
    meter_stop = next((wh for wh in (req.meter_stop_wh, first_wh) if wh is not None), 0)
    meter_start = first_wh if first_wh is not None else meter_stop
    connector_id = req.connector_id or 0
    row: dict[str, Any] = {
        "station_id": ctx.station_id,
        "connector_id": connector_id,
        "id_tag": req.id_tag,
        "start_key": start_key,
        "state": TransactionState.COMPLETED.value,
        "started_at": first[0] if first else req.timestamp,
        "stopped_at": req.timestamp,
        "meter_start_wh": meter_start,
        "meter_stop_wh": meter_stop,
        "energy_wh": max(0, meter_stop - meter_start),
        "power_w": 0,
        "soc_percent": latest_reading(samples).soc_percent,
        "last_sample_at": latest_reading(samples).at,
        "stop_reason": reason,
        "reservation_id": None,
        "start_missing": True,
        "station_transaction_id": req.station_transaction_id,
        "created_at": now,
    }
    result = await conn.execute(TRANSACTION.insert().values(**row))
    row["id"] = int(result.inserted_primary_key[0])  # type: ignore[index]
    if samples:
        await conn.execute(
            insert_into(METER_SAMPLE, conn.dialect.name), _sample_rows(ctx, connector_id, row["id"], samples)
        )
    events.append(_tx_event(TransactionEnded, ctx, now, row, start_missing=True))
