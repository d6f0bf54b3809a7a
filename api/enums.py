"""Domain enums exposed in GraphQL: the schema's own enums, registered with strawberry."""

from __future__ import annotations

from typing import TypeAlias

import strawberry

from schema.enums import ConnectorStatus, ConnectorType, TransactionState

strawberry.enum(ConnectorStatus, name="ConnectorStatus")
strawberry.enum(TransactionState, name="TransactionState")
strawberry.enum(ConnectorType, name="ConnectorType", description="A plug standard.")

ConnectorStatusGQL: TypeAlias = ConnectorStatus
TransactionStateGQL: TypeAlias = TransactionState
ConnectorTypeGQL: TypeAlias = ConnectorType
