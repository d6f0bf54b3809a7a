"""Access rules specific to organisation management."""

from __future__ import annotations

from api.auth.permissions import _Denying
from api.auth.principal import Principal
from api.auth.roles import Permission


def is_platform_admin(principal: Principal) -> bool:
    return Permission.ORG_MANAGE in principal.everywhere


class IsPlatformAdmin(_Denying):
    """Staff of the ChargeNet deployment itself (the bootstrap token or an account flagged as
    platform admin): they alone hold `org:manage` in every organisation, which creating a new
    organisation needs, since no member of it exists yet."""

    denied_message = "requires a platform administrator"

    def allows(self, principal: Principal) -> bool:
        return is_platform_admin(principal)
