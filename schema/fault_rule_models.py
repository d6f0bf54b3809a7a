"""An organisation's own verdict on fault codes, overriding the built-in table
(api/service/fault_codes.py): its stations' vendors say what their codes mean, and some
operators want every fault confirmed by a technician.

`vendor` scopes a vendor_error_code rule to one station vendor ("" = any vendor): vendor
codes are free text and two manufacturers reuse "E12" for unrelated things. It is "" rather
than NULL so the unique constraint holds on every database.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from schema.columns import bigint_pk, utc_column


class FaultRuleSource(StrEnum):
    ERROR_CODE = "error_code"  # OCPP ChargePointErrorCode (or "Faulted" without one)
    VENDOR_ERROR_CODE = "vendor_error_code"  # the station's vendorErrorCode, as reported
    SECURITY_EVENT = "security_event"  # 2.0.1 SecurityEventNotification type


class FaultCodeRule(SQLModel, table=True):
    __tablename__ = "fault_code_rule"
    __table_args__ = (
        UniqueConstraint("organization_id", "source", "vendor", "code", name="uq_fault_code_rule"),
    )

    id: int | None = Field(default=None, sa_column=bigint_pk())
    organization_id: int = Field(foreign_key="organization.id")
    source: str = Field(max_length=20)
    vendor: str = Field(default="", max_length=50)
    code: str = Field(max_length=50)
    severity: str = Field(max_length=10)
    auto_resolve: bool = True
    updated_by: int | None = Field(default=None, foreign_key="user_account.id")
    updated_at: datetime = Field(sa_column=utc_column())
