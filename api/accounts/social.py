"""Sign in with Google and Apple."""

from __future__ import annotations

import strawberry


@strawberry.type
class SocialSignInMutation:
    pass
