"""The caller of a request or subscription, resolved once per request.

A principal is immutable and carries everything access checks need, so that checking a field
is a dictionary lookup rather than a query: who it is, which session or key it came through,
and the permissions it holds in each organisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from api.auth.roles import Permission


class PrincipalKind(StrEnum):
    ANONYMOUS = "anonymous"
    USER = "user"  # a person signed in with an access token: driver and/or staff member
    API_KEY = "api_key"  # an integration of one organisation
    PLATFORM = "platform"  # the deployment's bootstrap admin token: every organisation
    SYSTEM = "system"  # ChargeNet's own jobs acting on stations: never a request


def _no_grants() -> Mapping[int, frozenset[Permission]]:
    return MappingProxyType({})


# eq=False: principals compare by identity (ANONYMOUS is a singleton), and stay hashable.
@dataclass(frozen=True, slots=True, eq=False)
class Principal:
    kind: PrincipalKind
    user_id: int | None = None
    session_id: int | None = None
    api_key_id: int | None = None
    # organisation id → permissions held there.
    grants: Mapping[int, frozenset[Permission]] = field(default_factory=_no_grants)
    # Set for platform administrators: these permissions in every organisation.
    everywhere: frozenset[Permission] = frozenset()

    @property
    def is_authenticated(self) -> bool:
        return self.kind is not PrincipalKind.ANONYMOUS

    @property
    def is_user(self) -> bool:
        """A person with a personal account (driver features: profile, cards, own sessions)."""
        return self.kind is PrincipalKind.USER and self.user_id is not None

    def has(self, permission: Permission) -> bool:
        """Holds `permission` somewhere; repositories then narrow to the organisations."""
        return permission in self.everywhere or any(permission in p for p in self.grants.values())

    def can(self, permission: Permission, organization_id: int | None) -> bool:
        if permission in self.everywhere:
            return True
        if organization_id is None:
            return False
        return permission in self.grants.get(organization_id, frozenset())

    def organizations_with(self, permission: Permission) -> frozenset[int] | None:
        """The organisations where `permission` is held; None means every organisation."""
        if permission in self.everywhere:
            return None
        return frozenset(org for org, perms in self.grants.items() if permission in perms)

    @property
    def actor_label(self) -> str:
        """Who, for the audit log; stable even after the account is deleted."""
        if self.kind is PrincipalKind.USER:
            return f"user:{self.user_id}"
        if self.kind is PrincipalKind.API_KEY:
            return f"api_key:{self.api_key_id}"
        return self.kind.value


ANONYMOUS = Principal(PrincipalKind.ANONYMOUS)
PLATFORM = Principal(PrincipalKind.PLATFORM, everywhere=frozenset(Permission))
# What scheduled jobs act as, so the command log and audit trail say "system" rather than
# pretending a person acted: station commands only, in every organisation; never account or
# organisation changes. No request ever resolves to it.
SYSTEM = Principal(
    PrincipalKind.SYSTEM,
    everywhere=frozenset({Permission.STATIONS_CONTROL, Permission.STATIONS_DIAGNOSE}),
)
