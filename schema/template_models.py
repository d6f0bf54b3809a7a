"""Configuration templates: what an organisation expects a station model's configuration to be.

A template names a station model (vendor and model exactly as the station reports them in its
BootNotification, optionally narrowed to firmware versions starting with a prefix) and lists
configuration keys with their expected values. Drift is computed from the stored configuration
(station_configuration_key), never stored itself, so it can never disagree with what the
station last reported.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from schema.columns import utc_column
from schema.timeutil import utcnow


class ConfigurationTemplate(SQLModel, table=True):
    __tablename__ = "configuration_template"
    __table_args__ = (UniqueConstraint("organization_id", "name", name="uq_configuration_template_org_name"),)

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    name: str = Field(max_length=80)
    # BootNotification chargePointVendor / chargePointModel (1.6 CiString20, 2.0.1 up to 50).
    vendor: str = Field(max_length=50)
    model: str = Field(max_length=50)
    # Only stations whose firmware version starts with this; None matches every firmware.
    firmware_prefix: str | None = Field(default=None, max_length=50)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    created_by: str = Field(max_length=120)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    updated_by: str = Field(max_length=120)


class ConfigurationTemplateEntry(SQLModel, table=True):
    """One expected key. Keys are unique per template without regard to case (chargers match
    keys so); the service enforces it, the primary key holds the spelling given."""

    __tablename__ = "configuration_template_entry"

    template_id: int = Field(foreign_key="configuration_template.id", primary_key=True)
    # station_configuration_key.key: 1.6 CiString50, 2.0.1 keys as the gateway mirrors them.
    key: str = Field(max_length=50, primary_key=True)
    value: str = Field(max_length=500)
    # ChargeNet may push the expected value to stations (applyConfigurationTemplate); without
    # it the key is only watched.
    apply: bool = Field(default=False)
