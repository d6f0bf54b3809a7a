"""Expected failures of incident actions, each with a code clients branch on."""

from __future__ import annotations

from schema.errors import ChargeNetError


class IncidentStateConflict(ChargeNetError):
    """The incident is not in a state the action applies to (acknowledge one that is not
    open, resolve one already resolved): the message names the state it is in."""

    code = "INCIDENT_STATE_CONFLICT"
