"""Organisations, members, API keys and the audit log."""

from __future__ import annotations

import strawberry


@strawberry.type
class OrgsQuery:
    pass
