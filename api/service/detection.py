"""Detection wired into the worker: which durable events open incidents, and which scheduled
jobs find what no event announces (silence, recovery). See offline.py, faults.py and
failed_sessions.py for each rule."""

from __future__ import annotations

import functools

from sqlalchemy.ext.asyncio import AsyncEngine

from api.service import failed_sessions, faults, offline
from api.worker.processor import HandlerRegistry
from api.worker.runner import ScheduledJob
from api.worker.settings import WorkerSettings
from schema.bus import Bus
from schema.events import ChargingRequestFailed, StationReported, StationStatusChanged, TransactionEnded
from schema.incident_models import IncidentSeverity


def register_handlers(registry: HandlerRegistry, settings: WorkerSettings) -> None:
    n = settings.failed_sessions_threshold
    registry.register(StationStatusChanged, faults.open_on_fault)
    registry.register(StationReported, faults.open_on_report)
    registry.register(TransactionEnded, functools.partial(failed_sessions.on_session_ended, threshold=n))
    registry.register(ChargingRequestFailed, functools.partial(failed_sessions.on_start_failed, threshold=n))


def scheduled(engine: AsyncEngine, settings: WorkerSettings, bus: Bus | None) -> list[ScheduledJob]:
    """Both run every `detection_interval_s`: that interval and the grace are the latency."""
    return [
        ScheduledJob(
            "detect-offline",
            settings.detection_interval_s,
            functools.partial(
                offline.detect_offline,
                engine,
                bus,
                offline_grace_s=settings.offline_grace_s,
                reconnect_grace_s=settings.reconnect_grace_s,
                severity=IncidentSeverity(settings.offline_severity),
            ),
        ),
        ScheduledJob(
            "reconcile-faults",
            settings.detection_interval_s,
            functools.partial(faults.reconcile_faults, engine, bus),
        ),
    ]
