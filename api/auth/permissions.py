"""Strawberry permission classes. Every field declares one; the safe default is to deny."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info


class IsPublic(BasePermission):
    """Data any driver app may read without signing in (network, availability)."""

    message = "not allowed"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return True


class IsOperator(BasePermission):
    message = "operator access required"
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return bool(info.context.principal.is_operator)
