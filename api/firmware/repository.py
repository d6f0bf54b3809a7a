"""Every query about firmware campaigns, scoped to who asks, and the writes of the service and
the progress job.

Campaigns are diagnostics work: a caller sees and acts on the campaigns of organisations where
they hold `stations:diagnose`, like UpdateFirmware itself. Statements built here cannot return
another tenant's campaign or campaign station, whatever id they are given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, false, func, or_, select, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.auth.principal import Principal, PrincipalKind
from api.auth.roles import ROLE_PERMISSIONS, Permission, Role, parse_permissions
from api.orgs.repository import Page, page, rows
from schema.account_models import ApiKey, Membership, UserAccount
from schema.campaign_models import (
    CampaignState,
    CampaignStationState,
    FirmwareCampaign,
    FirmwareCampaignStation,
)
from schema.models import ChargingStation

Stmt = Select[Any]
CS = CampaignStationState
# Stations whose update is under way: the job watches their station rows.
IN_FLIGHT = frozenset({CS.SENT, CS.DOWNLOADING, CS.DOWNLOADED, CS.INSTALLING})
# Stations whose update is over, one way or the other.
FINISHED = frozenset({CS.INSTALLED, CS.FAILED, CS.REJECTED, CS.SKIPPED})
# Counted against a wave's failure threshold.
FAILURES = frozenset({CS.FAILED, CS.REJECTED})


def _orgs(principal: Principal) -> frozenset[int] | None:
    return principal.organizations_with(Permission.STATIONS_DIAGNOSE)


def readable_campaigns(principal: Principal) -> Stmt:
    stmt = select(FirmwareCampaign)
    orgs = _orgs(principal)
    if orgs is None:
        return stmt
    return stmt.where(col(FirmwareCampaign.organization_id).in_(orgs)) if orgs else stmt.where(false())


def readable_campaign_stations(principal: Principal) -> Stmt:
    stmt = select(FirmwareCampaignStation)
    orgs = _orgs(principal)
    if orgs is None:
        return stmt
    if not orgs:
        return stmt.where(false())
    mine = select(col(FirmwareCampaign.id)).where(col(FirmwareCampaign.organization_id).in_(orgs))
    return stmt.where(col(FirmwareCampaignStation.campaign_id).in_(mine.scalar_subquery()))


async def page_campaigns(
    session: AsyncSession,
    principal: Principal,
    *,
    organization_id: int | None,
    state: CampaignState | None,
    first: int,
    after: int | None,
    count: bool,
) -> Page:
    stmt = readable_campaigns(principal)
    if organization_id is not None:
        stmt = stmt.where(col(FirmwareCampaign.organization_id) == organization_id)
    if state is not None:
        stmt = stmt.where(col(FirmwareCampaign.state) == state.value)
    return await page(
        session, stmt, col(FirmwareCampaign.id), first=first, after=after, newest_first=True, count=count
    )


async def campaigns_by_ids(session: AsyncSession, principal: Principal, ids: Sequence[int]) -> dict[int, Any]:
    found = await rows(session, readable_campaigns(principal).where(col(FirmwareCampaign.id).in_(list(ids))))
    return {r.id: r for r in found}


async def campaign_stations_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[int]
) -> dict[int, Any]:
    stmt = readable_campaign_stations(principal).where(col(FirmwareCampaignStation.id).in_(list(ids)))
    return {r.id: r for r in await rows(session, stmt)}


async def page_campaign_stations(
    session: AsyncSession,
    principal: Principal,
    campaign_id: int,
    *,
    state: CampaignStationState | None,
    wave: int | None,
    first: int,
    after: int | None,
    count: bool,
) -> Page:
    """In wave order, then by row: the order the stations are (or were) sent to."""
    stmt = readable_campaign_stations(principal).where(
        col(FirmwareCampaignStation.campaign_id) == campaign_id
    )
    if state is not None:
        stmt = stmt.where(col(FirmwareCampaignStation.state) == state.value)
    if wave is not None:
        stmt = stmt.where(col(FirmwareCampaignStation.wave) == wave)
    return await page(
        session,
        stmt,
        col(FirmwareCampaignStation.id),
        first=first,
        after=after,
        newest_first=False,
        count=count,
    )


async def state_counts(session: AsyncSession, campaign_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Stations per state for each campaign (the caller already read the campaigns)."""
    t = FirmwareCampaignStation
    columns: list[Any] = [col(t.campaign_id), col(t.state), func.count()]
    stmt = (
        select(*columns)
        .where(col(t.campaign_id).in_(list(campaign_ids)))
        .group_by(col(t.campaign_id), col(t.state))
    )
    out: dict[int, dict[str, int]] = {i: {} for i in campaign_ids}
    for campaign_id, state, n in (tuple(r) for r in await rows(session, stmt)):
        out[int(campaign_id)][str(state)] = int(n)
    return out


