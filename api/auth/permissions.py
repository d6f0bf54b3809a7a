"""Strawberry permission classes. Every root field declares one (the schema refuses to build
otherwise, see `api.auth.policy`); a field without a rule is a build error, never open.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from api.auth.principal import Principal
from api.auth.roles import Permission


def _principal(info: Info) -> Principal:
    return info.context.principal  # type: ignore[no-any-return]


class _Denying(BasePermission):
    """Anonymous callers are told to sign in; signed-in callers that lack the right, FORBIDDEN."""

    message = "not allowed"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        # message/error_extensions are set and read by strawberry synchronously in one call,
        # so concurrent requests sharing this instance cannot interleave between the two.
        principal = _principal(info)
        ok = self.allows_on(principal, source)
        if not ok:
            self.message = "sign in required" if not principal.is_authenticated else self.denied_message
            self.error_extensions = {
                "code": "UNAUTHENTICATED" if not principal.is_authenticated else "FORBIDDEN"
            }
        return ok

    denied_message = "not allowed"

    def allows(self, principal: Principal) -> bool:
        raise NotImplementedError

    def allows_on(self, principal: Principal, source: Any) -> bool:
        """The check for this field of `source`; most rules look at the caller only."""
        return self.allows(principal)


class IsPublic(BasePermission):
    """Data any driver app may read without signing in (network, availability, prices)."""

    message = "not allowed"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return True


class IsAuthenticated(_Denying):
    """Any signed-in caller; the resolver decides what it acts on (e.g. its own session)."""

    def allows(self, principal: Principal) -> bool:
        return principal.is_authenticated


class IsUser(_Denying):
    """A person's own account data (profile, vehicles, cards, devices): never an API key."""

    denied_message = "a personal account is required"

    def allows(self, principal: Principal) -> bool:
        return principal.is_user


@cache
def Has(permission: Permission) -> type[BasePermission]:
    """Holds `permission` in some organisation; the repository narrows to which."""

    def allows(self: _Denying, principal: Principal) -> bool:
        return principal.has(permission)

    return type(
        f"Has_{permission.name}",
        (_Denying,),
        {"allows": allows, "denied_message": f"requires {permission.value}", "permission": permission},
    )


@cache
def HasOnObject(permission: Permission) -> type[BasePermission]:
    """Holds `permission` in the organisation owning the object the field belongs to.

    For fields of public objects that only their operator may read (a station's serial number):
    an operator of another organisation is refused just like a driver. The source object
    exposes `organization_id`.
    """

    def allows_on(self: _Denying, principal: Principal, source: Any) -> bool:
        return principal.can(permission, getattr(source, "organization_id", None))

    return type(
        f"HasOnObject_{permission.name}",
        (_Denying,),
        {
            "allows_on": allows_on,
            "allows": lambda self, p: p.has(permission),
            "denied_message": f"requires {permission.value}",
            "permission": permission,
        },
    )
