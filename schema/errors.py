"""ChargeNet's error hierarchy: each expected failure carries a stable code for clients."""

from __future__ import annotations


class ChargeNetError(Exception):
    code = "INTERNAL"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(ChargeNetError):
    code = "NOT_FOUND"


class InvalidInput(ChargeNetError):
    code = "INVALID_INPUT"


class StationOffline(ChargeNetError):
    code = "STATION_OFFLINE"


class CommandTimeout(ChargeNetError):
    code = "TIMED_OUT"


class CommandFailed(ChargeNetError):
    """The station answered a command with a CALLERROR."""

    code = "STATION_ERROR"


class ConnectorBusy(ChargeNetError):
    code = "CONNECTOR_BUSY"


class SubscriptionLagged(ChargeNetError):
    """A subscriber fell so far behind that events were lost; it must resubscribe for a snapshot."""

    code = "SUBSCRIPTION_LAGGED"
