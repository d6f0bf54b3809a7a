"""The worker's part in configuration drift: re-reading configurations too old to trust.

Drift is only as fresh as the stored configuration, and a station that stays connected for
weeks is never re-read by the gateway (it reads after a boot). Every REREAD_INTERVAL_S the
worker asks online stations that a template governs, and whose copy is stale, for their whole
configuration (1.6 GetConfiguration, 2.0.1 a fresh GetBaseReport — the gateway stores either),
then compares again. A station left drifted is announced live on its stationEvents stream
(StationReported action "ConfigurationDrifted", with the counts) and logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.configuration import repository, service
from api.configuration.drift import STALE_AFTER, DriftStatus, KeyState
from schema.bus import Bus
from schema.commands import GetConfiguration
from schema.db import session_factory
from schema.errors import BusUnavailable, ChargeNetError
from schema.events import StationReported
from schema.models import ChargingStation
from schema.template_models import ConfigurationTemplate
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

# Hourly: staleness is measured in days, and a run is cheap when nothing is stale.
REREAD_INTERVAL_S = 3_600.0
# Reads per run: a full configuration is one to a few frames per station; a backlog (templates
# just created for a large fleet) drains over a few runs instead of one burst.
MAX_REREADS_PER_RUN = 50
DRIFTED_ACTION = "ConfigurationDrifted"
STATION = ChargingStation.__table__  # type: ignore[attr-defined]
TEMPLATE = ConfigurationTemplate.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class RereadResult:
    read: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    drifted: list[int] = field(default_factory=list)


async def _stale_governed(engine: AsyncEngine, now: datetime) -> list[int]:
    """Online stations of a model some template of their organisation names, stale first."""
    has_template = exists().where(
        and_(
            TEMPLATE.c.organization_id == STATION.c.organization_id,
            TEMPLATE.c.vendor == STATION.c.vendor,
            TEMPLATE.c.model == STATION.c.model,
        )
    )
    stmt = (
        select(STATION.c.id)
        .where(
            STATION.c.online.is_(True),
            or_(
                STATION.c.configuration_read_at.is_(None), STATION.c.configuration_read_at < now - STALE_AFTER
            ),
            has_template,
        )
        .order_by(STATION.c.configuration_read_at.is_not(None), STATION.c.configuration_read_at, STATION.c.id)
        .limit(MAX_REREADS_PER_RUN)
    )
    async with engine.connect() as conn:
        return [int(r.id) for r in await conn.execute(stmt)]


async def reread_stale_configurations(
    engine: AsyncEngine, bus: Bus, *, command_timeout_s: float, now: datetime | None = None
) -> RereadResult:
    now = now or utcnow()
    ids = await _stale_governed(engine, now)
    if not ids:
        return RereadResult()
    async with session_factory(engine)() as s:
        stations = {st.id: st for st in await repository.stations(s, ids)}
    result = RereadResult()
    for station_id in ids:
        station = stations[station_id]
        try:
            await bus.request(station.charge_point_id, GetConfiguration(), timeout=command_timeout_s)
        except ChargeNetError as exc:  # offline meanwhile, timed out, refused: the next run tries again
            log.info("configuration re-read of %s failed: %s", station.charge_point_id, exc)
            result.failed.append(station_id)
            continue
        result.read.append(station_id)
    if not result.read:
        return result
    async with session_factory(engine)() as s:
        # Re-read after the gateway stored the new copies (it answers after storing them).
        governed = await service.govern(s, await repository.stations(s, result.read))
    events = []
    for g in governed:
        d = g.drift
        if g.template is None or d is None or d.status is not DriftStatus.DRIFTED:
            continue
        result.drifted.append(g.station.id)
        events.append(
            StationReported(
                station_id=g.station.id,
                charge_point_id=g.station.charge_point_id,
                location_id=g.station.location_id,
                at=utcnow(),
                action=DRIFTED_ACTION,
                detail={
                    "template_id": g.template.id,
                    "template": g.template.name,
                    "drifted": d.count(KeyState.DRIFTED),
                    "missing": d.count(KeyState.MISSING),
                    "read_only": d.count(KeyState.READ_ONLY),
                },
            )
        )
    if events:
        log.warning(
            "%d of %d re-read stations drift from their configuration template", len(events), len(governed)
        )
        try:
            await bus.publish(events)
        except BusUnavailable:
            log.warning("configuration drift not announced live: the bus is unavailable")
    return result