# --- the service's reads and writes (one mutation's session) ---


@dataclass(frozen=True, slots=True)
class StationFilter:
    """Which of the organisation's stations a campaign takes; the criteria combine with AND,
    each list with OR within itself. Stations pending approval never take part."""

    station_ids: tuple[int, ...] = ()
    location_ids: tuple[int, ...] = ()
    vendor: str | None = None
    model: str | None = None
    firmware_versions: tuple[str, ...] = ()


async def matching_stations(
    session: AsyncSession, organization_id: int, f: StationFilter, limit: int
) -> list[int]:
    st = ChargingStation
    stmt = select(col(st.id)).where(
        col(st.organization_id) == organization_id, col(st.registration_status) == "Accepted"
    )
    if f.station_ids:
        stmt = stmt.where(col(st.id).in_(f.station_ids))
    if f.location_ids:
        stmt = stmt.where(col(st.location_id).in_(f.location_ids))
    if f.vendor is not None:
        stmt = stmt.where(func.lower(col(st.vendor)) == f.vendor.lower())
    if f.model is not None:
        stmt = stmt.where(func.lower(col(st.model)) == f.model.lower())
    if f.firmware_versions:
        stmt = stmt.where(col(st.firmware_version).in_(f.firmware_versions))
    found = await rows(session, stmt.order_by(col(st.id)).limit(limit + 1))
    return [int(r[0]) for r in found]


async def lock_campaign(session: AsyncSession, campaign_id: int) -> FirmwareCampaign | None:
    """The campaign, locked until the transaction ends (PostgreSQL), so a state change and the
    job's wave claim serialise. SQLite has one writer at a time and ignores FOR UPDATE."""
    stmt = select(FirmwareCampaign).where(col(FirmwareCampaign.id) == campaign_id).with_for_update()
    return (await execute(session, stmt)).scalars().first()


async def skip_queued(session: AsyncSession, campaign_id: int, message: str, now: datetime) -> int:
    """Every station of the campaign not sent to yet (queued, or offline and waiting for a
    retry) is skipped: an aborted campaign sends nothing more."""
    t = FirmwareCampaignStation
    result = await execute(
        session,
        update(t)
        .where(
            col(t.campaign_id) == campaign_id,
            or_(col(t.state) == CS.QUEUED.value, col(t.state) == CS.OFFLINE.value),
        )
        .values(state=CS.SKIPPED.value, message=message, updated_at=now),
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def execute(session: AsyncSession, stmt: Any) -> Any:
    """A SQLAlchemy statement (update, several columns, a count) on the session: sqlmodel's
    `exec` runs it like `execute`, without the latter's deprecation warning, but types only its
    own selects."""
    return await session.exec(stmt)


async def may_still_run(session: AsyncSession, c: FirmwareCampaign, now: datetime) -> bool:
    """Whether whoever started or last resumed the campaign still holds stations:diagnose in
    its organisation: a member who left or was demoted, or a revoked or expired key, sends
    nothing more. The platform admin token is the deployment's own and always may."""
    needed = Permission.STATIONS_DIAGNOSE
    kind = PrincipalKind(c.run_by_kind) if c.run_by_kind else None
    if kind is PrincipalKind.PLATFORM:
        return True
    if kind is PrincipalKind.USER and c.run_by_user_id is not None:
        user = await session.get(UserAccount, c.run_by_user_id)
        if user is None or user.deleted_at is not None:
            return False
        if user.is_platform_admin:
            return True
        stmt = select(col(Membership.role)).where(
            col(Membership.user_id) == c.run_by_user_id, col(Membership.organization_id) == c.organization_id
        )
        role = (await execute(session, stmt)).scalar()
        return role in Role._value2member_map_ and needed in ROLE_PERMISSIONS[Role(role)]
    if kind is PrincipalKind.API_KEY and c.run_by_api_key_id is not None:
        key = await session.get(ApiKey, c.run_by_api_key_id)
        return (
            key is not None
            and key.organization_id == c.organization_id
            and key.revoked_at is None
            and (key.expires_at is None or key.expires_at > now)
            and needed in parse_permissions(key.permissions)
        )
    return False
