"""Expected failures of a driver's own data, each with the code the app branches on."""

from __future__ import annotations

from schema.errors import ChargeNetError


class CardUnavailable(ChargeNetError):
    """The card cannot be linked. Deliberately silent on why (another driver's, an
    organisation's fleet card, blocked), so the answer reveals nothing about its holder."""

    code = "CARD_UNAVAILABLE"


class LimitReached(ChargeNetError):
    code = "LIMIT_REACHED"


class WrongPassword(ChargeNetError):
    """The password confirming a sensitive change is wrong (the same code as a failed sign-in)."""

    code = "INVALID_CREDENTIALS"


class LastOwner(ChargeNetError):
    """An organisation must keep an owner: deleting its last one would orphan it."""

    code = "LAST_OWNER"
