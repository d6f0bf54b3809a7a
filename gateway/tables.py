"""Core table handles for the gateway's hot paths (no ORM identity map per message)."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Insert, Table
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from schema.control_models import StationConfigurationKey
from schema.models import (
    ChargingStation,
    Connector,
    ConnectorStatusEvent,
    IdToken,
    MeterSample,
    OcppMessage,
    Transaction,
)


def _t(model: type) -> Table:
    return model.__table__  # type: ignore[attr-defined,no-any-return]


STATION = _t(ChargingStation)
CONNECTOR = _t(Connector)
STATUS_EVENT = _t(ConnectorStatusEvent)
ID_TOKEN = _t(IdToken)
METER_SAMPLE = _t(MeterSample)
OCPP_MESSAGE = _t(OcppMessage)
TRANSACTION = _t(Transaction)
CONFIGURATION_KEY = _t(StationConfigurationKey)


@cache  # built once per table and dialect, not per batch
def insert_into(table: Table, dialect: str) -> Insert:
    """The INSERT for a batch of rows. Meter samples are facts a charger resends when a reply
    was lost; their primary key is the fact, so a resend is skipped instead of failing the
    whole group-commit batch."""
    if table is METER_SAMPLE:
        if dialect == "postgresql":
            return postgresql_insert(table).on_conflict_do_nothing()
        if dialect == "sqlite":
            return sqlite_insert(table).on_conflict_do_nothing()
    return table.insert()
