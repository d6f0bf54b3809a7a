"""Sponsors, sponsorships, their reports and statements, for billing:read in the organisation."""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.types import Info

from api.auth.permissions import IsAuthenticated
from api.network.types import parse_global_id
from api.orgs.types import connection
from api.pagination import Connection, clamp_first, decode_cursor, wants_total
from api.sponsorships import reports
from api.sponsorships import repository as repo
from api.sponsorships.types import SponsorNode, SponsorshipNode, SponsorshipReport, SponsorStatement

# Statements of one month: one per sponsor; more than this is a listing for an export.
MAX_STATEMENTS = 200


@strawberry.type
class SponsorshipsQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Sponsors of the organisations where the caller has billing:read, newest first.",
    )
    async def sponsors(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[SponsorNode]:
        async with info.context.db() as s:
            p = await repo.page_sponsors(
                s,
                info.context.principal,
                first=clamp_first(first),
                after=decode_cursor("sponsor", after),
                count=wants_total(info),
            )
        return connection(SponsorNode.from_row, p, "sponsor")

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Sponsorships with their budget and use (billing:read), newest first.",
    )
    async def sponsorships(
        self,
        info: Info,
        sponsor_id: relay.GlobalID | None = None,
        include_ended: bool = False,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[SponsorshipNode]:
        async with info.context.db() as s:
            p = await repo.page_sponsorships(
                s,
                info.context.principal,
                sponsor_id=None if sponsor_id is None else parse_global_id(sponsor_id, "Sponsor"),
                include_ended=include_ended,
                first=clamp_first(first),
                after=decode_cursor("sponsorship", after),
                count=wants_total(info),
            )
            totals = await repo.totals(await s.connection(), [r.id for r in p.rows])
        return connection(lambda r: SponsorshipNode.from_row(r, totals[r.id]), p, "sponsorship")

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="A sponsorship's month (YYYY-MM, UTC): sessions, kWh, amount and impressions per "
        "day; null when the caller cannot read the sponsorship.",
    )
    async def sponsorship_report(
        self, info: Info, id: relay.GlobalID, month: str
    ) -> SponsorshipReport | None:
        pk = parse_global_id(id, "Sponsorship")
        async with info.context.db() as s:
            found = await repo.sponsorships_by_ids(s, info.context.principal, [pk])
            if pk not in found:
                return None
            conn = await s.connection()
            figures = await reports.month_figures(conn, [pk], month)
            totals = await repo.totals(conn, [pk])
        return SponsorshipReport.build(SponsorshipNode.from_row(found[pk], totals[pk]), figures)

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Issued monthly sponsor statements where the caller has billing:read.",
    )
    async def sponsor_statements(self, info: Info, month: str | None = None) -> list[SponsorStatement]:
        if month is not None:
            reports.month_bounds(month)
        async with info.context.db() as s:
            p = await repo.page_statements(
                s, info.context.principal, month=month, first=MAX_STATEMENTS, after=None, count=False
            )
        return [SponsorStatement.from_row(r) for r in p.rows]
