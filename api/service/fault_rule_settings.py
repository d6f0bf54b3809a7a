"""Operators read and change their organisation's fault code rules.

Reading the effective table needs network:read (everyone who reads incidents should be able
to see why one got its severity). Changing it needs network:manage, not stations:control or
workorders:manage: a rule changes how every station of the organisation is watched and
whether faults close themselves, a network-wide setting like approving stations, so it sits
with owners and admins rather than with whoever operates or repairs single stations. Every
change is audited in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit import service as audit
from api.audit.service import Actor
from api.auth.principal import Principal
from api.auth.roles import Permission
from api.service import fault_codes
from api.service.fault_rules import ANY_VENDOR
from schema.account_models import AuditEntry
from schema.errors import Forbidden, InvalidInput, NotFound
from schema.fault_rule_models import FaultCodeRule, FaultRuleSource
from schema.incident_models import IncidentSeverity
from schema.timeutil import utcnow

MAX_CODE = 50


@dataclass(frozen=True, slots=True)
class EffectiveRule:
    source: FaultRuleSource
    code: str
    vendor: str | None
    severity: IncidentSeverity
    auto_resolve: bool
    override: FaultCodeRule | None  # None: the built-in default


@dataclass(frozen=True, slots=True)
class RuleRequest:
    organization_id: int
    source: FaultRuleSource
    code: str
    vendor: str | None
    severity: IncidentSeverity
    auto_resolve: bool


def _require(principal: Principal, permission: Permission, organization_id: int) -> None:
    if not principal.can(permission, organization_id):
        raise Forbidden(f"requires {permission.value} at this organisation")


def _defaults() -> list[EffectiveRule]:
    errors = [
        EffectiveRule(FaultRuleSource.ERROR_CODE, code, None, r.severity, r.auto_resolve, None)
        for code, r in fault_codes.ERROR_CODES.items()
    ]
    security = [
        EffectiveRule(FaultRuleSource.SECURITY_EVENT, code, None, severity, False, None)
        for code, severity in fault_codes.SECURITY_EVENTS.items()
    ]
    return errors + security


def from_row(row: FaultCodeRule) -> EffectiveRule:
    source = FaultRuleSource(row.source)
    return EffectiveRule(
        source,
        row.code,
        row.vendor or None,
        IncidentSeverity(row.severity),
        row.auto_resolve and source != FaultRuleSource.SECURITY_EVENT,
        row,
    )


async def effective_rules(
    db: async_sessionmaker[AsyncSession], principal: Principal, organization_id: int
) -> list[EffectiveRule]:
    """The built-in table with the organisation's overrides in place, then its rules for
    codes the table does not know (vendor codes), ordered by source and code."""
    _require(principal, Permission.NETWORK_READ, organization_id)
    async with db() as s:
        rows = (
            await s.exec(select(FaultCodeRule).where(FaultCodeRule.organization_id == organization_id))
        ).all()
    overrides = {(r.source, r.vendor, r.code): from_row(r) for r in rows}
    merged = [overrides.pop((d.source.value, ANY_VENDOR, d.code), d) for d in _defaults()]
    merged += overrides.values()
    return sorted(merged, key=lambda r: (r.source.value, r.code, r.vendor or ""))


def _check(request: RuleRequest) -> tuple[str, str]:
    code = request.code.strip()
    vendor = (request.vendor or "").strip()
    if not code or len(code) > MAX_CODE:
        raise InvalidInput(f"code: 1 to {MAX_CODE} characters")
    if len(vendor) > MAX_CODE:
        raise InvalidInput(f"vendor: at most {MAX_CODE} characters")
    if vendor and request.source != FaultRuleSource.VENDOR_ERROR_CODE:
        raise InvalidInput("vendor scopes vendor error code rules only")
    return code, vendor


async def set_rule(db: async_sessionmaker[AsyncSession], actor: Actor, request: RuleRequest) -> FaultCodeRule:
    """Create or replace the organisation's rule for (source, vendor, code)."""
    _require(actor.principal, Permission.NETWORK_MANAGE, request.organization_id)
    code, vendor = _check(request)
    async with db() as s:
        now = utcnow()
        row = (
            await s.exec(
                select(FaultCodeRule).where(
                    FaultCodeRule.organization_id == request.organization_id,
                    FaultCodeRule.source == request.source.value,
                    FaultCodeRule.vendor == vendor,
                    FaultCodeRule.code == code,
                )
            )
        ).first() or FaultCodeRule(
            organization_id=request.organization_id,
            source=request.source.value,
            vendor=vendor,
            code=code,
            severity=request.severity.value,
            updated_at=now,
        )
        row.severity = request.severity.value
        row.auto_resolve = request.auto_resolve
        row.updated_by = actor.principal.user_id
        row.updated_at = now
        s.add(row)
        await s.flush()
        s.add(_audit(actor, "fault_rule.set", row))
        await s.commit()
        await s.refresh(row)
        return row


async def remove_rule(db: async_sessionmaker[AsyncSession], actor: Actor, rule_id: int) -> FaultCodeRule:
    """Back to the built-in default; a rule of an organisation the caller cannot see is NOT_FOUND."""
    async with db() as s:
        row = await s.get(FaultCodeRule, rule_id)
        principal = actor.principal
        if row is None or not principal.can(Permission.NETWORK_READ, row.organization_id):
            raise NotFound("no such fault code rule")
        _require(principal, Permission.NETWORK_MANAGE, row.organization_id)
        await s.delete(row)
        s.add(_audit(actor, "fault_rule.remove", row))
        await s.commit()
        return row


def _audit(actor: Actor, action: str, row: FaultCodeRule) -> AuditEntry:
    return audit.entry(
        actor,
        action=action,
        result="OK",
        organization_id=row.organization_id,
        target_type="fault_code_rule",
        target_id=row.id,
        detail={
            "source": row.source,
            "vendor": row.vendor or None,
            "code": row.code,
            "severity": row.severity,
            "auto_resolve": row.auto_resolve,
        },
    )
