"""Membership plans: created by an organisation's billing staff, shown to every app, and the
memberships drivers hold (their state follows Stripe's subscriptions, see api.billing.webhooks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit import service as audit
from api.audit.service import Actor
from api.auth.roles import Permission
from api.billing import codec
from api.billing import repository as repo
from api.billing.tariffs import MAX_TAX_BASIS_POINTS
from schema.errors import Forbidden, InvalidInput, NotFound
from schema.models import Organization
from schema.plan_models import MembershipPlan
from schema.timeutil import utcnow

MAX_NAME = 80
MAX_DESCRIPTION = 500
# A monthly fee above €10,000 is a typo, not a plan.
MAX_MONTHLY_FEE = 1_000_000
MAX_INCLUDED_WH = 10_000_000


async def create_plan(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    *,
    organization_id: int,
    name: str,
    description: str,
    monthly_fee: int,
    included_wh: int,
    discount_basis_points: int,
    tax_basis_points: int | None = None,
    fee_includes_tax: bool | None = None,
) -> MembershipPlan:
    """The fee's tax (rate, included or not) defaults to the organisation's default tariff's."""
    if not actor.principal.can(Permission.BILLING_MANAGE, organization_id):
        raise Forbidden("requires billing:manage at this organisation")
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME or len(description) > MAX_DESCRIPTION:
        raise InvalidInput(f"name: 1–{MAX_NAME} characters; description at most {MAX_DESCRIPTION}")
    if not 0 <= monthly_fee <= MAX_MONTHLY_FEE:
        raise InvalidInput(f"monthlyFee is 0–{MAX_MONTHLY_FEE} minor units")
    if not 0 <= included_wh <= MAX_INCLUDED_WH or not 0 <= discount_basis_points <= 10_000:
        raise InvalidInput("included energy 0–10,000 kWh; discount 0–100 %")
    if tax_basis_points is not None and not 0 <= tax_basis_points <= MAX_TAX_BASIS_POINTS:
        raise InvalidInput("the tax rate is 0–100 %")
    async with db() as s:
        org = await s.get(Organization, organization_id)
        if org is None:
            raise NotFound("no such organisation")
        taken = await s.exec(
            select(MembershipPlan.id).where(
                col(MembershipPlan.organization_id) == organization_id, col(MembershipPlan.name) == name
            )
        )
        if taken.first() is not None:
            raise InvalidInput(f"a plan named {name!r} exists already")
        default_rate, default_included = await default_tax(s, org)
        plan = MembershipPlan(
            organization_id=organization_id,
            name=name,
            description=description,
            monthly_fee=monthly_fee,
            currency=org.currency,
            included_wh=included_wh,
            discount_basis_points=discount_basis_points,
            tax_basis_points=default_rate if tax_basis_points is None else tax_basis_points,
            fee_includes_tax=default_included if fee_includes_tax is None else fee_includes_tax,
        )
        s.add(plan)
        await s.flush()
        s.add(
            audit.entry(
                actor,
                action="plan.create",
                result="OK",
                organization_id=organization_id,
                target_type="membership_plan",
                target_id=plan.id,
                detail={
                    "name": name,
                    "monthly_fee": monthly_fee,
                    "tax_basis_points": plan.tax_basis_points,
                    "fee_includes_tax": plan.fee_includes_tax,
                },
            )
        )
        await s.commit()
        return plan


async def default_tax(s: AsyncSession, org: Organization) -> tuple[int, bool]:
    """(rate, prices include tax) of the tariff assigned to the whole organisation for
    everyone — what a driver there is usually taxed at; no such tariff: 0 %, included."""
    conn = await s.connection()
    org_wide = [
        a
        for a in await repo.assignments_in_force(conn, [org.id or 0], None)
        if a.location_id is None and a.station_id is None and a.plan_id is None
    ]
    if not org_wide:
        return 0, True
    newest = max(org_wide, key=lambda a: a.id)
    version = (await repo.versions_in_force(conn, [newest.tariff_id], None)).get(newest.tariff_id)
    if version is None:
        return 0, True
    tariff = codec.from_json(version.definition, currency=org.currency, time_zone="UTC")
    return tariff.tax_basis_points, tariff.prices_include_tax


def charged_fee(plan: MembershipPlan) -> int:
    """What the member is charged each month: the fee, plus its tax when it excludes it."""
    if plan.fee_includes_tax:
        return plan.monthly_fee
    return plan.monthly_fee + (plan.monthly_fee * plan.tax_basis_points * 2 + 10_000) // 20_000


async def archive_plan(db: async_sessionmaker[AsyncSession], actor: Actor, *, plan_id: int) -> MembershipPlan:
    """No new subscriptions; current members keep the plan until they cancel."""
    async with db() as s:
        plan = await s.get(MembershipPlan, plan_id)
        if plan is None or not actor.principal.can(Permission.BILLING_READ, plan.organization_id):
            raise NotFound("no such plan")
        if not actor.principal.can(Permission.BILLING_MANAGE, plan.organization_id):
            raise Forbidden("requires billing:manage at this organisation")
        if plan.archived_at is None:
            plan.archived_at = utcnow()
            s.add(plan)
            s.add(
                audit.entry(
                    actor,
                    action="plan.archive",
                    result="OK",
                    organization_id=plan.organization_id,
                    target_type="membership_plan",
                    target_id=plan_id,
                )
            )
            await s.commit()
        return plan


async def plans_of(s: AsyncSession, organization_id: int) -> list[MembershipPlan]:
    """What an app offers drivers at this organisation: its plans not archived."""
    rows = await s.exec(
        select(MembershipPlan)
        .where(
            col(MembershipPlan.organization_id) == organization_id, col(MembershipPlan.archived_at).is_(None)
        )
        .order_by(col(MembershipPlan.monthly_fee), col(MembershipPlan.id))
    )
    return list(rows.all())


async def plans_by_ids(s: AsyncSession, ids: Sequence[int]) -> dict[int, MembershipPlan]:
    rows = await s.exec(select(MembershipPlan).where(col(MembershipPlan.id).in_(list(ids))))
    return {p.id or 0: p for p in rows.all()}


async def my_memberships(s: AsyncSession, user_id: int) -> list[Row[Any]]:
    conn = await s.connection()
    sub = repo.SUBSCRIPTION
    rows = await conn.execute(sa_select(sub).where(sub.c.user_id == user_id).order_by(sub.c.id.desc()))
    return list(rows.all())


SUBSCRIPTION_ID = repo.SUBSCRIPTION.c.id


def subscriptions_of(plan_id: int) -> Any:
    """The memberships of one plan (the caller checked billing:read at its organisation)."""
    return sa_select(repo.SUBSCRIPTION).where(repo.SUBSCRIPTION.c.plan_id == plan_id)
