"""Expected failures of a driver's own data, each with the code the app branches on."""

from __future__ import annotations

from schema.errors import ChargeNetError


class CardUnavailable(ChargeNetError):
    """The card cannot be linked. Deliberately silent on why (another driver's, an
    organisation's fleet card, blocked), so the answer reveals nothing about its holder."""

    code = "CARD_UNAVAILABLE"


class LimitReached(ChargeNetError):
    code = "LIMIT_REACHED"
