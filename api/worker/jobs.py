"""The jobs that exist today.

Event-driven (run once per event by the processor, inside its transaction):
- session bookkeeping on TransactionEnded: one `session_summary` row per transaction, what
  uptime and analytics read; the session's stuck flag, if any, is resolved; and the session is
  priced once (`session_charge`, announced by the durable SessionCharged).
- on SessionCharged, the session's receipt is issued (api/invoicing/receipts.py).
- on TransactionEnded, the session's power at low SoC is kept for the health score
  (api/service/health_sessions.py).
- serviceability detection (api/service/detection.py): fault status changes, 2.0.1 alerts and
  security events open incidents; failed sessions and failed starts count towards "not
  charging", a good session resets the count.
- on TransactionStarted, the reservation the session used is marked used and linked, and the
  tariff version in force at the start is frozen on the session; then the session claims a
  sponsorship that applies (api/sponsorships), settled by the charge step on TransactionEnded.
Scheduled (one replica at a time):
- the stuck-session check: Active sessions whose station has been offline longer than a grace,
  or that got no meter value for too long, are flagged in `stuck_session`;
- the processed-event ledger is purged after its retention.
- active reservations past their expiry are marked expired (api/reservations/jobs.py).
- work orders for unresolved incidents of the severities each organisation names, SLA breaches,
  and work orders for due inspections (api/service/work_order_jobs.py, inspections.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.billing import charges
from api.billing import service as billing
from api.control import requests
from api.invoicing import receipts
from api.reservations import jobs as reservations
from api.service import detection, health_sessions
from api.sponsorships import service as sponsorships
from api.worker import repository as repo
from api.worker.processor import HandlerRegistry
from api.worker.settings import WorkerSettings
from schema import partitions
from schema.events import Event, SessionCharged, TransactionEnded, TransactionStarted
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

# pg_try_advisory_xact_lock key of the stuck-session check ("stuck" in ASCII): a second replica
# whose once-per-interval lock expired mid-run skips instead of checking twice at once.
STUCK_CHECK_LOCK_KEY = 0x737475636B


async def summarize_session(conn: AsyncConnection, event: Event) -> None:
    """Write the session's summary from the stored transaction and its meter samples."""
    assert isinstance(event, TransactionEnded)
    tx = await repo.transaction_row(conn, event.transaction_id)
    if tx is None:
        log.warning("session summary: transaction %d not found", event.transaction_id)
        return
    stats = await repo.sample_stats(conn, event.transaction_id)
    started: datetime = tx["started_at"]
    stopped: datetime | None = tx["stopped_at"]
    duration_s = max(0, round((stopped - started).total_seconds())) if stopped is not None else 0
    inserted = await repo.insert_summary(
        conn,
        {
            "transaction_id": tx["id"],
            "station_id": tx["station_id"],
            "connector_id": tx["connector_id"],
            "user_id": tx["user_id"],
            "started_at": started,
            "stopped_at": stopped,
            "duration_s": duration_s,
            "energy_wh": tx["energy_wh"],
            "max_power_w": stats.max_power_w,
            "sample_count": stats.count,
            "stop_reason": tx["stop_reason"],
            "created_at": utcnow(),
        },
    )
    if not inserted:
        log.info("session summary for transaction %d already exists", event.transaction_id)


async def resolve_stuck_on_end(conn: AsyncConnection, event: Event) -> None:
    assert isinstance(event, TransactionEnded)
    await repo.resolve_stuck(conn, event.transaction_id, utcnow())


def default_registry(settings: WorkerSettings | None = None) -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.register(TransactionEnded, summarize_session)
    registry.register(TransactionEnded, resolve_stuck_on_end)
    registry.register(TransactionEnded, charges.charge_session)
    registry.register(TransactionStarted, reservations.use_reservation_on_start)
    registry.register(TransactionStarted, requests.link_started)
    registry.register(TransactionStarted, billing.freeze_on_start)
    # after the freeze: an energy-capped sponsorship reserves with the session's tariff
    registry.register(TransactionStarted, sponsorships.claim_on_start)
    registry.register(TransactionEnded, requests.close_ended)
    registry.register(TransactionEnded, health_sessions.check_power_on_end)
    registry.register(SessionCharged, receipts.issue_on_charged)
    # Serviceability: faults, security events and failed sessions open incidents.
    detection.register_handlers(registry, settings or WorkerSettings())
    return registry


@dataclass(frozen=True, slots=True)
class StuckCheckResult:
    flagged: int
    resolved: int
    skipped: bool = False


async def check_stuck_sessions(
    engine: AsyncEngine,
    *,
    offline_grace_s: float,
    meter_silence_s: float,
    now: datetime | None = None,
) -> StuckCheckResult:
    """Flag abandoned Active sessions; resolve flags of sessions that have ended meanwhile.

    A session is flagged once (reason `station_offline` wins over `no_meter_values`); it stays
    flagged until the session ends. Each new flag is a durable `SessionFlagged` event.
    """
    now = now or utcnow()
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            got = await conn.execute(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": STUCK_CHECK_LOCK_KEY}
            )
            if not got.scalar():
                return StuckCheckResult(0, 0, skipped=True)
        resolved = await repo.resolve_ended_stuck(conn, now)
        candidates = await repo.stuck_candidates(
            conn,
            offline_before=now - timedelta(seconds=offline_grace_s),
            silent_before=now - timedelta(seconds=meter_silence_s),
        )
        flagged = await repo.flag_stuck(conn, candidates, now)
    if flagged:
        log.warning("flagged %d stuck charging sessions: %s", len(flagged), candidates[:20])
    return StuckCheckResult(len(flagged), resolved)


async def purge_processed_events(engine: AsyncEngine, *, retention_days: int) -> int:
    async with engine.begin() as conn:
        removed = await repo.purge_processed(conn, utcnow() - timedelta(days=retention_days))
    if removed:
        log.info("purged %d processed-event records older than %d days", removed, retention_days)
    return removed


async def maintain_meter_partitions(engine: AsyncEngine, *, keep_months: int) -> None:
    """PostgreSQL: create the coming months' meter-sample partitions, drop expired ones."""
    created = await partitions.ensure_partitions(engine)
    dropped = await partitions.drop_expired(engine, keep_months=keep_months)
    if created or dropped:
        log.info("meter sample partitions: created %s, dropped %s", created or "none", dropped or "none")
