"""ChargeNet's tables. Money is integer minor units, energy integer Wh, time aware UTC.

Hot paths (the gateway's batched writes) use these tables through SQLAlchemy Core
(`Model.__table__`); the API reads them through SQLModel sessions.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, PrimaryKeyConstraint, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from schema.columns import bigint_pk, utc_column
from schema.timeutil import UTCDateTime, utcnow


class Organization(SQLModel, table=True):
    __tablename__ = "organization"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    slug: str = Field(max_length=80, unique=True)
    currency: str = Field(default="EUR", max_length=3)
    # The seller on receipts and invoices (billing documents copy them when issued); NULL until
    # the organisation fills them in, when documents show `name` only.
    legal_name: str | None = Field(default=None, max_length=200)
    billing_address: str | None = Field(
        default=None, max_length=500, description="Lines separated by newlines"
    )
    vat_id: str | None = Field(default=None, max_length=40)
    billing_email: str | None = Field(default=None, max_length=254)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class Location(SQLModel, table=True):
    __tablename__ = "location"

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    name: str = Field(max_length=200)
    address: str = Field(default="", max_length=300)
    city: str = Field(default="", max_length=120)
    country: str = Field(default="", max_length=2)
    latitude: float
    longitude: float
    time_zone: str = Field(max_length=64, description="IANA zone for local-time rules")
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class ChargingStation(SQLModel, table=True):
    __tablename__ = "charging_station"
    __table_args__ = (
        # Fault reconciliation reads the (few) Faulted stations every few seconds.
        Index(
            "ix_charging_station_faulted",
            "status",
            postgresql_where=text("status = 'Faulted'"),
            sqlite_where=text("status = 'Faulted'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int | None = Field(default=None, foreign_key="organization.id", index=True)
    location_id: int | None = Field(default=None, foreign_key="location.id", index=True)
    charge_point_id: str = Field(max_length=64, unique=True)
    vendor: str | None = Field(default=None, max_length=50)
    model: str | None = Field(default=None, max_length=50)
    serial_number: str | None = Field(default=None, max_length=50)
    firmware_version: str | None = Field(default=None, max_length=50)
    ocpp_version: str | None = Field(default=None, max_length=16)
    registration_status: str = Field(default="Accepted", max_length=16)
    # Argon2 hash of the station's Basic-auth password (OCPP security profile 1); never plain.
    password_hash: str | None = Field(default=None, max_length=200)
    # A rotated password the station was told to use: both are accepted until it first
    # connects with the new one, so a station that missed the change is not locked out.
    pending_password_hash: str | None = Field(default=None, max_length=200)
    password_changed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # OCPP security profile the station must connect with: 0 none (development), 1 Basic auth,
    # 2 TLS + Basic auth, 3 TLS with a client certificate whose CN is the charge point id.
    security_profile: int = Field(default=0)
    online: bool = Field(default=False, index=True)
    last_seen_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    last_boot_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    heartbeat_interval_s: int = Field(default=300)
    # Connector 0 in OCPP: the status of the station as a whole.
    status: str = Field(default="Unknown", max_length=20)
    error_code: str = Field(default="NoError", max_length=30)
    firmware_status: str | None = Field(default=None, max_length=30)
    firmware_status_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    diagnostics_status: str | None = Field(default=None, max_length=30)
    diagnostics_status_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # OCPP 1.6 SupportedFeatureProfiles as the station reported it (comma-separated); None until
    # read. Commands of a profile the station lacks are refused without being sent.
    feature_profiles: str | None = Field(default=None, max_length=200)
    # When its configuration was last read, and on which firmware: a new firmware re-reads it.
    configuration_read_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    configuration_firmware: str | None = Field(default=None, max_length=50)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class Connector(SQLModel, table=True):
    __tablename__ = "connector"
    __table_args__ = (UniqueConstraint("station_id", "connector_id", name="uq_connector_station_num"),)

    id: int | None = Field(default=None, primary_key=True)
    station_id: int = Field(foreign_key="charging_station.id", index=True)
    connector_id: int = Field(description="OCPP connector number, 1-based")
    connector_type: str = Field(default="Type2", max_length=16)
    current_type: str = Field(default="AC", max_length=2)
    max_power_w: int = Field(default=22_000)
    status: str = Field(default="Unknown", max_length=20, index=True)
    error_code: str = Field(default="NoError", max_length=30)
    vendor_error_code: str | None = Field(default=None, max_length=50)
    info: str | None = Field(default=None, max_length=50)
    status_since: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class IdToken(SQLModel, table=True):
    __tablename__ = "id_token"

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(max_length=36, unique=True)
    token_type: str = Field(default="RFID", max_length=20)
    status: str = Field(default="Accepted", max_length=20)
    organization_id: int | None = Field(default=None, foreign_key="organization.id", index=True)
    parent_token: str | None = Field(default=None, max_length=36)
    # The driver the card or app token belongs to; NULL for fleet/anonymous cards.
    user_id: int | None = Field(default=None, foreign_key="user_account.id", index=True)
    label: str | None = Field(default=None, max_length=60)
    expires_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    # Set on every insert and update (Core and ORM alike): stations' local authorization lists
    # are brought up to date when a token of their organisation changed after their last sync.
    updated_at: datetime | None = Field(
        default_factory=utcnow,
        sa_column=Column(UTCDateTime(), nullable=True, default=utcnow, onupdate=utcnow),
    )


class Transaction(SQLModel, table=True):
    """A charging session on one connector. Its integer id is the OCPP 1.6 transactionId."""

    __tablename__ = "charging_transaction"
    __table_args__ = (
        # A repeated StartTransaction (same station, connector and start time) maps here.
        UniqueConstraint("station_id", "start_key", name="uq_transaction_start_key"),
        Index("ix_transaction_station_started", "station_id", "started_at"),
        # Fleet-wide reads of a period's sessions (the health job's failed-session ratio).
        Index("ix_transaction_started", "started_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    station_id: int = Field(foreign_key="charging_station.id")
    connector_id: int
    id_tag: str | None = Field(default=None, max_length=36)
    # The driver whose token started the session, resolved from id_tag at start.
    user_id: int | None = Field(default=None, foreign_key="user_account.id", index=True)
    start_key: str = Field(max_length=120)
    state: str = Field(default="Active", max_length=16, index=True)
    started_at: datetime = Field(sa_column=utc_column())
    stopped_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    meter_start_wh: int = 0
    meter_stop_wh: int | None = None
    energy_wh: int = 0
    power_w: int | None = None
    soc_percent: int | None = None
    last_sample_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    stop_reason: str | None = Field(default=None, max_length=30)
    reservation_id: int | None = None
    # The charger stopped a transaction whose start ChargeNet never saw (OCPP 1.6 offline queue).
    start_missing: bool = False
    # OCPP 2.0.1: the id the station chose (TransactionEvent transactionId); the start key is
    # derived from it, so the session is found by (station, this id). NULL for 1.6 sessions.
    station_transaction_id: str | None = Field(default=None, max_length=36)
    # The prices in force when the session started, frozen for it (set by the worker from the
    # durable start event, as of `started_at`; NULL: no tariff applied).
    tariff_version_id: int | None = Field(default=None, foreign_key="tariff_version.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class MeterSample(SQLModel, table=True):
    """One sampled value. The primary key is the fact itself (station, connector, time,
    measurand, phase, location, context): a MeterValues a charger resends after a lost reply
    (OCPP 1.6 §4.8, a gateway dying between commit and CALLRESULT) is stored once. Absent
    phase/location/context are '' rather than NULL so the key compares them."""

    __tablename__ = "meter_sample"
    __table_args__ = (
        PrimaryKeyConstraint(
            "station_id",
            "connector_id",
            "sampled_at",
            "measurand",
            "phase",
            "location",
            "context",
            name="pk_meter_sample",
        ),
        Index("ix_meter_sample_tx_time", "transaction_id", "sampled_at"),
        Index("ix_meter_sample_station_time", "station_id", "sampled_at"),
    )

    station_id: int = Field(foreign_key="charging_station.id")
    connector_id: int
    transaction_id: int | None = Field(default=None, foreign_key="charging_transaction.id")
    sampled_at: datetime = Field(sa_column=utc_column())
    measurand: str = Field(default="Energy.Active.Import.Register", max_length=40)
    phase: str = Field(default="", max_length=8)
    location: str = Field(default="", max_length=8)
    context: str = Field(default="", max_length=24)
    unit: str | None = Field(default=None, max_length=12)
    value: float


# A status change that reports a fault, as SQL (the partial index's predicate and the queries
# that must match it spell it the same way; a literal, so PostgreSQL can prove the match).
FAULT_STATUS_SQL = "status = 'Faulted' OR error_code <> 'NoError'"


class ConnectorStatusEvent(SQLModel, table=True):
    """Every status change with the time it happened: uptime and utilization are computed here."""

    __tablename__ = "connector_status_event"
    __table_args__ = (
        Index("ix_status_event_station_conn_time", "station_id", "connector_id", "received_at"),
        # The health job counts a week of faults across the fleet; faults are a sliver of all
        # status changes, so this stays small and costs the gateway's writes next to nothing.
        Index(
            "ix_status_event_fault_time",
            "received_at",
            postgresql_where=text(FAULT_STATUS_SQL),
            sqlite_where=text(FAULT_STATUS_SQL),
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=bigint_pk(),
    )
    station_id: int = Field(foreign_key="charging_station.id")
    connector_id: int = Field(description="0 = the station as a whole")
    status: str = Field(max_length=20)
    error_code: str = Field(default="NoError", max_length=30)
    vendor_error_code: str | None = Field(default=None, max_length=50)
    info: str | None = Field(default=None, max_length=50)
    reported_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    received_at: datetime = Field(sa_column=utc_column())


class OcppMessage(SQLModel, table=True):
    """The raw OCPP log, kept for `message_log_retention_days` to debug chargers."""

    __tablename__ = "ocpp_message"
    __table_args__ = (
        # The health job counts reboots from the log; boots are a sliver of all frames, so a
        # partial index finds them without scanning the window's meter values.
        Index(
            "ix_ocpp_message_boot",
            "charge_point_id",
            "logged_at",
            postgresql_where=text("action = 'BootNotification'"),
            sqlite_where=text("action = 'BootNotification'"),
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=bigint_pk(),
    )
    charge_point_id: str = Field(max_length=64, index=True)
    direction: str = Field(max_length=3)
    message_type: int
    message_id: str = Field(max_length=64)
    action: str | None = Field(default=None, max_length=50)
    payload: str = Field(sa_column=Column(Text(), nullable=False))
    logged_at: datetime = Field(sa_column=utc_column(index=True))


# Account tables live in their own module; importing it registers them on the same metadata.
from schema import account_models as _account_models  # noqa: E402, F401

# Firmware campaigns, registered the same way.
from schema import campaign_models as _campaign_models  # noqa: E402, F401

# Durable work (outbox, processed events, worker job results), registered the same way.
from schema import charge_models as _charge_models  # noqa: E402, F401
from schema import control_models as _control_models  # noqa: E402, F401

# OCPP 2.0.1 device models, registered the same way.
from schema import detection_models as _detection_models  # noqa: E402, F401
from schema import device_models as _device_models  # noqa: E402, F401
from schema import document_models as _document_models  # noqa: E402, F401
from schema import fault_rule_models as _fault_rule_models  # noqa: E402, F401
from schema import health_models as _health_models  # noqa: E402, F401
from schema import incident_models as _incident_models  # noqa: E402, F401
from schema import local_auth_models as _local_auth_models  # noqa: E402, F401
from schema import maintenance_models as _maintenance_models  # noqa: E402, F401
from schema import payment_models as _payment_models  # noqa: E402, F401
from schema import plan_models as _plan_models  # noqa: E402, F401
from schema import request_models as _request_models  # noqa: E402, F401
from schema import sponsorship_models as _sponsorship_models  # noqa: E402, F401
from schema import tariff_models as _tariff_models  # noqa: E402, F401
from schema import template_models as _template_models  # noqa: E402, F401
from schema import work_models as _work_models  # noqa: E402, F401
