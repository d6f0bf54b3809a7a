"""The signed-in driver's profile, vehicles, cards and app tokens."""

from __future__ import annotations

import strawberry


@strawberry.type
class DriverMutation:
    pass
