"""Sign-up, sign-in, tokens, password reset."""

from __future__ import annotations

import strawberry


@strawberry.type
class AccountsMutation:
    pass
