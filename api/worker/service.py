"""Which durable-work parts a process runs, from its roles and the bus.

| BUS_URL  | a gateway process                | a worker process (`chargenet worker`)           |
| -------- | -------------------------------- | ----------------------------------------------- |
| redis:// | relay: outbox → Redis Stream     | stream consumer (group) + scheduled jobs        |
| memory   | nothing (the worker relays)      | relay → handlers in this process + scheduled jobs |

`chargenet serve` has both roles. Scheduled jobs run once per interval across replicas (a
Redis lock) or, with the in-process bus, simply in this process.
"""

from __future__ import annotations

import functools
import logging

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from api.billing import hold_top_up, pay_as_you_go
from api.billing import jobs as billing
from api.billing.payment_types import PaymentGateway
from api.billing.stripe_gateway import build_gateway
from api.configuration import jobs as configuration
from api.control import requests
from api.firmware import progress as firmware_campaigns
from api.invoicing import receipts
from api.localauth import jobs as local_lists
from api.reservations import jobs as reservations
from api.service import detection, health_job, inspections, work_order_jobs
from api.service.health_settings import HealthSettings
from api.sponsorships import reports as sponsor_reports
from api.worker import jobs, overlong
from api.worker.processor import HandlerRegistry, Processor
from api.worker.relay import DurableChannel, InProcessChannel, OutboxRelay, RedisStreamChannel
from api.worker.runner import JobLock, LocalJobLock, RedisJobLock, ScheduledJob, Scheduler, StreamWorker
from api.worker.settings import WorkerSettings
from schema.bus import Bus
from schema.settings import Settings

log = logging.getLogger(__name__)

PURGE_PROCESSED_INTERVAL_S = 3_600.0
# Receipts the SessionCharged handler did not issue (sessions charged before receipts existed,
# a handler that failed): an hour's delay is fine for a document nobody waits for.
PENDING_RECEIPTS_INTERVAL_S = 3_600.0
# Partitions exist three months ahead; a daily check keeps that margin.
METER_PARTITIONS_INTERVAL_S = 86_400.0


def uses_redis(bus_url: str) -> bool:
    return bus_url.startswith(("redis://", "rediss://", "unix://"))


def scheduled_jobs(
    engine: AsyncEngine,
    settings: WorkerSettings,
    bus: Bus | None = None,
    payments: PaymentGateway | None = None,
) -> list[ScheduledJob]:
    return [
        *_settle_job(engine, payments),
        *_top_up_job(engine, settings, bus, payments),
        *_overlong_job(engine, settings, bus),
        *_configuration_job(engine, settings, bus),
        *_local_list_job(engine, settings, bus),
        *_firmware_campaign_job(engine, settings, bus),
        _health_job(engine, bus),
        *_work_order_jobs(engine, bus),
        # Offline stations and recovered faults (incidents are opened without a bus too).
        *detection.scheduled(engine, settings, bus),
        ScheduledJob(
            "stuck-sessions",
            settings.stuck_check_interval_s,
            functools.partial(
                jobs.check_stuck_sessions,
                engine,
                offline_grace_s=settings.stuck_offline_grace_s,
                meter_silence_s=settings.stuck_meter_silence_s,
            ),
        ),
        ScheduledJob(
            "unstarted-requests",
            settings.stuck_check_interval_s / 5,
            functools.partial(requests.fail_unstarted, engine, timeout_s=settings.remote_start_timeout_s),
        ),
        ScheduledJob(
            "expire-reservations",
            reservations.EXPIRY_INTERVAL_S,
            functools.partial(reservations.expire_reservations, engine),
        ),
        ScheduledJob(
            "stripe-inbox",
            billing.INBOX_INTERVAL_S,
            functools.partial(billing.process_stripe_inbox, engine),
        ),
        ScheduledJob(
            "purge-stripe-inbox",
            PURGE_PROCESSED_INTERVAL_S,
            functools.partial(billing.purge_stripe_inbox, engine),
        ),
        ScheduledJob(
            "meter-partitions",
            METER_PARTITIONS_INTERVAL_S,
            functools.partial(
                jobs.maintain_meter_partitions, engine, keep_months=settings.meter_retention_months
            ),
        ),
        ScheduledJob(
            "sponsor-statements",
            sponsor_reports.STATEMENTS_INTERVAL_S,
            functools.partial(sponsor_reports.issue_last_months_statements, engine),
        ),
        ScheduledJob(
            "pending-receipts",
            PENDING_RECEIPTS_INTERVAL_S,
            functools.partial(receipts.issue_pending, engine),
        ),
        ScheduledJob(
            "purge-processed-events",
            PURGE_PROCESSED_INTERVAL_S,
            functools.partial(
                jobs.purge_processed_events, engine, retention_days=settings.processed_retention_days
            ),
        ),
    ]


