"""What ChargeNet learns from a station after it boots: its configuration and features.

OCPP 1.6 stations differ widely in what they implement. After an Accepted boot the gateway
reads the whole configuration once (again when the firmware changes, or after a day), stores
it, and keeps SupportedFeatureProfiles so that commands of a profile the station lacks are
answered "not supported" at once instead of waiting for the station's CALLERROR.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.state import StationContext
from gateway.station_loader import parse_profiles
from gateway.tables import CONFIGURATION_KEY, STATION
from gateway.writer import Unit, Writer
from schema.events import Event, StationReported
from schema.timeutil import utcnow

# Configuration changes without a reboot are rare and ChargeNet records its own changes; a
# daily re-read catches those made on the station's own display or by another system.
CONFIGURATION_REFRESH = timedelta(days=1)
FEATURE_PROFILES_KEY = "SupportedFeatureProfiles"
# Security whitepaper: write-only keys. A station that reports one anyway does not get its
# secret stored.
WRITE_ONLY_KEYS = frozenset({"AuthorizationKey"})
# OCPP 1.6 CiString500: longer values are cut rather than refused (they are informational).
MAX_VALUE_CHARS = 500


def configuration_is_stale(ctx: StationContext, now: datetime) -> bool:
    if ctx.configuration_read_at is None:
        return True
    if ctx.configuration_firmware != ctx.firmware_version:
        return True
    return now - ctx.configuration_read_at > CONFIGURATION_REFRESH


async def record_configuration(writer: Writer, ctx: StationContext, entries: list[dict[str, Any]]) -> None:
    """Replace the stored configuration with `entries` ({key, value, readonly}) as just read."""
    now = utcnow()
    features = next((e.get("value") for e in entries if e["key"] == FEATURE_PROFILES_KEY), None)
    rows = [
        {
            "station_id": ctx.station_id,
            "key": e["key"],
            "value": None if e.get("value") is None else str(e["value"])[:MAX_VALUE_CHARS],
            "readonly": bool(e.get("readonly")),
            "read_at": now,
        }
        for e in {e["key"]: e for e in entries}.values()
        if e["key"] not in WRITE_ONLY_KEYS
    ]

    async def fn(conn: AsyncConnection, _events: list[Event]) -> None:
        await conn.execute(delete(CONFIGURATION_KEY).where(CONFIGURATION_KEY.c.station_id == ctx.station_id))
        if rows:
            await conn.execute(CONFIGURATION_KEY.insert(), rows)
        await conn.execute(
            update(STATION)
            .where(STATION.c.id == ctx.station_id)
            .values(
                feature_profiles=features,
                configuration_read_at=now,
                configuration_firmware=ctx.firmware_version,
            )
        )

    announce = StationReported(
        station_id=ctx.station_id,
        charge_point_id=ctx.charge_point_id,
        location_id=ctx.location_id,
        at=now,
        action="ConfigurationRead",
        detail={"keys": len(rows), "feature_profiles": features},
    )
    await writer.submit(Unit(fn=fn, events=[announce]))
    ctx.feature_profiles = parse_profiles(features)
    ctx.configuration_read_at = now
    ctx.configuration_firmware = ctx.firmware_version


async def record_configuration_change(writer: Writer, ctx: StationContext, key: str, value: str) -> None:
    """A change the station accepted: the stored copy follows without a re-read."""
    if key in WRITE_ONLY_KEYS:
        return
    now = utcnow()

    async def fn(conn: AsyncConnection, _events: list[Event]) -> None:
        result = await conn.execute(
            update(CONFIGURATION_KEY)
            .where(CONFIGURATION_KEY.c.station_id == ctx.station_id, CONFIGURATION_KEY.c.key == key)
            .values(value=value[:MAX_VALUE_CHARS], read_at=now)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            await conn.execute(
                CONFIGURATION_KEY.insert().values(
                    station_id=ctx.station_id,
                    key=key,
                    value=value[:MAX_VALUE_CHARS],
                    readonly=False,
                    read_at=now,
                )
            )

    await writer.submit(Unit(fn=fn))
