"""Domain enums shared by the gateway and the API. Values are stored as their string value."""

from __future__ import annotations

from enum import StrEnum


class OcppVersion(StrEnum):
    V16 = "ocpp1.6"
    V201 = "ocpp2.0.1"


class RegistrationStatus(StrEnum):
    """What the station is told in BootNotification.conf."""

    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


class ConnectorStatus(StrEnum):
    """OCPP 1.6 ChargePointStatus; 2.0.1 statuses map onto these."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EVSE = "SuspendedEVSE"
    SUSPENDED_EV = "SuspendedEV"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"
    UNKNOWN = "Unknown"


class ConnectorType(StrEnum):
    TYPE2 = "Type2"
    CCS2 = "CCS2"
    CCS1 = "CCS1"
    CHADEMO = "CHAdeMO"
    TYPE1 = "Type1"
    NACS = "NACS"
    GBT = "GBT"


class CurrentType(StrEnum):
    AC = "AC"
    DC = "DC"


class TransactionState(StrEnum):
    ACTIVE = "Active"
    COMPLETED = "Completed"


class MessageDirection(StrEnum):
    IN = "in"
    OUT = "out"
