"""Firmware campaigns: one firmware image rolled out to a frozen list of an organisation's
stations in waves, and each station's progress through the update.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from schema.columns import bigint_pk, utc_column
from schema.timeutil import utcnow


class CampaignState(StrEnum):
    DRAFT = "draft"  # created, nothing sent; may be started
    RUNNING = "running"  # waves go out as they fall due
    PAUSED = "paused"  # by an operator or by the failure threshold: no new waves
    ABORTED = "aborted"  # stopped for good: stations not yet sent to are skipped
    COMPLETED = "completed"  # every station reached an end state


class CampaignStationState(StrEnum):
    QUEUED = "queued"  # its wave has not been sent yet
    SENT = "sent"  # the station accepted UpdateFirmware; no progress reported since
    REJECTED = "rejected"  # the station refused the command (or lacks firmware management)
    OFFLINE = "offline"  # could not be reached when its wave went out; retried while it runs
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    INSTALLING = "installing"
    INSTALLED = "installed"
    FAILED = "failed"  # a failure status, the wrong version after reboot, or silence
    SKIPPED = "skipped"  # never sent: the campaign was aborted, or the station left the org


class FirmwareCampaign(SQLModel, table=True):
    """What to install, where, how fast, and when to stop by itself."""

    __tablename__ = "firmware_campaign"
    __table_args__ = (Index("ix_firmware_campaign_org_state", "organization_id", "state"),)

    id: int | None = Field(default=None, sa_column=bigint_pk())
    organization_id: int = Field(foreign_key="organization.id")
    name: str = Field(max_length=100)
    # UpdateFirmware.location (1.6 anyURI, 2.0.1 string ≤ 512).
    location: str = Field(max_length=512)
    # The firmwareVersion stations must boot with for the update to count as installed; None:
    # the station's own Installed status is enough.
    target_version: str | None = Field(default=None, max_length=50)
    retries: int | None = Field(default=None)
    retry_interval_s: int | None = Field(default=None)
    wave_size: int
    # Seconds between waves; None: the next wave goes when the previous one has finished.
    wave_interval_s: int | None = Field(default=None)
    # The campaign pauses itself when more than this share (percent) of a wave fails.
    max_failure_percent: int = Field(default=20)
    # A sent station that reports nothing for this long is failed.
    station_timeout_s: int
    state: str = Field(default=CampaignState.DRAFT.value, max_length=16)
    # The last wave sent (0: none yet) and when.
    current_wave: int = Field(default=0)
    wave_count: int = Field(default=0)
    wave_sent_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # Failures in waves up to this one were seen by an operator who resumed: they no longer
    # count against the threshold.
    tolerated_wave: int = Field(default=0)
    paused_reason: str | None = Field(default=None, max_length=200)
    # Who created it.
    created_by_kind: str = Field(max_length=16)
    created_by_user_id: int | None = Field(default=None, foreign_key="user_account.id")
    created_by_api_key_id: int | None = Field(default=None, foreign_key="api_key.id")
    created_by_label: str = Field(max_length=120)
    # Who last started or resumed it: its commands are sent (and logged) on their behalf, and
    # only while they still hold stations:diagnose in the organisation.
    run_by_kind: str | None = Field(default=None, max_length=16)
    run_by_user_id: int | None = Field(default=None, foreign_key="user_account.id")
    run_by_api_key_id: int | None = Field(default=None, foreign_key="api_key.id")
    run_by_label: str | None = Field(default=None, max_length=120)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    started_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class FirmwareCampaignStation(SQLModel, table=True):
    """One station of a campaign: its wave, where its update stands, and the command sent."""

    __tablename__ = "firmware_campaign_station"
    __table_args__ = (
        UniqueConstraint("campaign_id", "station_id", name="uq_firmware_campaign_station"),
        Index("ix_firmware_campaign_station_state", "campaign_id", "state"),
        Index("ix_firmware_campaign_station_wave", "campaign_id", "wave"),
    )

    id: int | None = Field(default=None, sa_column=bigint_pk())
    campaign_id: int = Field(
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"),
            ForeignKey("firmware_campaign.id"),
            nullable=False,
        )
    )
    station_id: int = Field(foreign_key="charging_station.id", index=True)
    wave: int
    state: str = Field(default=CampaignStationState.QUEUED.value, max_length=16)
    attempts: int = Field(default=0)
    sent_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    command_id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), ForeignKey("station_command.id"), nullable=True
        ),
    )
    last_firmware_status: str | None = Field(default=None, max_length=30)
    last_firmware_status_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    message: str | None = Field(default=None, max_length=200)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
