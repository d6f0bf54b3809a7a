"""Domain enums exposed in GraphQL: the schema's own enums, registered with strawberry."""

from __future__ import annotations

from typing import TypeAlias

import strawberry

from schema.enums import ConnectorStatus, TransactionState

strawberry.enum(ConnectorStatus, name="ConnectorStatus")
strawberry.enum(TransactionState, name="TransactionState")

ConnectorStatusGQL: TypeAlias = ConnectorStatus
TransactionStateGQL: TypeAlias = TransactionState
