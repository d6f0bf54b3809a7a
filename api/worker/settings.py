"""Settings of the outbox relay, the worker and its jobs (environment or `.env`)."""

from __future__ import annotations

import os
import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DURABLE_STREAM = "chargenet:durable"
WORKER_GROUP = "chargenet-jobs"


def default_consumer_name() -> str:
    """Unique per process, readable in XINFO CONSUMERS: host and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_prefix="")

    # The Redis Stream durable events travel on, and its approximate length bound: far more
    # entries than a worker outage of a day produces, so trimming never drops unread work.
    durable_stream: str = Field(default=DURABLE_STREAM, alias="CHARGENET_DURABLE_STREAM")
    stream_maxlen: int = Field(default=1_000_000, ge=1_000, alias="CHARGENET_DURABLE_STREAM_MAXLEN")
    # The consumer group: every replica of `chargenet worker` joins it; each event is handled
    # by one of them. Also the name under which processed events are recorded.
    group: str = Field(default=WORKER_GROUP, alias="CHARGENET_WORKER_GROUP")
    consumer: str = Field(default_factory=default_consumer_name, alias="CHARGENET_WORKER_NAME")
    # A message pending this long on a consumer is taken over (its worker died or failed it).
    claim_idle_s: float = Field(default=30.0, gt=0, alias="CHARGENET_WORKER_CLAIM_IDLE")
    # Deliveries before a message goes to the dead-letter stream `<durable_stream>:dead`.
    max_attempts: int = Field(default=5, ge=1, alias="CHARGENET_WORKER_MAX_ATTEMPTS")
    # The relay polls this often and is nudged at once by the writer after a commit.
    outbox_poll_s: float = Field(default=0.1, gt=0, alias="CHARGENET_OUTBOX_POLL")
    outbox_retention_s: float = Field(default=86_400.0, ge=0, alias="CHARGENET_OUTBOX_RETENTION")
    # Longer than any redelivery can come late; the ledger is what makes redelivery harmless.
    processed_retention_days: int = Field(default=7, ge=1, alias="CHARGENET_PROCESSED_RETENTION_DAYS")
    stuck_check_interval_s: float = Field(default=300.0, gt=0, alias="CHARGENET_STUCK_CHECK_INTERVAL")
    stuck_offline_grace_s: float = Field(default=7_200.0, gt=0, alias="CHARGENET_STUCK_OFFLINE_GRACE")
    stuck_meter_silence_s: float = Field(default=21_600.0, gt=0, alias="CHARGENET_STUCK_METER_SILENCE")
    # Sessions longer than this are stopped remotely and flagged; 0 (default) leaves them alone.
    max_session_hours: float = Field(default=0.0, ge=0, alias="CHARGENET_MAX_SESSION_HOURS")
    command_timeout_s: float = Field(default=30.0, gt=0, alias="CHARGENET_COMMAND_TIMEOUT")
    # A remote start the station accepted but never turned into a session is failed after this.
    remote_start_timeout_s: float = Field(default=180.0, gt=0, alias="CHARGENET_REMOTE_START_TIMEOUT")
    # Meter samples (PostgreSQL): whole months older than this are dropped; 0 keeps everything.
    # Deleting measurements is the operator's decision, so nothing is dropped by default.
    meter_retention_months: int = Field(default=0, ge=0, alias="CHARGENET_METER_RETENTION_MONTHS")
    # A worker serves no port, so its liveness is a file it touches while its event loop and
    # every one of its loops run (infra/healthcheck.py `worker` checks its age); empty: off.
    alive_file: str = Field(default="/tmp/chargenet-worker.alive", alias="CHARGENET_WORKER_ALIVE_FILE")
    # --- serviceability detection (api/service/detection.py) ---
    # How often the detection jobs look at stations: with the offline grace this bounds how
    # late a silent station is seen (target: within heartbeat x 2 + 10 s).
    detection_interval_s: float = Field(default=3.0, gt=0, alias="CHARGENET_DETECTION_INTERVAL")
    # A station silent for heartbeat x 2 plus this is offline (a late heartbeat is not an outage).
    offline_grace_s: float = Field(default=5.0, ge=0, alias="CHARGENET_OFFLINE_GRACE")
    # A closed socket not reopened within this is offline (a reconnect after a gateway restart
    # or a network blip takes seconds, and is not an outage worth an incident).
    reconnect_grace_s: float = Field(default=30.0, ge=0, alias="CHARGENET_RECONNECT_GRACE")
    offline_severity: str = Field(
        default="high", pattern="^(critical|high|medium|low)$", alias="CHARGENET_OFFLINE_SEVERITY"
    )
    # Consecutive failed sessions on one connector that make it "not charging".
    failed_sessions_threshold: int = Field(default=3, ge=1, alias="CHARGENET_FAILED_SESSIONS_THRESHOLD")
    # Keys of the scheduled jobs' once-per-interval locks in Redis.
    lock_prefix: str = Field(default="chargenet:jobs", alias="CHARGENET_JOB_LOCK_PREFIX")
