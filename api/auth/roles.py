"""Organisation roles and the permissions each grants.

Permissions are the unit of access: GraphQL fields and services ask for a permission, never for
a role, so an API key (which has permissions but no role) is checked the same way as a person.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    NETWORK_READ = "network:read"  # operator-only station details, message logs
    NETWORK_MANAGE = "network:manage"  # create and edit locations, stations, connectors
    SESSIONS_READ = "sessions:read"  # the organisation's charging sessions
    STATIONS_CONTROL = "stations:control"  # remote start/stop and other commands
    STATIONS_DIAGNOSE = "stations:diagnose"  # diagnostics, logs, triggered messages, reset
    WORK_ORDERS = "workorders:manage"
    BILLING_READ = "billing:read"
    BILLING_MANAGE = "billing:manage"  # refunds, tariffs
    REPORTS_READ = "reports:read"
    MEMBERS_MANAGE = "members:manage"
    API_KEYS_MANAGE = "apikeys:manage"
    AUDIT_READ = "audit:read"
    ORG_MANAGE = "org:manage"


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    OPERATOR = "operator"
    TECHNICIAN = "technician"
    FINANCE = "finance"
    VIEWER = "viewer"


P = Permission
_VIEW = frozenset({P.NETWORK_READ, P.SESSIONS_READ})
_ADMIN = frozenset(P) - {P.ORG_MANAGE}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(P),
    Role.ADMIN: _ADMIN,
    Role.OPERATOR: _VIEW | {P.STATIONS_CONTROL, P.STATIONS_DIAGNOSE, P.REPORTS_READ},
    Role.TECHNICIAN: frozenset({P.NETWORK_READ, P.STATIONS_DIAGNOSE, P.WORK_ORDERS}),
    Role.FINANCE: _VIEW | {P.BILLING_READ, P.BILLING_MANAGE, P.REPORTS_READ},
    Role.VIEWER: _VIEW,
}

# Roles that may grant a role: nobody hands out more than they hold, and only owners make owners.
ROLE_RANK: dict[Role, int] = {
    Role.OWNER: 3,
    Role.ADMIN: 2,
    Role.OPERATOR: 1,
    Role.TECHNICIAN: 1,
    Role.FINANCE: 1,
    Role.VIEWER: 0,
}


def parse_permissions(text: str) -> frozenset[Permission]:
    """Stored as space-separated names; unknown names (a permission since removed) are dropped."""
    known = {p.value for p in Permission}
    return frozenset(Permission(p) for p in text.split() if p in known)


def format_permissions(perms: frozenset[Permission]) -> str:
    return " ".join(sorted(p.value for p in perms))
