"""The signed-in driver's own data."""

from __future__ import annotations

import strawberry


@strawberry.type
class DriverQuery:
    pass
