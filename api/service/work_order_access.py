"""Who sees and acts on which work orders.

`workorders:manage` is held by managers (owners, admins, an integration given it) and by
technicians. A member whose role in the organisation is technician reaches only the orders
assigned to them; everyone else holding the permission reaches every order of the
organisation. Scoping is a property of the statement (`readable`), never of each resolver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, false, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from api.auth.principal import Principal
from api.auth.roles import ROLE_PERMISSIONS, Permission, Role
from schema.account_models import Membership
from schema.errors import Forbidden, NotFound
from schema.maintenance_models import WorkOrder

WORK_ORDER = WorkOrder.__table__  # type: ignore[attr-defined]
MEMBERSHIP = Membership.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Reach:
    """Where the caller manages every order (None: everywhere) and where only its own."""

    manages: frozenset[int] | None
    own_only: frozenset[int]
    user_id: int | None

    def may_manage(self, organization_id: int) -> bool:
        return self.manages is None or organization_id in self.manages

    def may_work_on(self, row: Any) -> bool:
        """Manage it, or be the technician it is assigned to."""
        if self.may_manage(row.organization_id):
            return True
        return (
            row.organization_id in self.own_only
            and self.user_id is not None
            and row.assignee_id == self.user_id
        )


async def reach(conn: AsyncConnection, principal: Principal) -> Reach:
    orgs = principal.organizations_with(Permission.WORK_ORDERS)
    if orgs is None:
        return Reach(None, frozenset(), principal.user_id)
    technician_in: set[int] = set()
    if principal.user_id is not None and orgs:
        technician_in = set(
            (
                await conn.execute(
                    select(MEMBERSHIP.c.organization_id).where(
                        MEMBERSHIP.c.user_id == principal.user_id,
                        MEMBERSHIP.c.role == Role.TECHNICIAN.value,
                        MEMBERSHIP.c.organization_id.in_(orgs),
                    )
                )
            ).scalars()
        )
    return Reach(frozenset(orgs - technician_in), frozenset(technician_in), principal.user_id)


def readable(r: Reach) -> Select[Any]:
    """Work orders the caller may read."""
    stmt = select(WORK_ORDER)
    if r.manages is None:
        return stmt
    clauses = []
    if r.manages:
        clauses.append(WORK_ORDER.c.organization_id.in_(r.manages))
    if r.own_only and r.user_id is not None:
        clauses.append(
            and_(WORK_ORDER.c.organization_id.in_(r.own_only), WORK_ORDER.c.assignee_id == r.user_id)
        )
    return stmt.where(or_(*clauses)) if clauses else stmt.where(false())


async def readable_order(conn: AsyncConnection, r: Reach, work_order_id: int) -> Any:
    """The order if the caller may read it; NOT_FOUND otherwise (existence never leaks)."""
    row = (await conn.execute(readable(r).where(WORK_ORDER.c.id == work_order_id))).first()
    if row is None:
        raise NotFound("no such work order")
    return row


async def managed_order(conn: AsyncConnection, r: Reach, work_order_id: int) -> Any:
    row = await readable_order(conn, r, work_order_id)
    if not r.may_manage(row.organization_id):
        raise Forbidden("requires workorders:manage as a manager of this organisation")
    return row


async def is_technician(conn: AsyncConnection, organization_id: int, user_id: int) -> bool:
    """A member whose role grants workorders:manage may be assigned (technicians foremost)."""
    role = (
        await conn.execute(
            select(MEMBERSHIP.c.role).where(
                MEMBERSHIP.c.organization_id == organization_id, MEMBERSHIP.c.user_id == user_id
            )
        )
    ).scalar()
    return (
        isinstance(role, str)
        and role in Role._value2member_map_
        and Permission.WORK_ORDERS in ROLE_PERMISSIONS[Role(role)]
    )


async def readable_by_incident(
    conn: AsyncConnection, principal: Principal, incident_ids: Sequence[int]
) -> dict[int, list[Any]]:
    """The orders raised for each incident that the caller may read, oldest first."""
    stmt = readable(await reach(conn, principal)).where(WORK_ORDER.c.incident_id.in_(list(incident_ids)))
    found: dict[int, list[Any]] = {}
    for row in await conn.execute(stmt.order_by(WORK_ORDER.c.id)):
        found.setdefault(row.incident_id, []).append(row)
    return found
