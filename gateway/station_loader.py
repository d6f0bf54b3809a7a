"""Handshake reads in batches: every station connecting at the same moment is read together.

After a gateway restart thousands of chargers reconnect within seconds. Reading each one's
station, connectors and open sessions on its own pooled connection cost about ten database
round trips per handshake (checkout ping, BEGIN, four SELECTs, ROLLBACK, twice) and churned
the pool's overflow connections; the gateway spent most of its CPU in the driver. Here the
handshakes queued while one batch runs share the next: three SELECTs for all of them, on one
connection the loader keeps, so the cost per handshake falls as the storm grows. A lone
handshake is read at once — nothing waits for company.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, BigInteger, ColumnElement, String, any_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.held_connection import HeldConnection
from gateway.state import ActiveTransaction, ConnectorView, StationContext
from gateway.tables import CONNECTOR, STATION, TRANSACTION
from schema.enums import TransactionState

# Stations read per batch: a storm's queue is read in a few statements, while one statement
# stays small enough that the handshakes behind it are not held up.
MAX_BATCH = 500


@dataclass(frozen=True, slots=True)
class StationRecord:
    """What the handshake decides on: identity, registration and the charger's credentials."""

    station_id: int
    charge_point_id: str
    location_id: int | None
    registration_status: str
    password_hash: str | None
    heartbeat_interval_s: int
    pending_password_hash: str | None = None
    security_profile: int = 0


@dataclass(slots=True)
class LoadedStation:
    record: StationRecord
    context: StationContext


def _among(
    column: Any, key: str, values: Sequence[object], dialect: str, item_type: Any
) -> ColumnElement[bool]:
    """`column IN values` as one cacheable statement: PostgreSQL takes an array parameter,
    so the driver prepares it once instead of once per batch size."""
    if dialect == "postgresql":
        return column == any_(bindparam(key, list(values), type_=ARRAY(item_type)))  # type: ignore[no-any-return]
    return column.in_(bindparam(key, list(values), expanding=True))  # type: ignore[no-any-return]


async def read_stations(conn: AsyncConnection, charge_point_ids: Sequence[str]) -> dict[str, LoadedStation]:
    """Station rows, connectors and active sessions for the given ids (absent ids are left out)."""
    dialect = conn.dialect.name
    loaded_at = time.monotonic()
    found: dict[str, LoadedStation] = {}
    by_id: dict[int, StationContext] = {}
    for row in await conn.execute(
        select(
            STATION.c.id,
            STATION.c.charge_point_id,
            STATION.c.location_id,
            STATION.c.registration_status,
            STATION.c.password_hash,
            STATION.c.heartbeat_interval_s,
            STATION.c.pending_password_hash,
            STATION.c.security_profile,
            STATION.c.status,
            STATION.c.error_code,
            STATION.c.firmware_version,
            STATION.c.feature_profiles,
            STATION.c.configuration_read_at,
            STATION.c.configuration_firmware,
        ).where(_among(STATION.c.charge_point_id, "cpids", charge_point_ids, dialect, String))
    ):
        record = StationRecord(
            row.id,
            row.charge_point_id,
            row.location_id,
            row.registration_status,
            row.password_hash,
            row.heartbeat_interval_s,
            row.pending_password_hash,
            row.security_profile,
        )
        ctx = StationContext(
            station_id=row.id,
            charge_point_id=row.charge_point_id,
            location_id=row.location_id,
            registration_status=row.registration_status,
            heartbeat_interval_s=row.heartbeat_interval_s,
            status=row.status,
            error_code=row.error_code,
            loaded_at=loaded_at,
            firmware_version=row.firmware_version,
            feature_profiles=parse_profiles(row.feature_profiles),
            configuration_read_at=row.configuration_read_at,
            configuration_firmware=row.configuration_firmware,
        )
        found[row.charge_point_id] = LoadedStation(record, ctx)
        by_id[row.id] = ctx
    if not by_id:
        return found
    ids = list(by_id)
    for row in await conn.execute(
        select(
            CONNECTOR.c.station_id,
            CONNECTOR.c.connector_id,
            CONNECTOR.c.status,
            CONNECTOR.c.error_code,
            CONNECTOR.c.status_since,
        ).where(_among(CONNECTOR.c.station_id, "sids", ids, dialect, BigInteger))
    ):
        by_id[row.station_id].connectors[row.connector_id] = ConnectorView(
            row.connector_id, row.status, row.error_code, row.status_since
        )
    for row in await conn.execute(
        select(TRANSACTION).where(
            _among(TRANSACTION.c.station_id, "sids", ids, dialect, BigInteger),
            TRANSACTION.c.state == TransactionState.ACTIVE.value,
        )
    ):
        by_id[row.station_id].transactions[row.id] = ActiveTransaction(
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
    return found


def parse_profiles(text: str | None) -> frozenset[str] | None:
    """SupportedFeatureProfiles as stored ("Core,SmartCharging"); None when never read."""
    if text is None:
        return None
    return frozenset(p.strip() for p in text.split(",") if p.strip())


class StationLoader:
    """`load(charge_point_id)` for handshakes; one batch in flight, the next one queuing."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = MAX_BATCH) -> None:
        self._max_batch = max_batch
        self._waiting: dict[str, list[asyncio.Future[LoadedStation | None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._conn = HeldConnection(engine, "station loader")
        self.batches = 0

    async def load(self, charge_point_id: str) -> LoadedStation | None:
        future: asyncio.Future[LoadedStation | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(charge_point_id, []).append(future)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="chargenet-station-loader")
        return await future

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self._conn.drop()

    async def _run(self) -> None:
        while self._waiting:
            keys = list(self._waiting)[: self._max_batch]
            batch = {key: self._waiting.pop(key) for key in keys}
            try:
                found = await self._read(keys)
            except asyncio.CancelledError:
                for futures in batch.values():
                    for future in futures:
                        future.cancel()
                raise
            except Exception as exc:
                for futures in batch.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                continue
            self.batches += 1
            for key, futures in batch.items():
                loaded = found.get(key)
                for n, future in enumerate(futures):
                    if not future.done():
                        # Two sockets of one station racing must not share a mutable live view.
                        future.set_result(loaded if n == 0 or loaded is None else copy.deepcopy(loaded))

    async def _read(self, keys: list[str]) -> dict[str, LoadedStation]:
        conn = await self._conn.get()
        try:
            async with conn.begin():
                return await read_stations(conn, keys)
        except BaseException:
            await self._conn.drop()
            raise
