"""Every query of tariffs: operator reads scoped by who asks, and the "in force at T" reads
that price sessions (those are not scoped: the caller already holds the station it prices)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.auth.principal import Principal
from api.auth.roles import Permission
from api.orgs.repository import Page, Stmt, by_ids, page
from schema.db import insert_on_conflict
from schema.models import ChargingStation, Location, Organization
from schema.plan_models import MembershipPlan, PlanSubscription, PlanUsage
from schema.tariff_models import StoredTariff, TariffAssignment, TariffVersion

TARIFF = StoredTariff.__table__  # type: ignore[attr-defined]
VERSION = TariffVersion.__table__  # type: ignore[attr-defined]
ASSIGNMENT = TariffAssignment.__table__  # type: ignore[attr-defined]
STATION = ChargingStation.__table__  # type: ignore[attr-defined]
LOCATION = Location.__table__  # type: ignore[attr-defined]
ORGANIZATION = Organization.__table__  # type: ignore[attr-defined]


def readable_tariffs(principal: Principal, permission: Permission = Permission.BILLING_READ) -> Stmt:
    stmt: Stmt = select(StoredTariff)
    orgs = principal.organizations_with(permission)
    if orgs is None:
        return stmt
    return stmt.where(col(StoredTariff.organization_id).in_(orgs)) if orgs else stmt.where(False)  # type: ignore[arg-type]


async def tariffs_by_ids(
    s: AsyncSession,
    principal: Principal,
    ids: Sequence[int],
    permission: Permission = Permission.BILLING_READ,
) -> dict[int, Row[Any]]:
    return await by_ids(s, readable_tariffs(principal, permission), col(StoredTariff.id), ids)


async def page_tariffs(
    s: AsyncSession,
    principal: Principal,
    *,
    include_archived: bool,
    first: int,
    after: int | None,
    count: bool,
) -> Page:
    stmt = readable_tariffs(principal)
    if not include_archived:
        stmt = stmt.where(col(StoredTariff.archived_at).is_(None))
    return await page(s, stmt, col(StoredTariff.id), first=first, after=after, newest_first=True, count=count)


async def versions(conn: AsyncConnection, tariff_ids: Iterable[int]) -> dict[int, list[Row[Any]]]:
    """Every version of each tariff, oldest first."""
    found: dict[int, list[Row[Any]]] = {}
    ids = list(tariff_ids)
    if not ids:
        return found
    rows = await conn.execute(select(VERSION).where(VERSION.c.tariff_id.in_(ids)).order_by(VERSION.c.version))
    for r in rows:
        found.setdefault(r.tariff_id, []).append(r)
    return found


async def assignments_of(
    conn: AsyncConnection, tariff_ids: Iterable[int], *, active_only: bool
) -> list[Row[Any]]:
    stmt = select(ASSIGNMENT).where(ASSIGNMENT.c.tariff_id.in_(list(tariff_ids)))
    if active_only:
        stmt = stmt.where(ASSIGNMENT.c.removed_at.is_(None))
    return list((await conn.execute(stmt.order_by(ASSIGNMENT.c.id))).all())


async def next_version(conn: AsyncConnection, tariff_id: int) -> int:
    found = await conn.execute(select(func.max(VERSION.c.version)).where(VERSION.c.tariff_id == tariff_id))
    return int(found.scalar() or 0) + 1


# -- in force at an instant -------------------------------------------------------------------


async def station_context(conn: AsyncConnection, station_ids: Iterable[int]) -> dict[int, Row[Any]]:
    """Per station: its organisation, location, the organisation's currency and the location's
    time zone — what a tariff is priced in."""
    ids = list(station_ids)
    if not ids:
        return {}
    rows = await conn.execute(
        select(
            STATION.c.id,
            STATION.c.organization_id,
            STATION.c.location_id,
            ORGANIZATION.c.currency,
            LOCATION.c.time_zone,
        )
        .select_from(
            STATION.outerjoin(ORGANIZATION, ORGANIZATION.c.id == STATION.c.organization_id).outerjoin(
                LOCATION, LOCATION.c.id == STATION.c.location_id
            )
        )
        .where(STATION.c.id.in_(ids))
    )
    return {r.id: r for r in rows}


def _in_force(table: Any, at: datetime | None) -> Any:
    if at is None:
        return table.c.removed_at.is_(None)
    return and_(table.c.created_at <= at, or_(table.c.removed_at.is_(None), table.c.removed_at > at))


async def assignments_in_force(
    conn: AsyncConnection, organization_ids: Iterable[int], at: datetime | None
) -> list[Row[Any]]:
    """Assignments of these organisations in force at `at` (None: now), tariff not archived
    at that instant either."""
    ids = list(organization_ids)
    if not ids:
        return []
    archived_ok = (
        TARIFF.c.archived_at.is_(None)
        if at is None
        else or_(TARIFF.c.archived_at.is_(None), TARIFF.c.archived_at > at)
    )
    rows = await conn.execute(
        select(ASSIGNMENT, TARIFF.c.name.label("tariff_name"))
        .select_from(ASSIGNMENT.join(TARIFF, TARIFF.c.id == ASSIGNMENT.c.tariff_id))
        .where(ASSIGNMENT.c.organization_id.in_(ids), _in_force(ASSIGNMENT, at), archived_ok)
    )
    return list(rows.all())


async def versions_in_force(
    conn: AsyncConnection, tariff_ids: Iterable[int], at: datetime | None
) -> dict[int, Row[Any]]:
    """The newest version of each tariff created at or before `at` (None: the newest)."""
    ids = list(tariff_ids)
    if not ids:
        return {}
    newest = select(VERSION.c.tariff_id, func.max(VERSION.c.version).label("version")).where(
        VERSION.c.tariff_id.in_(ids)
    )
    if at is not None:
        newest = newest.where(VERSION.c.created_at <= at)
    chosen = newest.group_by(VERSION.c.tariff_id).subquery()
    rows = await conn.execute(
        select(VERSION).join(
            chosen, and_(chosen.c.tariff_id == VERSION.c.tariff_id, chosen.c.version == VERSION.c.version)
        )
    )
    return {r.tariff_id: r for r in rows}


async def version_by_id(conn: AsyncConnection, version_id: int) -> Row[Any] | None:
    found = await conn.execute(
        select(VERSION, TARIFF.c.name.label("tariff_name"), TARIFF.c.organization_id)
        .join(TARIFF, TARIFF.c.id == VERSION.c.tariff_id)
        .where(VERSION.c.id == version_id)
    )
    return found.first()


# -- memberships ------------------------------------------------------------------------------

PLAN = MembershipPlan.__table__  # type: ignore[attr-defined]
SUBSCRIPTION = PlanSubscription.__table__  # type: ignore[attr-defined]
USAGE = PlanUsage.__table__  # type: ignore[attr-defined]
# Stripe subscription states in which the member has the plan's prices.
MEMBER_STATES = ("active", "trialing")


async def member_subscriptions(
    conn: AsyncConnection, user_id: int | None, organization_ids: Iterable[int]
) -> dict[int, Row[Any]]:
    """The driver's current membership per organisation (the newest, if several), with its plan."""
    ids = list(organization_ids)
    if user_id is None or not ids:
        return {}
    rows = await conn.execute(
        select(
            SUBSCRIPTION.c.id,
            SUBSCRIPTION.c.organization_id,
            SUBSCRIPTION.c.plan_id,
            SUBSCRIPTION.c.current_period_start,
            PLAN.c.name.label("plan_name"),
            PLAN.c.included_wh,
            PLAN.c.discount_basis_points,
        )
        .join(PLAN, PLAN.c.id == SUBSCRIPTION.c.plan_id)
        .where(
            SUBSCRIPTION.c.user_id == user_id,
            SUBSCRIPTION.c.organization_id.in_(ids),
            SUBSCRIPTION.c.status.in_(MEMBER_STATES),
        )
        .order_by(SUBSCRIPTION.c.id)
    )
    return {r.organization_id: r for r in rows}


async def used_wh(conn: AsyncConnection, subscription_id: int, period_start: datetime, *, lock: bool) -> int:
    """Included energy used this period; with `lock`, the usage row is created if missing and
    held until the transaction ends, so two sessions ending together cannot both spend it."""
    if lock:
        await conn.execute(
            insert_on_conflict(conn, USAGE)
            .values(subscription_id=subscription_id, period_start=period_start, used_wh=0)
            .on_conflict_do_nothing(index_elements=["subscription_id", "period_start"])
        )
    stmt = select(USAGE.c.used_wh).where(
        USAGE.c.subscription_id == subscription_id, USAGE.c.period_start == period_start
    )
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return int((await conn.execute(stmt)).scalar() or 0)


async def add_usage(conn: AsyncConnection, subscription_id: int, period_start: datetime, wh: int) -> None:
    await conn.execute(
        update(USAGE)
        .where(USAGE.c.subscription_id == subscription_id, USAGE.c.period_start == period_start)
        .values(used_wh=USAGE.c.used_wh + wh)
    )
