"""Expected failures of firmware campaigns, each with a code clients branch on."""

from __future__ import annotations

from schema.errors import ChargeNetError


class InvalidCampaignTransition(ChargeNetError):
    """The campaign is not in a state the action applies to (resume a draft, start a
    completed one…): the message names the state it is in."""

    code = "INVALID_STATE_TRANSITION"


class EmptyStationFilter(ChargeNetError):
    """The filter matched none of the organisation's stations: a campaign needs at least one."""

    code = "EMPTY_STATION_FILTER"