def _work_order_jobs(engine: AsyncEngine, bus: Bus | None) -> list[ScheduledJob]:
    """Work orders for new incidents and due inspections, and SLA breaches (announced live
    when there is a bus)."""
    return [
        ScheduledJob(
            "work-orders-from-incidents",
            work_order_jobs.AUTO_CREATE_INTERVAL_S,
            functools.partial(work_order_jobs.create_for_incidents, engine, bus),
        ),
        ScheduledJob(
            "work-order-sla",
            work_order_jobs.SLA_CHECK_INTERVAL_S,
            functools.partial(work_order_jobs.mark_sla_breaches, engine, bus),
        ),
        ScheduledJob(
            "inspections-due",
            inspections.DUE_CHECK_INTERVAL_S,
            functools.partial(inspections.create_due_orders, engine, bus),
        ),
    ]


def _overlong_job(engine: AsyncEngine, settings: WorkerSettings, bus: Bus | None) -> list[ScheduledJob]:
    if bus is None or settings.max_session_hours <= 0:
        return []
    return [
        ScheduledJob(
            "overlong-sessions",
            settings.stuck_check_interval_s,
            functools.partial(
                overlong.stop_overlong_sessions,
                engine,
                bus,
                max_age_s=settings.max_session_hours * 3600,
                command_timeout_s=settings.command_timeout_s,
            ),
        )
    ]


def _configuration_job(engine: AsyncEngine, settings: WorkerSettings, bus: Bus | None) -> list[ScheduledJob]:
    """Stale configurations of stations a template governs are re-read (needs the bus)."""
    if bus is None:
        return []
    return [
        ScheduledJob(
            "reread-stale-configurations",
            configuration.REREAD_INTERVAL_S,
            functools.partial(
                configuration.reread_stale_configurations,
                engine,
                bus,
                command_timeout_s=settings.command_timeout_s,
            ),
        )
    ]


def _local_list_job(engine: AsyncEngine, settings: WorkerSettings, bus: Bus | None) -> list[ScheduledJob]:
    """Managed stations' local authorization lists follow their organisation's tokens."""
    if bus is None:
        return []
    return [
        ScheduledJob(
            "local-auth-lists",
            local_lists.SYNC_INTERVAL_S,
            functools.partial(
                local_lists.sync_due_lists, engine, bus, command_timeout_s=settings.command_timeout_s
            ),
        )
    ]


def _firmware_campaign_job(
    engine: AsyncEngine, settings: WorkerSettings, bus: Bus | None
) -> list[ScheduledJob]:
    """Firmware campaigns send commands, so they run where the bus is."""
    if bus is None:
        return []
    return [
        ScheduledJob(
            "firmware-campaigns",
            firmware_campaigns.PROGRESS_INTERVAL_S,
            functools.partial(
                firmware_campaigns.advance_campaigns,
                engine,
                bus,
                command_timeout_s=settings.command_timeout_s,
            ),
        )
    ]


def _health_job(engine: AsyncEngine, bus: Bus | None) -> ScheduledJob:
    """Station health scores and their early-warning incidents (announced live when there is a bus)."""
    health = HealthSettings()
    return ScheduledJob(
        "station-health",
        health.interval_s,
        functools.partial(health_job.refresh_health, engine, health.policy(), bus=bus),
    )


