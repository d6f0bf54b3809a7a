"""Station identity and liveness: lookup at handshake, registration, online/offline, boot."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.state import StationContext
from gateway.station_loader import LoadedStation, StationRecord
from gateway.tables import STATION
from gateway.writer import Unit, Writer
from schema.enums import RegistrationStatus
from schema.events import Event, StationReported
from schema.timeutil import utcnow


async def register_station(
    writer: Writer,
    charge_point_id: str,
    *,
    heartbeat_interval_s: int,
    registration_status: RegistrationStatus = RegistrationStatus.ACCEPTED,
) -> LoadedStation:
    """Auto-registration: an unknown id becomes a station without a location — Accepted, or
    Pending until an operator approves it (approveStation)."""

    async def fn(conn: AsyncConnection, _events: list[Event]) -> int:
        existing = (
            await conn.execute(select(STATION.c.id).where(STATION.c.charge_point_id == charge_point_id))
        ).scalar()
        if existing is not None:
            return int(existing)
        result = await conn.execute(
            STATION.insert().values(
                charge_point_id=charge_point_id,
                registration_status=registration_status.value,
                heartbeat_interval_s=heartbeat_interval_s,
                online=False,
                status="Unknown",
                error_code="NoError",
                created_at=utcnow(),
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    station_id = await writer.submit(Unit(fn=fn))
    record = StationRecord(
        station_id, charge_point_id, None, registration_status.value, None, heartbeat_interval_s
    )
    ctx = StationContext(
        station_id=station_id,
        charge_point_id=charge_point_id,
        location_id=None,
        registration_status=record.registration_status,
        heartbeat_interval_s=heartbeat_interval_s,
        loaded_at=time.monotonic(),
    )
    return LoadedStation(record, ctx)


async def promote_password(writer: Writer, record: StationRecord) -> None:
    """The station connected with its rotated password: that one is now the only one."""

    async def fn(conn: AsyncConnection, _events: list[Event]) -> None:
        await conn.execute(
            update(STATION)
            .where(
                STATION.c.id == record.station_id,
                STATION.c.pending_password_hash == record.pending_password_hash,
            )
            .values(password_hash=record.pending_password_hash, pending_password_hash=None)
        )

    await writer.submit(Unit(fn=fn))


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
    # OCPP 2.0.1 BootNotification.reason (PowerUp, FirmwareUpdate, Watchdog…); 1.6 has none.
    reason: str | None = None


# A Boot this soon after the handshake read the station answers from that read: after a
# restart every charger boots within a second of connecting, and re-reading its registration
# was one more round trip per charger in the storm. Later Boots (a Pending station retrying,
# or one an operator changed meanwhile) read it again.
REGISTRATION_FRESH_S = 10.0

_RECORD_BOOT = (
    update(STATION)
    .where(STATION.c.id == bindparam("b_station_id"))
    .values(
        vendor=bindparam("b_vendor"),
        model=bindparam("b_model"),
        serial_number=bindparam("b_serial"),
        firmware_version=bindparam("b_firmware"),
        ocpp_version=bindparam("b_ocpp_version"),
        last_boot_at=bindparam("b_now"),
        last_seen_at=bindparam("b_now"),
        online=True,
    )
)


async def record_boot(
    writer: Writer, ctx: StationContext, info: BootInfo, *, retry_interval_s: int
) -> tuple[str, int]:
    """Store what the station says it is; answer with its registration status and interval.

    OCPP 1.6 §4.2: when Accepted the interval is the heartbeat interval; when Pending or
    Rejected it is how long the station waits before its next BootNotification.
    """
    now = utcnow()
    params = {
        "b_station_id": ctx.station_id,
        "b_vendor": info.vendor,
        "b_model": info.model,
        "b_serial": info.serial_number,
        "b_firmware": info.firmware_version,
        "b_ocpp_version": info.ocpp_version,
        "b_now": now,
    }
    fresh = (
        ctx.registration_status == RegistrationStatus.ACCEPTED.value
        and time.monotonic() - ctx.loaded_at < REGISTRATION_FRESH_S
    )

    async def read_status(conn: AsyncConnection, _events: list[Event]) -> str:
        status: object = (
            await conn.execute(select(STATION.c.registration_status).where(STATION.c.id == ctx.station_id))
        ).scalar_one()
        return str(status)

    ctx.online = True
    ctx.firmware_version = info.firmware_version
    events: list[Event] = [ctx.status_event(now, reason="booted")]
    if info.reason is not None:
        # Why it booted (a watchdog, a firmware update) is announced, not stored: the row
        # already says when, and a reconnect storm should not cost another write.
        events.append(_reported(ctx, now, "BootNotification", {"reason": info.reason}))
    result = await writer.submit(
        Unit(fn=None if fresh else read_status, updates=[(_RECORD_BOOT, params)], events=events)
    )
    status = ctx.registration_status if fresh else str(result)
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

    await writer.submit(Unit(fn=fn, events=[_reported(ctx, now, action, detail)]))


def _reported(ctx: StationContext, at: datetime, action: str, detail: dict[str, object]) -> Event:
    return StationReported(
        station_id=ctx.station_id,
        charge_point_id=ctx.charge_point_id,
        location_id=ctx.location_id,
        at=at,
        action=action,
        detail=detail,
    )
