"""Operators manage sponsors and sponsorships and issue monthly statements (billing:manage)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.auth.roles import Permission
from api.network.types import parse_global_id
from api.orgs.types import parse_organization_id
from api.sponsorships import manage, reports
from api.sponsorships import repository as repo
from api.sponsorships.types import SponsorNode, SponsorshipNode, SponsorStatement
from schema.errors import Forbidden


@strawberry.input
class CreateSponsorInput:
    organization_id: relay.GlobalID
    name: str
    contact_email: str | None = None
    billing_address: str | None = None
    vat_id: str | None = None


@strawberry.input
class SponsorshipWindowInput:
    start: str = strawberry.field(description="HH:MM, the location's local time.")
    end: str = strawberry.field(description="HH:MM; at or before `start`: runs past midnight.")
    days: list[int] = strawberry.field(default_factory=list, description="0 = Monday … 6; empty: every day.")


@strawberry.input(description="Exactly one of capAmount (minor units) and capWh per session.")
class CreateSponsorshipInput:
    sponsor_id: relay.GlobalID
    message: str = strawberry.field(description="Shown by apps: 'Charging here is sponsored by …'.")
    budget: int = strawberry.field(description="Total, in minor units of the organisation's currency.")
    location_ids: list[relay.GlobalID] = strawberry.field(default_factory=list)
    station_ids: list[relay.GlobalID] = strawberry.field(default_factory=list)
    windows: list[SponsorshipWindowInput] = strawberry.field(
        default_factory=list, description="Empty: at any time."
    )
    cap_amount: int | None = None
    cap_wh: int | None = None
    starts_at: datetime | None = strawberry.field(default=None, description="Now by default.")
    ends_at: datetime | None = None


@strawberry.input
class UpdateSponsorshipInput:
    id: relay.GlobalID
    message: str | None = None
    windows: list[SponsorshipWindowInput] | None = None
    budget_increase: int | None = strawberry.field(
        default=None, description="Minor units added to the budget."
    )


def _windows(windows: list[SponsorshipWindowInput]) -> list[dict[str, Any]]:
    return [{"start": w.start, "end": w.end, "days": w.days} for w in windows]


async def _node(info: Info, row: Any) -> SponsorshipNode:
    async with info.context.db() as s:
        totals = await repo.totals(await s.connection(), [row.id])
    return SponsorshipNode.from_row(row, totals[row.id])


@strawberry.type
class SponsorshipsMutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="A sponsor of the organisation.")
    async def create_sponsor(self, info: Info, input: CreateSponsorInput) -> SponsorNode:
        ctx = info.context
        row = await manage.create_sponsor(
            ctx.db,
            ctx.actor,
            organization_id=parse_organization_id(input.organization_id),
            name=input.name,
            contact_email=input.contact_email,
            billing_address=input.billing_address,
            vat_id=input.vat_id,
        )
        return SponsorNode.from_row(row)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Sessions starting at these locations or stations, inside the windows, are "
        "sponsored up to the cap while budget is left.",
    )
    async def create_sponsorship(self, info: Info, input: CreateSponsorshipInput) -> SponsorshipNode:
        ctx = info.context
        terms = manage.SponsorshipTerms(
            sponsor_id=parse_global_id(input.sponsor_id, "Sponsor"),
            message=input.message,
            location_ids=[parse_global_id(i, "Location") for i in input.location_ids],
            station_ids=[parse_global_id(i, "Station") for i in input.station_ids],
            windows=_windows(input.windows),
            cap_amount=input.cap_amount,
            cap_wh=input.cap_wh,
            budget=input.budget,
            starts_at=input.starts_at,
            ends_at=input.ends_at,
        )
        return await _node(info, await manage.create_sponsorship(ctx.db, ctx.actor, terms))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="New message or windows (for sessions from now on), or a larger budget.",
    )
    async def update_sponsorship(self, info: Info, input: UpdateSponsorshipInput) -> SponsorshipNode:
        ctx = info.context
        row = await manage.update_sponsorship(
            ctx.db,
            ctx.actor,
            sponsorship_id=parse_global_id(input.id, "Sponsorship"),
            message=input.message,
            windows=None if input.windows is None else _windows(input.windows),
            budget_increase=input.budget_increase,
        )
        return await _node(info, row)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="No new session claims it; sessions that already did are still covered.",
    )
    async def end_sponsorship(self, info: Info, id: relay.GlobalID) -> SponsorshipNode:
        ctx = info.context
        row = await manage.end_sponsorship(
            ctx.db, ctx.actor, sponsorship_id=parse_global_id(id, "Sponsorship")
        )
        return await _node(info, row)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Each sponsor's statement of the month (YYYY-MM, UTC), issued once; the month's "
        "statements of the organisation. Only a month that is over can be issued. "
        "Errors: FORBIDDEN, INVALID_INPUT (not a month, or not over yet).",
    )
    async def issue_sponsor_statements(
        self, info: Info, organization_id: relay.GlobalID, month: str
    ) -> list[SponsorStatement]:
        ctx = info.context
        org = parse_organization_id(organization_id)
        if not ctx.principal.can(Permission.BILLING_MANAGE, org):
            raise Forbidden("requires billing:manage at this organisation")
        async with ctx.db() as s:
            rows = await reports.issue_sponsor_statements(await s.connection(), month, organization_id=org)
            await s.commit()
        return [SponsorStatement.from_row(r) for r in rows]
