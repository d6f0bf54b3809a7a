"""Members, invitations and API keys."""

from __future__ import annotations

import strawberry


@strawberry.type
class OrgsMutation:
    pass
