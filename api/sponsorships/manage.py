"""Operators set up sponsors and their sponsorships (billing:manage in the organisation).

A sponsorship's money is in its organisation's currency. Its budget can only grow (a sponsor
tops it up); what sessions already reserved or spent is never taken back, so ending a
sponsorship stops new claims while sessions that started under it are still covered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit import service as audit
from api.audit.service import Actor
from api.auth.roles import Permission
from api.sponsorships import repository as repo
from api.sponsorships import rules
from schema.errors import Forbidden, InvalidInput, NotFound
from schema.models import ChargingStation, Location, Organization
from schema.sponsorship_models import Sponsor, Sponsorship
from schema.timeutil import utcnow

MAX_NAME = 80
# A budget above ten million major units is a typo, not a campaign.
MAX_BUDGET = 1_000_000_000
MAX_CAP_WH = 1_000_000  # 1 MWh per session


def _can(actor: Actor, organization_id: int) -> None:
    if not actor.principal.can(Permission.BILLING_MANAGE, organization_id):
        raise Forbidden("requires billing:manage at this organisation")


def _text(value: str | None, limit: int, what: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(f"{what}: at most {limit} characters")
    return value or None


async def create_sponsor(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    *,
    organization_id: int,
    name: str,
    contact_email: str | None,
    billing_address: str | None,
    vat_id: str | None,
) -> Sponsor:
    _can(actor, organization_id)
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise InvalidInput(f"name: 1–{MAX_NAME} characters")
    email = _text(contact_email, 254, "contact email")
    if email is not None and "@" not in email:
        raise InvalidInput("contact email: not an email address")
    async with db() as s:
        if await s.get(Organization, organization_id) is None:
            raise NotFound("no such organisation")
        taken = await s.exec(
            select(Sponsor.id).where(  # type: ignore[call-overload]
                col(Sponsor.organization_id) == organization_id, col(Sponsor.name) == name
            )
        )
        if taken.first() is not None:
            raise InvalidInput(f"a sponsor named {name!r} exists already")
        row = Sponsor(
            organization_id=organization_id,
            name=name,
            contact_email=email,
            billing_address=_text(billing_address, 500, "billing address"),
            vat_id=_text(vat_id, 40, "VAT id"),
        )
        s.add(row)
        await s.flush()
        s.add(
            audit.entry(
                actor,
                action="sponsor.create",
                result="OK",
                organization_id=organization_id,
                target_type="sponsor",
                target_id=row.id,
                detail={"name": name},
            )
        )
        await s.commit()
        return row


@dataclass(frozen=True, slots=True)
class SponsorshipTerms:
    sponsor_id: int
    message: str
    location_ids: list[int]
    station_ids: list[int]
    windows: list[dict[str, Any]]
    cap_amount: int | None
    cap_wh: int | None
    budget: int
    starts_at: datetime | None
    ends_at: datetime | None


async def _places(s: AsyncSession, organization_id: int, terms: SponsorshipTerms) -> None:
    if not terms.location_ids and not terms.station_ids:
        raise InvalidInput("name at least one location or station")
    if len(terms.location_ids) + len(terms.station_ids) > rules.MAX_PLACES:
        raise InvalidInput(f"at most {rules.MAX_PLACES} locations and stations")
    for model, ids, what in (
        (Location, terms.location_ids, "location"),
        (ChargingStation, terms.station_ids, "station"),
    ):
        if not ids:
            continue
        found = await s.exec(
            select(model.id).where(  # type: ignore[call-overload, attr-defined]
                col(model.id).in_(ids),  # type: ignore[attr-defined]
                col(model.organization_id) == organization_id,  # type: ignore[attr-defined]
            )
        )
        if len(set(found.all())) != len(set(ids)):
            raise NotFound(f"no such {what} in the sponsor's organisation")


def _check_terms(terms: SponsorshipTerms) -> None:
    if (terms.cap_amount is None) == (terms.cap_wh is None):
        raise InvalidInput("give exactly one per-session cap: an amount or an energy (Wh)")
    if terms.cap_amount is not None and not 0 < terms.cap_amount <= MAX_BUDGET:
        raise InvalidInput("the per-session amount must be positive")
    if terms.cap_wh is not None and not 0 < terms.cap_wh <= MAX_CAP_WH:
        raise InvalidInput(f"the per-session energy is 1–{MAX_CAP_WH} Wh")
    if not 0 < terms.budget <= MAX_BUDGET:
        raise InvalidInput("the budget must be positive")
    if terms.starts_at is not None and terms.ends_at is not None and terms.ends_at <= terms.starts_at:
        raise InvalidInput("the sponsorship ends before it starts")


async def create_sponsorship(
    db: async_sessionmaker[AsyncSession], actor: Actor, terms: SponsorshipTerms
) -> Sponsorship:
    _check_terms(terms)
    message = rules.check_message(terms.message)
    windows = rules.windows_json(rules.parse_windows(terms.windows))
    async with db() as s:
        found = await repo.sponsors_by_ids(s, actor.principal, [terms.sponsor_id])
        if terms.sponsor_id not in found:
            raise NotFound("no such sponsor")
        org = found[terms.sponsor_id].organization_id
        _can(actor, org)
        await _places(s, org, terms)
        organization = await s.get(Organization, org)
        assert organization is not None
        row = Sponsorship(
            organization_id=org,
            sponsor_id=terms.sponsor_id,
            currency=organization.currency,
            message=message,
            location_ids=sorted(set(terms.location_ids)),
            station_ids=sorted(set(terms.station_ids)),
            windows=windows,
            cap_amount=terms.cap_amount,
            cap_wh=terms.cap_wh,
            budget=terms.budget,
            starts_at=terms.starts_at or utcnow(),
            ends_at=terms.ends_at,
        )
        s.add(row)
        await s.flush()
        s.add(
            audit.entry(
                actor,
                action="sponsorship.create",
                result="OK",
                organization_id=org,
                target_type="sponsorship",
                target_id=row.id,
                detail={"sponsor_id": terms.sponsor_id, "budget": terms.budget},
            )
        )
        await s.commit()
        return row


async def _owned(s: AsyncSession, actor: Actor, sponsorship_id: int) -> Sponsorship:
    if sponsorship_id not in await repo.sponsorships_by_ids(s, actor.principal, [sponsorship_id]):
        raise NotFound("no such sponsorship")
    locking = (await s.connection()).dialect.name == "postgresql"  # claims change the same row
    row = await s.get(Sponsorship, sponsorship_id, with_for_update=locking)
    assert row is not None
    _can(actor, row.organization_id)
    return row


async def update_sponsorship(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    *,
    sponsorship_id: int,
    message: str | None,
    windows: list[dict[str, Any]] | None,
    budget_increase: int | None,
) -> Sponsorship:
    """New message or windows apply to sessions from now on; a budget increase lets an
    exhausted sponsorship take claims again."""
    async with db() as s:
        row = await _owned(s, actor, sponsorship_id)
        if row.state == "ended":
            raise InvalidInput("the sponsorship has ended")
        detail: dict[str, Any] = {}
        if message is not None:
            row.message = detail["message"] = rules.check_message(message)
        if windows is not None:
            row.windows = detail["windows"] = rules.windows_json(rules.parse_windows(windows))
        if budget_increase is not None:
            if not 0 < budget_increase or row.budget + budget_increase > MAX_BUDGET:
                raise InvalidInput("a budget can only grow, up to the maximum")
            row.budget += budget_increase
            detail["budget"] = row.budget
            if row.state == "exhausted" and row.spent + row.reserved < row.budget:
                row.state = "active"
        s.add(row)
        s.add(
            audit.entry(
                actor,
                action="sponsorship.update",
                result="OK",
                organization_id=row.organization_id,
                target_type="sponsorship",
                target_id=sponsorship_id,
                detail=detail,
            )
        )
        await s.commit()
        await s.refresh(row)
        return row


async def end_sponsorship(
    db: async_sessionmaker[AsyncSession], actor: Actor, *, sponsorship_id: int
) -> Sponsorship:
    """No new session claims it; sessions that already did are still covered."""
    async with db() as s:
        row = await _owned(s, actor, sponsorship_id)
        if row.state != "ended":
            row.state = "ended"
            row.ended_at = utcnow()
            s.add(row)
            s.add(
                audit.entry(
                    actor,
                    action="sponsorship.end",
                    result="OK",
                    organization_id=row.organization_id,
                    target_type="sponsorship",
                    target_id=sponsorship_id,
                )
            )
            await s.commit()
            await s.refresh(row)
        return row
