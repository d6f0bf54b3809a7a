"""Core table handles for the gateway's hot paths (no ORM identity map per message)."""

from __future__ import annotations

from sqlalchemy import Table

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
