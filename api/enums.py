"""Domain enums exposed in GraphQL: the schema's own enums, registered with strawberry."""

from __future__ import annotations

from typing import TypeAlias

import strawberry

from api.auth.roles import Permission, Role
from schema.enums import ConnectorStatus, ConnectorType, TransactionState

strawberry.enum(ConnectorStatus, name="ConnectorStatus")
strawberry.enum(TransactionState, name="TransactionState")
strawberry.enum(ConnectorType, name="ConnectorType", description="A plug standard.")
strawberry.enum(Role, name="Role", description="A member's role in an organization.")
strawberry.enum(Permission, name="Permission", description="The unit of access roles and API keys grant.")

ConnectorStatusGQL: TypeAlias = ConnectorStatus
TransactionStateGQL: TypeAlias = TransactionState
ConnectorTypeGQL: TypeAlias = ConnectorType
RoleGQL: TypeAlias = Role
PermissionGQL: TypeAlias = Permission
