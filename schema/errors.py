"""ChargeNet's error hierarchy: each expected failure carries a stable code for clients."""

from __future__ import annotations


class ChargeNetError(Exception):
    code = "INTERNAL"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def extensions(self) -> dict[str, str]:
        """GraphQL error extensions: clients branch on `code`, never on the message."""
        return {"code": self.code}


class NotFound(ChargeNetError):
    code = "NOT_FOUND"


class InvalidInput(ChargeNetError):
    code = "INVALID_INPUT"


class StationOffline(ChargeNetError):
    code = "STATION_OFFLINE"


class CommandTimeout(ChargeNetError):
    code = "TIMED_OUT"


class CommandFailed(ChargeNetError):
    """The station answered a command with a CALLERROR (its OCPP code in `station_code`)."""

    code = "STATION_ERROR"

    def __init__(self, message: str, *, station_code: str = "GenericError") -> None:
        super().__init__(message)
        self.station_code = station_code


class ConnectorBusy(ChargeNetError):
    code = "CONNECTOR_BUSY"


class SubscriptionLagged(ChargeNetError):
    """A subscriber fell so far behind that events were lost; it must resubscribe for a snapshot."""

    code = "SUBSCRIPTION_LAGGED"


class Unauthenticated(ChargeNetError):
    """No valid credentials: the app should refresh its token or sign in again."""

    code = "UNAUTHENTICATED"


class Forbidden(ChargeNetError):
    code = "FORBIDDEN"


class RateLimited(ChargeNetError):
    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def extensions(self) -> dict[str, str]:
        return {"code": self.code, "retryAfterSeconds": str(max(1, round(self.retry_after_s)))}


class InvalidCredentials(ChargeNetError):
    """Email or password wrong, or a password confirming a sensitive change: one code for all,
    so the answer never says which part was wrong."""

    code = "INVALID_CREDENTIALS"


class LastOwner(ChargeNetError):
    """An organisation always keeps an owner: the last one can't leave, be demoted or delete
    their account."""

    code = "LAST_OWNER"


class BusUnavailable(ChargeNetError):
    """The networked bus (Redis) cannot be reached: commands can't be routed right now."""

    code = "BUS_UNAVAILABLE"


class BillingDisabled(ChargeNetError):
    """Payments are not configured on this deployment (no CHARGENET_STRIPE_API_KEY)."""

    code = "BILLING_DISABLED"


class PaymentDeclined(ChargeNetError):
    """The bank or Stripe refused the card; `decline_code` is Stripe's reason
    (insufficient_funds, generic_decline…), safe to show the driver as a hint."""

    code = "PAYMENT_DECLINED"

    def __init__(
        self,
        message: str,
        *,
        decline_code: str | None = None,
        payment_intent_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.decline_code = decline_code
        self.payment_intent_id = payment_intent_id

    @property
    def extensions(self) -> dict[str, str]:
        ext = {"code": self.code}
        if self.decline_code:
            ext["declineCode"] = self.decline_code
        return ext


class PaymentProviderUnavailable(ChargeNetError):
    """Stripe could not be reached, timed out, was rate limited or failed (5xx) after the
    SDK's retries. The same call with the same idempotency key is safe to repeat later."""

    code = "PAYMENT_PROVIDER_UNAVAILABLE"


class PaymentProviderError(ChargeNetError):
    """Stripe refused the request itself (bad state, bad parameters, bad credentials): a
    ChargeNet or configuration problem, not the driver's; `provider_code` is Stripe's code."""

    code = "PAYMENT_PROVIDER_ERROR"

    def __init__(self, message: str, *, provider_code: str | None = None) -> None:
        super().__init__(message)
        self.provider_code = provider_code


class MembershipExists(ChargeNetError):
    """The driver already holds a live membership at this organisation: change its plan
    (changePlan) or cancel it instead of subscribing a second time."""

    code = "MEMBERSHIP_EXISTS"
