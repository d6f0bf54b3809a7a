"""Device sessions of the signed-in person."""

from __future__ import annotations

import strawberry


@strawberry.type
class AccountsQuery:
    pass
