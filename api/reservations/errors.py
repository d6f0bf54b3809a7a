"""Expected failures of reserving, each with a code clients branch on."""

from __future__ import annotations

from schema.errors import ChargeNetError


class ActiveReservationExists(ChargeNetError):
    """A driver holds one reservation at a time: cancel it (or use it) before the next."""

    code = "ACTIVE_RESERVATION_EXISTS"
