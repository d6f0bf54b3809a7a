"""Which rule a fault gets at one organisation: its own overrides first, then the built-in
table (api/service/fault_codes.py).

Precedence, most specific first: a vendor_error_code rule for the station's vendor, one for
any vendor, the OCPP error code rule, the built-in rule. A vendor's own code says more than
the OCPP code the station had to squeeze it into, so it wins. Faults are rare, so the lookup
is one read per fault on the (organization_id, source, vendor, code) unique index, no cache:
an operator's change applies to the very next fault.
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from api.service import fault_codes
from api.service.fault_codes import CodeRule
from schema.fault_rule_models import FaultCodeRule, FaultRuleSource
from schema.incident_models import IncidentSeverity
from schema.models import ChargingStation

RULE = FaultCodeRule.__table__  # type: ignore[attr-defined]
STATION = ChargingStation.__table__  # type: ignore[attr-defined]
ANY_VENDOR = ""


def _rank(source: str, vendor: str) -> int:
    if source == FaultRuleSource.VENDOR_ERROR_CODE.value:
        return 0 if vendor != ANY_VENDOR else 1
    return 2


async def rule_for(
    conn: AsyncConnection, station_id: int, error_code: str, vendor_error_code: str | None
) -> CodeRule:
    """The rule for a connector or station fault at the station's organisation."""
    found = await _override(conn, station_id, error_code, vendor_error_code)
    return fault_codes.error_rule(error_code) if found is None else found


async def vendor_rule(conn: AsyncConnection, station_id: int, vendor_error_code: str) -> CodeRule | None:
    """The organisation's rule for a vendor code alone (a 2.0.1 NotifyEvent techCode)."""
    return await _override(conn, station_id, None, vendor_error_code)


async def _override(
    conn: AsyncConnection, station_id: int, error_code: str | None, vendor_error_code: str | None
) -> CodeRule | None:
    wanted = []
    if error_code:
        wanted.append(
            and_(
                RULE.c.source == FaultRuleSource.ERROR_CODE.value,
                RULE.c.code == error_code,
                RULE.c.vendor == ANY_VENDOR,
            )
        )
    if vendor_error_code:
        wanted.append(
            and_(
                RULE.c.source == FaultRuleSource.VENDOR_ERROR_CODE.value,
                RULE.c.code == vendor_error_code,
                or_(RULE.c.vendor == ANY_VENDOR, RULE.c.vendor == STATION.c.vendor),
            )
        )
    if not wanted:
        return None
    found = (
        await conn.execute(
            select(RULE.c.source, RULE.c.vendor, RULE.c.severity, RULE.c.auto_resolve)
            .join(STATION, STATION.c.organization_id == RULE.c.organization_id)
            .where(STATION.c.id == station_id, or_(*wanted))
        )
    ).all()
    if not found:
        return None
    best = min(found, key=lambda r: _rank(r.source, r.vendor))
    return CodeRule(IncidentSeverity(best.severity), best.auto_resolve)


async def security_severity(
    conn: AsyncConnection, station_id: int, event_type: str
) -> IncidentSeverity | None:
    """An override may raise a routine event to an incident or change its severity; whether
    it auto-resolves is not the operator's to choose (the station cannot vouch for itself)."""
    severity = (
        await conn.execute(
            select(RULE.c.severity)
            .join(STATION, STATION.c.organization_id == RULE.c.organization_id)
            .where(
                STATION.c.id == station_id,
                RULE.c.source == FaultRuleSource.SECURITY_EVENT.value,
                RULE.c.vendor == ANY_VENDOR,
                RULE.c.code == event_type,
            )
        )
    ).scalar()
    return fault_codes.security_severity(event_type) if severity is None else IncidentSeverity(severity)