def _settle_job(engine: AsyncEngine, payments: PaymentGateway | None) -> list[ScheduledJob]:
    """Ended sessions' card payments are captured (or their debt retried) by the worker."""
    if payments is None:
        return []
    return [
        ScheduledJob(
            "settle-payments",
            pay_as_you_go.SETTLE_INTERVAL_S,
            functools.partial(pay_as_you_go.settle_due, engine, payments),
        )
    ]


def _top_up_job(
    engine: AsyncEngine, settings: WorkerSettings, bus: Bus | None, payments: PaymentGateway | None
) -> list[ScheduledJob]:
    """Running sessions' holds follow their cost (stopping one needs the bus)."""
    if payments is None or bus is None:
        return []
    return [
        ScheduledJob(
            "top-up-holds",
            hold_top_up.TOP_UP_INTERVAL_S,
            functools.partial(
                hold_top_up.top_up_holds, engine, payments, bus, command_timeout_s=settings.command_timeout_s
            ),
        )
    ]


class DurableWork:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: WorkerSettings,
        *,
        bus_url: str,
        gateway: bool,
        worker: bool,
        registry: HandlerRegistry | None = None,
        redis: Redis | None = None,
        bus: Bus | None = None,
        payments: PaymentGateway | None = None,
    ) -> None:
        self.settings = settings
        # Stripe as the environment configures it (disabled without a key), for settling payments.
        self._own_payments = worker and payments is None
        self.payments = payments or (build_gateway(Settings()) if worker else None)
        self.processor = Processor(
            engine, registry or jobs.default_registry(settings), consumer=settings.group, bus=bus
        )
        self.redis: Redis | None = None
        self._own_redis = False
        self.relay: OutboxRelay | None = None
        self.consumer: StreamWorker | None = None
        self.scheduler: Scheduler | None = None
        channel: DurableChannel | None = None
        lock: JobLock = LocalJobLock()
        if uses_redis(bus_url):
            if gateway or worker:
                self._own_redis = redis is None
                self.redis = redis or Redis.from_url(bus_url)
            if gateway:
                channel = RedisStreamChannel(
                    self.redis,  # type: ignore[arg-type]
                    stream=settings.durable_stream,
                    maxlen=settings.stream_maxlen,
                )
            if worker:
                assert self.redis is not None
                self.consumer = StreamWorker(
                    self.redis,
                    self.processor,
                    stream=settings.durable_stream,
                    group=settings.group,
                    consumer=settings.consumer,
                    claim_idle_s=settings.claim_idle_s,
                    max_attempts=settings.max_attempts,
                )
                lock = RedisJobLock(self.redis, prefix=settings.lock_prefix)
        elif worker:
            channel = InProcessChannel(self.processor, max_attempts=settings.max_attempts)
        if channel is not None:
            self.relay = OutboxRelay(
                engine,
                channel,
                poll_s=settings.outbox_poll_s,
                retention_s=settings.outbox_retention_s,
            )
        if worker:
            self.scheduler = Scheduler(scheduled_jobs(engine, settings, bus, self.payments), lock)

    @property
    def parts(self) -> list[str]:
        return [
            name
            for name, part in (
                ("relay", self.relay),
                ("consumer", self.consumer),
                ("scheduler", self.scheduler),
            )
            if part is not None
        ]

    @property
    def alive(self) -> bool:
        """Every loop this process started is still running (none died of an uncaught error)."""
        return all(part.running for part in (self.relay, self.consumer, self.scheduler) if part is not None)

    def nudge(self) -> None:
        """The writer committed outbox rows: relay them now rather than at the next poll."""
        if self.relay is not None:
            self.relay.nudge()

    async def start(self) -> None:
        for part in (self.relay, self.consumer, self.scheduler):
            if part is not None:
                part.start()
        if self.parts:
            log.info("durable work: %s", ", ".join(self.parts))

    async def stop(self) -> None:
        for part in (self.scheduler, self.consumer, self.relay):
            if part is not None:
                await part.stop()
        if self.redis is not None and self._own_redis:
            await self.redis.aclose()
        if self.payments is not None and self._own_payments:
            await self.payments.aclose()
