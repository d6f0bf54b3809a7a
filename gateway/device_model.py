"""OCPP 2.0.1 device models as stations report them (NotifyReport), stored and kept current.

Each part of a report is stored as it arrives (a full inventory comes in many messages); when
the last part of a report ChargeNet asked for is in, attributes the station no longer reported
are dropped, and the readable ones are mirrored into the neutral configuration store
(station_configuration_key, keyed as gateway/v201/variables.py describes), so everything that
shows a 1.6 station's configuration shows a 2.0.1 station's too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Insert, Table, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.state import StationContext
from gateway.station_setup import record_configuration, record_configuration_change
from gateway.v201.variables import Address, address_of, is_secret
from gateway.writer import Unit, Writer
from schema.device_models import DeviceModelVariable
from schema.events import Event
from schema.timeutil import utcnow

DEVICE_MODEL: Table = DeviceModelVariable.__table__  # type: ignore[attr-defined]
# The attribute's address: the table's primary key.
KEY_COLUMNS = tuple(c.name for c in DEVICE_MODEL.primary_key.columns)
WRITE_ONLY = "WriteOnly"
READ_ONLY = "ReadOnly"
# station_configuration_key.key is a 1.6 CiString50: longer 2.0.1 keys stay in the device model only.
MAX_CONFIGURATION_KEY = 50


def _columns(station_id: int, address: Address) -> dict[str, Any]:
    return {
        "station_id": station_id,
        "component_name": address.component,
        "component_instance": address.component_instance or "",
        "evse_id": address.evse_id or 0,
        "connector_id": address.connector_id or 0,
        "variable_name": address.variable,
        "variable_instance": address.variable_instance or "",
        "attribute_type": address.attribute_type,
    }


def _address(row: Any) -> Address:
    return Address(
        component=row.component_name,
        variable=row.variable_name,
        component_instance=row.component_instance or None,
        evse_id=row.evse_id or None,
        connector_id=row.connector_id or None,
        variable_instance=row.variable_instance or None,
        attribute_type=row.attribute_type,
    )


def report_rows(station_id: int, report_data: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """NotifyReport.reportData as rows, one per variable attribute. A write-only attribute's
    value is never kept, even when a station reports one."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for item in report_data:
        characteristics = item.get("variableCharacteristics") or {}
        for attribute in item["variableAttribute"]:
            address = address_of(item["component"], item["variable"], attribute.get("type"))
            mutability = attribute.get("mutability")
            secret = mutability == WRITE_ONLY or is_secret(address)
            row = {
                **_columns(station_id, address),
                "value": None if secret else attribute.get("value"),
                "mutability": WRITE_ONLY if is_secret(address) else mutability,
                "data_type": characteristics.get("dataType"),
                "unit": characteristics.get("unit"),
                "reported_at": now,
            }
            rows[tuple(row[c] for c in KEY_COLUMNS)] = row  # a repeat in one part: the last wins
    return list(rows.values())


def _upsert(dialect: str) -> Insert:
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(DEVICE_MODEL)
    return stmt.on_conflict_do_update(
        index_elements=list(KEY_COLUMNS),
        set_={c: stmt.excluded[c] for c in ("value", "mutability", "data_type", "unit", "reported_at")},
    )


async def record_report_part(writer: Writer, rows: list[dict[str, Any]]) -> None:
    """Store one NotifyReport's attributes (a repeated part changes nothing)."""
    if not rows:
        return

    async def fn(conn: AsyncConnection, _events: list[Event]) -> None:
        await conn.execute(_upsert(conn.dialect.name), rows)

    await writer.submit(Unit(fn=fn))


async def finish_report(
    writer: Writer, ctx: StationContext, *, complete_since: datetime | None
) -> list[dict[str, Any]]:
    """The last part of a report is in. With `complete_since` (a full inventory ChargeNet asked
    for, every part seen since then) attributes not reported since are dropped. Returns the
    station's readable configuration as now stored ({key, value, readonly})."""

    async def fn(conn: AsyncConnection, _events: list[Event]) -> list[Any]:
        if complete_since is not None:
            await conn.execute(
                delete(DEVICE_MODEL).where(
                    DEVICE_MODEL.c.station_id == ctx.station_id,
                    DEVICE_MODEL.c.reported_at < complete_since,
                )
            )
        mine = select(DEVICE_MODEL).where(DEVICE_MODEL.c.station_id == ctx.station_id)
        return list(await conn.execute(mine))

    rows: list[Any] = await writer.submit(Unit(fn=fn))
    entries = configuration_entries(rows)
    await record_configuration(writer, ctx, [e for e in entries if len(e["key"]) <= MAX_CONFIGURATION_KEY])
    return entries


def configuration_entries(rows: list[Any]) -> list[dict[str, Any]]:
    """Device-model rows in the neutral configuration shape {key, value, readonly}."""
    entries = []
    for row in rows:
        address = _address(row)
        if row.mutability == WRITE_ONLY or is_secret(address):
            continue
        entries.append({"key": address.key, "value": row.value, "readonly": row.mutability == READ_ONLY})
    return entries


async def record_variable_change(writer: Writer, ctx: StationContext, address: Address, value: str) -> None:
    """A SetVariables the station accepted: the stored copies follow without a new report."""
    if is_secret(address):
        return
    now = utcnow()
    key = _columns(ctx.station_id, address)

    async def fn(conn: AsyncConnection, _events: list[Event]) -> None:
        await conn.execute(
            update(DEVICE_MODEL)
            .where(
                *(DEVICE_MODEL.c[c] == v for c, v in key.items()),
                DEVICE_MODEL.c.mutability.is_distinct_from(WRITE_ONLY),
            )
            .values(value=value, reported_at=now)
        )

    await writer.submit(Unit(fn=fn))
    if len(address.key) <= MAX_CONFIGURATION_KEY:
        await record_configuration_change(writer, ctx, address.key, value)


async def read_only(engine: AsyncEngine, ctx: StationContext) -> set[Address]:
    """The attributes the station's report says cannot be changed."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(DEVICE_MODEL).where(
                DEVICE_MODEL.c.station_id == ctx.station_id, DEVICE_MODEL.c.mutability == READ_ONLY
            )
        )
        return {_address(row) for row in rows}
