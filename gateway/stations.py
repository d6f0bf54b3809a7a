"""Station identity and liveness: lookup at handshake, registration, online/offline, boot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.state import ActiveTransaction, ConnectorView, StationContext
from gateway.tables import CONNECTOR, STATION, TRANSACTION
from gateway.writer import Unit, Writer
from schema.enums import RegistrationStatus, TransactionState
from schema.events import Event, StationReported
from schema.timeutil import utcnow


@dataclass(frozen=True, slots=True)
class StationRecord:
    station_id: int
    charge_point_id: str
    location_id: int | None
    registration_status: str
    password_hash: str | None
    heartbeat_interval_s: int


async def find_station(engine: AsyncEngine, charge_point_id: str) -> StationRecord | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(
                    STATION.c.id,
                    STATION.c.location_id,
                    STATION.c.registration_status,
                    STATION.c.password_hash,
                    STATION.c.heartbeat_interval_s,
                ).where(STATION.c.charge_point_id == charge_point_id)
            )
        ).first()
    if row is None:
        return None
    return StationRecord(
        row.id,
        charge_point_id,
        row.location_id,
        row.registration_status,
        row.password_hash,
        row.heartbeat_interval_s,
    )


async def register_station(
    writer: Writer, charge_point_id: str, *, heartbeat_interval_s: int
) -> StationRecord:
    """Auto-registration: an unknown id becomes a station without a location, Accepted."""

    async def fn(conn: AsyncConnection, _events: list[Event]) -> int:
        existing = (
            await conn.execute(select(STATION.c.id).where(STATION.c.charge_point_id == charge_point_id))
        ).scalar()
        if existing is not None:
            return int(existing)
        result = await conn.execute(
            STATION.insert().values(
                charge_point_id=charge_point_id,
                registration_status=RegistrationStatus.ACCEPTED.value,
                heartbeat_interval_s=heartbeat_interval_s,
                online=False,
                status="Unknown",
                error_code="NoError",
                created_at=utcnow(),
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    station_id = await writer.submit(Unit(fn=fn))
    return StationRecord(
        station_id, charge_point_id, None, RegistrationStatus.ACCEPTED.value, None, heartbeat_interval_s
    )


async def load_context(engine: AsyncEngine, record: StationRecord) -> StationContext:
    """Everything the gateway answers from memory while the station stays connected."""
    ctx = StationContext(
        station_id=record.station_id,
        charge_point_id=record.charge_point_id,
        location_id=record.location_id,
        registration_status=record.registration_status,
        heartbeat_interval_s=record.heartbeat_interval_s,
    )
    async with engine.connect() as conn:
        station = (
            await conn.execute(
                select(STATION.c.status, STATION.c.error_code).where(STATION.c.id == record.station_id)
            )
        ).one()
        ctx.status, ctx.error_code = station.status, station.error_code
        for row in await conn.execute(
            select(
                CONNECTOR.c.connector_id, CONNECTOR.c.status, CONNECTOR.c.error_code, CONNECTOR.c.status_since
            ).where(CONNECTOR.c.station_id == record.station_id)
        ):
            ctx.connectors[row.connector_id] = ConnectorView(
                row.connector_id, row.status, row.error_code, row.status_since
            )
        for row in await conn.execute(
            select(TRANSACTION).where(
                TRANSACTION.c.station_id == record.station_id,
                TRANSACTION.c.state == TransactionState.ACTIVE.value,
            )
        ):
            ctx.transactions[row.id] = ActiveTransaction(
                transaction_id=row.id,
                connector_id=row.connector_id,
                id_tag=row.id_tag,
                started_at=row.started_at,
                meter_start_wh=row.meter_start_wh,
                energy_wh=row.energy_wh,
                power_w=row.power_w,
                soc_percent=row.soc_percent,
                last_sample_at=row.last_sample_at,
            )
    return ctx


_SET_ONLINE = (
    update(STATION)
    .where(STATION.c.id == bindparam("b_station_id"))
    .values(online=bindparam("b_online"), last_seen_at=bindparam("b_seen"))
)

_SET_LAST_SEEN = (
    update(STATION).where(STATION.c.id == bindparam("b_station_id")).values(last_seen_at=bindparam("b_seen"))
)


async def set_online(writer: Writer, ctx: StationContext, online: bool) -> None:
    now = utcnow()
    ctx.online = online
    await writer.submit(
        Unit(
            updates=[(_SET_ONLINE, {"b_station_id": ctx.station_id, "b_online": online, "b_seen": now})],
            events=[ctx.status_event(now, reason="connected" if online else "disconnected")],
        )
    )


# Rows per last-seen write: big enough to be cheap, small enough that the messages queued
# behind it are not held up by one long statement.
LAST_SEEN_CHUNK = 500


async def flush_last_seen(writer: Writer, seen: dict[int, datetime]) -> None:
    """Liveness is kept in memory per message and written in chunks every few seconds."""
    items = list(seen.items())
    for start in range(0, len(items), LAST_SEEN_CHUNK):
        chunk = items[start : start + LAST_SEEN_CHUNK]
        await writer.submit(
            Unit(updates=[(_SET_LAST_SEEN, {"b_station_id": sid, "b_seen": at}) for sid, at in chunk])
        )


@dataclass(frozen=True, slots=True)
class BootInfo:
    vendor: str
    model: str
    serial_number: str | None
    firmware_version: str | None
    ocpp_version: str


async def record_boot(
    writer: Writer, ctx: StationContext, info: BootInfo, *, retry_interval_s: int
) -> tuple[str, int]:
    """Store what the station says it is; answer with its registration status and interval.

    OCPP 1.6 §4.2: when Accepted the interval is the heartbeat interval; when Pending or
    Rejected it is how long the station waits before its next BootNotification.
    """
    now = utcnow()

    async def fn(conn: AsyncConnection, _events: list[Event]) -> str:
        await conn.execute(
            update(STATION)
            .where(STATION.c.id == ctx.station_id)
            .values(
                vendor=info.vendor,
                model=info.model,
                serial_number=info.serial_number,
                firmware_version=info.firmware_version,
                ocpp_version=info.ocpp_version,
                last_boot_at=now,
                last_seen_at=now,
                online=True,
            )
        )
        status: str = (
            await conn.execute(select(STATION.c.registration_status).where(STATION.c.id == ctx.station_id))
        ).scalar_one()
        return str(status)

    ctx.online = True
    status = await writer.submit(Unit(fn=fn, events=[ctx.status_event(now, reason="booted")]))
    ctx.registration_status = status
    if status == RegistrationStatus.ACCEPTED.value:
        return status, ctx.heartbeat_interval_s
    return status, retry_interval_s


async def record_station_report(
    writer: Writer,
    ctx: StationContext,
    action: str,
    detail: dict[str, object],
    *,
    firmware_status: str | None = None,
    diagnostics_status: str | None = None,
) -> None:
    """Firmware/diagnostics progress and vendor data: stored, then announced."""
    now = utcnow()
    values: dict[str, object] = {}
    if firmware_status is not None:
        values.update(firmware_status=firmware_status, firmware_status_at=now)
    if diagnostics_status is not None:
        values.update(diagnostics_status=diagnostics_status, diagnostics_status_at=now)

    async def fn(conn: AsyncConnection, _events: list[Event]) -> None:
        if values:
            await conn.execute(update(STATION).where(STATION.c.id == ctx.station_id).values(**values))

    await writer.submit(
        Unit(
            fn=fn,
            events=[
                StationReported(
                    station_id=ctx.station_id,
                    charge_point_id=ctx.charge_point_id,
                    location_id=ctx.location_id,
                    at=now,
                    action=action,
                    detail=detail,
                )
            ],
        )
    )
