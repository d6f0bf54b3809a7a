"""GraphQL for fault code rules: the effective table (network:read) and changing it
(network:manage; why in api/service/fault_rule_settings.py). Rules are not Relay nodes: they
are read only as their organisation's table, so an id is a handle to remove one."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import Has
from api.auth.roles import Permission
from api.network.types import parse_global_id
from api.orgs.types import parse_organization_id
from api.service import fault_rule_settings as settings
from api.service.incident_types import IncidentSeverityGQL
from schema.fault_rule_models import FaultCodeRule, FaultRuleSource
from schema.incident_models import IncidentSeverity

RULE_ID = "FaultCodeRule"


@strawberry.enum(description="Which code a rule matches.")
class FaultRuleSourceGQL(Enum):
    ERROR_CODE = "error_code"
    VENDOR_ERROR_CODE = "vendor_error_code"
    SECURITY_EVENT = "security_event"


@strawberry.type(name="FaultCodeRule")
class FaultCodeRuleType:
    id: relay.GlobalID | None = strawberry.field(description="Null for a built-in default.")
    source: FaultRuleSourceGQL
    code: str
    vendor: str | None = strawberry.field(
        description="The station vendor a vendor code rule is for; null: any."
    )
    severity: IncidentSeverityGQL
    auto_resolve: bool = strawberry.field(description="False: the incident waits for a technician.")
    is_override: bool = strawberry.field(description="The organisation's own rule, not the built-in default.")
    updated_at: datetime | None

    @classmethod
    def from_rule(cls, r: settings.EffectiveRule) -> FaultCodeRuleType:
        row = r.override
        return cls(
            id=None if row is None else relay.GlobalID(RULE_ID, str(row.id)),
            source=FaultRuleSourceGQL(r.source.value),
            code=r.code,
            vendor=r.vendor,
            severity=IncidentSeverityGQL(r.severity.value),
            auto_resolve=r.auto_resolve,
            is_override=row is not None,
            updated_at=None if row is None else row.updated_at,
        )

    @classmethod
    def from_row(cls, row: FaultCodeRule) -> FaultCodeRuleType:
        return cls.from_rule(settings.from_row(row))


@strawberry.input
class FaultCodeRuleInput:
    organization_id: relay.GlobalID
    source: FaultRuleSourceGQL
    code: str
    severity: IncidentSeverityGQL
    auto_resolve: bool = True
    vendor: str | None = strawberry.field(
        default=None, description="Vendor error code rules only: the station vendor it applies to."
    )


@strawberry.type
class FaultRulesQuery:
    @strawberry.field(
        permission_classes=[Has(Permission.NETWORK_READ)],
        description="The fault code rules in force for the organisation: the built-in table with "
        "its overrides in place, and its rules for codes the table does not know.",
    )
    async def fault_code_rules(self, info: Info, organization_id: relay.GlobalID) -> list[FaultCodeRuleType]:
        rules = await settings.effective_rules(
            info.context.db, info.context.principal, parse_organization_id(organization_id)
        )
        return [FaultCodeRuleType.from_rule(r) for r in rules]


@strawberry.type
class FaultRulesMutation:
    @strawberry.mutation(
        permission_classes=[Has(Permission.NETWORK_MANAGE)],
        description="Set the organisation's rule for a code (replacing its previous one); applies "
        "to faults from now on; audited.",
    )
    async def set_fault_code_rule(self, info: Info, input: FaultCodeRuleInput) -> FaultCodeRuleType:
        row = await settings.set_rule(
            info.context.db,
            info.context.actor,
            settings.RuleRequest(
                organization_id=parse_organization_id(input.organization_id),
                source=FaultRuleSource(input.source.value),
                code=input.code,
                vendor=input.vendor,
                severity=IncidentSeverity(input.severity.value),
                auto_resolve=input.auto_resolve,
            ),
        )
        return FaultCodeRuleType.from_row(row)

    @strawberry.mutation(
        permission_classes=[Has(Permission.NETWORK_MANAGE)],
        description="Remove an override: its code follows the built-in default again; audited.",
    )
    async def remove_fault_code_rule(self, info: Info, id: relay.GlobalID) -> FaultCodeRuleType:
        row = await settings.remove_rule(info.context.db, info.context.actor, parse_global_id(id, RULE_ID))
        return FaultCodeRuleType.from_row(row)
