"""The OCPP 2.0.1 device model of each station: every variable attribute it reported.

A 2.0.1 station describes itself as components (OCPPCommCtrlr, EVSE 1, Connector 1:1…) with
variables, each with up to four attributes (Actual, Target, MinSet, MaxSet). GetBaseReport asks
for all of it; the NotifyReport parts that answer are stored here as they arrive.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import PrimaryKeyConstraint
from sqlmodel import Field, SQLModel

from schema.columns import utc_column


class DeviceModelVariable(SQLModel, table=True):
    """One attribute of one variable as the station last reported it.

    The primary key is the attribute's address. Absent instances are '' and an absent EVSE or
    connector 0 (2.0.1 numbers both from 1), so the key compares them (NULLs would not).
    Write-only attributes (SecurityCtrlr.BasicAuthPassword) are kept without a value.
    """

    __tablename__ = "device_model_variable"
    __table_args__ = (
        PrimaryKeyConstraint(
            "station_id",
            "component_name",
            "component_instance",
            "evse_id",
            "connector_id",
            "variable_name",
            "variable_instance",
            "attribute_type",
            name="pk_device_model_variable",
        ),
    )

    station_id: int = Field(foreign_key="charging_station.id")
    component_name: str = Field(max_length=50)
    component_instance: str = Field(default="", max_length=50)
    evse_id: int = Field(default=0, description="0: the component is not on an EVSE")
    connector_id: int = Field(default=0, description="0: the component is not on a connector")
    variable_name: str = Field(max_length=50)
    variable_instance: str = Field(default="", max_length=50)
    attribute_type: str = Field(default="Actual", max_length=8)
    value: str | None = Field(default=None, max_length=2500)
    mutability: str | None = Field(default=None, max_length=10)
    data_type: str | None = Field(default=None, max_length=16)
    unit: str | None = Field(default=None, max_length=16)
    reported_at: datetime = Field(sa_column=utc_column())
