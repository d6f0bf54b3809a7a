"""Monthly invoices: a sponsor's month and a member's paid Stripe invoice each become exactly one
numbered invoice — through the real gateway, worker, API and (for members) the real Stripe SDK
against the local Stripe-format server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.invoicing.months import month_containing
from api.sponsorships.reports import issue_last_months_statements
from api.worker.service import DurableWork
from tests.builders import make_location, make_org, make_station
from tests.conftest import ChargerFactory
from tests.dbutil import fetch
from tests.graphql_client import gql
from tests.test_access_matrix import gid
from tests.test_receipts import pdf_text
from tests.test_sponsorships import _in_force_since, _session, sponsorship
from tests.test_tariffs import ASSIGN, OPERATOR_TOKEN, create, ok

CREATE_SPONSOR = """
mutation ($o: ID!) { createSponsor(input: {organizationId: $o, name: "Mall", contactEmail: "ads@mall.example",
  billingAddress: "Mall Str. 5\\n10115 Berlin", vatId: "DE999999999"}) { id } }"""
INVOICE_FIELDS = """id number kind periodStart periodEnd net tax total amountDue
  seller { name } buyer { kind name email address vatId }
  lines { description quantity unit amount taxBasisPoints }
  taxBreakdown { taxBasisPoints net tax gross } downloadUrl(expiresInMinutes: 5)"""
INVOICES = f"""
query ($kind: InvoiceKind, $month: String) {{ invoices(first: 10, kind: $kind, month: $month) {{
  edges {{ node {{ {INVOICE_FIELDS} }} }} }} }}"""
ISSUE_STATEMENTS = """
mutation ($o: ID!, $m: String!) {
  issueSponsorStatements(organizationId: $o, month: $m) { amount invoice { number } } }"""
STATEMENTS = "query ($m: String) { sponsorStatements(month: $m) { month amount invoice { number total } } }"


def _next_month(at: datetime) -> datetime:
    """Early on the 2nd of the month after `at`: when the daily job bills `at`'s month."""
    first = (at.replace(day=1) + timedelta(days=32)).replace(day=2, hour=3, minute=0, second=0, microsecond=0)
    return first.astimezone(UTC)


async def _two_sites_at_two_tax_rates(http: httpx.AsyncClient, engine: AsyncEngine, since: datetime) -> int:
    """Mall East (40 ct/kWh incl. 20 % tax) with CP-1, Mall West (40 ct incl. 7 %) with CP-2."""
    org = await make_org(engine)
    for name, cp, rate in (("Mall East", "CP-1", 2000), ("Mall West", "CP-2", 700)):
        site = await make_location(engine, name=name)
        await make_station(engine, charge_point_id=cp, location_id=site)
        tariff = await create(http, org, f"{name} tariff", {"energyPerKwh": "40", "taxBasisPoints": rate})
        await ok(http, ASSIGN, t=tariff, l=gid("Location", site))
    await _in_force_since(engine, since)
    return org


async def _mall_sponsors(http: httpx.AsyncClient, engine: AsyncEngine, base: datetime, *, sites: int) -> int:
    """The organisation, where Mall pays up to €3.00 of every session at the first `sites`."""
    org = await _two_sites_at_two_tax_rates(http, engine, base - timedelta(hours=1))
    mall = (await ok(http, CREATE_SPONSOR, o=gid("Organization", org)))["createSponsor"]["id"]
    found = await fetch(engine, "SELECT id FROM location ORDER BY id")
    await sponsorship(
        http,
        mall,
        locationIds=[gid("Location", s["id"]) for s in found[:sites]],
        capAmount=300,
        budget=10_000,
        startsAt=(base - timedelta(hours=1)).isoformat(),
    )
    return org


@dataclass
class World:
    http: httpx.AsyncClient
    engine: AsyncEngine
    connect_charger: ChargerFactory


@pytest.fixture
def world(
    http: httpx.AsyncClient, engine: AsyncEngine, durable: DurableWork, connect_charger: ChargerFactory
) -> World:
    """The API, the gateway and the worker (sessions are charged as they end)."""
    return World(http, engine, connect_charger)


async def _one_sponsored_session(world: World) -> tuple[int, datetime]:
    """Mall pays €3.00 of a €4.00 session at Mall East that ended an hour ago: (org, its start)."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=90)
    org = await _mall_sponsors(world.http, world.engine, base, sites=1)
    await _session(world.engine, await world.connect_charger("CP-1"), wh=10_000, base=base)
    return org, base


class TestASponsorsMonthIsInvoicedOnce:
    async def test_two_tax_rates_make_two_lines_and_a_rerun_issues_nothing(self, world: World) -> None:
        http, engine, connect_charger = world.http, world.engine, world.connect_charger
        # given a sponsor paying up to €3.00 of every session at both sites
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=90)
        await _mall_sponsors(http, engine, base, sites=2)
        # and two 10 kWh sessions (€4.00 each) at East, one 5 kWh session (€2.00) at West
        east, west = await connect_charger("CP-1"), await connect_charger("CP-2")
        await _session(engine, east, wh=10_000, base=base)
        await _session(engine, east, wh=10_000, base=base + timedelta(minutes=30))
        await _session(engine, west, wh=5_000, base=base)
        # when the daily job runs in the next month, twice
        job_day = _next_month(base)
        month = month_containing(base)
        assert await issue_last_months_statements(engine, now=job_day) == 1
        assert await issue_last_months_statements(engine, now=job_day) == 1
        # then one invoice to the sponsor, one line per site and rate, taxed exactly per rate
        [invoice] = [
            e["node"]
            for e in (await ok(http, INVOICES, kind="SPONSORSHIP", month=month))["invoices"]["edges"]
        ]
        assert invoice["number"] == f"I-{job_day.year}-000001"
        assert invoice["kind"] == "SPONSORSHIP"
        assert invoice["buyer"] == {
            "kind": "sponsor",
            "name": "Mall",
            "email": "ads@mall.example",
            "address": "Mall Str. 5\n10115 Berlin",
            "vatId": "DE999999999",
        }
        assert invoice["seller"] == {"name": "Acme"}
        assert invoice["lines"] == [
            {
                "description": "Sponsored charging at Mall East: 2 sessions",
                "quantity": "20",
                "unit": "kWh",
                "amount": 600,
                "taxBasisPoints": 2000,
            },
            {
                "description": "Sponsored charging at Mall West: 1 session",
                "quantity": "5",
                "unit": "kWh",
                "amount": 200,
                "taxBasisPoints": 700,
            },
        ]
        assert invoice["taxBreakdown"] == [
            {"taxBasisPoints": 700, "net": 187, "tax": 13, "gross": 200},
            {"taxBasisPoints": 2000, "net": 500, "tax": 100, "gross": 600},
        ]
        assert (invoice["net"], invoice["tax"], invoice["total"], invoice["amountDue"]) == (
            687,
            113,
            800,
            800,
        )
        assert invoice["periodStart"].startswith(f"{month}-01T00:00:00")
        # and the statement links to it and agrees with it
        statements = (await ok(http, STATEMENTS, m=month))["sponsorStatements"]
        assert statements == [
            {"month": month, "amount": 800, "invoice": {"number": invoice["number"], "total": 800}}
        ]
        # and the drivers' receipts (€1.00, €1.00, €0 — the last one fully sponsored) count
        # in their own series, without gaps
        receipts = await fetch(engine, "SELECT number FROM invoice WHERE kind = 'receipt' ORDER BY sequence")
        year = base.year
        assert [r["number"] for r in receipts] == [f"R-{year}-000001", f"R-{year}-000002"]
        assert len(await fetch(engine, "SELECT id FROM invoice WHERE kind = 'invoice'")) == 1
        # and the PDF downloads through its signed link
        response = await http.get(invoice["downloadUrl"])
        assert response.status_code == 200 and response.content.startswith(b"%PDF-")
        text = pdf_text(response.content)
        assert invoice["number"] in text and "DE999999999" in text and "Mall East" in text
        # and a filter for another kind or month finds nothing
        assert (await ok(http, INVOICES, kind="MEMBERSHIP"))["invoices"]["edges"] == []
        assert (await ok(http, INVOICES, month="2020-01"))["invoices"]["edges"] == []

    async def test_a_month_not_over_yet_is_not_invoiced(self, world: World) -> None:
        http, engine = world.http, world.engine
        # given a sponsored session this month
        org, _ = await _one_sponsored_session(world)
        now = datetime.now(UTC)
        month = month_containing(now)
        # when the daily job runs within the month, and someone asks for the month's statements
        assert await issue_last_months_statements(engine, now=now) == 0
        refused = await gql(
            http, ISSUE_STATEMENTS, {"o": gid("Organization", org), "m": month}, token=OPERATOR_TOKEN
        )
        # then the request is refused and nothing is issued or invoiced yet
        assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT", refused
        assert await fetch(engine, "SELECT id FROM sponsor_statement") == []
        assert await fetch(engine, "SELECT id FROM invoice WHERE kind = 'invoice'") == []
        # when the job runs after the month: the whole month is issued and invoiced
        await issue_last_months_statements(engine, now=_next_month(now))
        statements = (await ok(http, STATEMENTS, m=month))["sponsorStatements"]
        assert [(s["amount"], s["invoice"]["total"]) for s in statements] == [(300, 300)]

    async def test_two_job_runs_racing_issue_one_invoice(self, world: World) -> None:
        engine = world.engine
        # given a sponsored session in a month that is over by the time the job runs
        _, base = await _one_sponsored_session(world)
        job_day = _next_month(base)
        # when two workers run the daily job at the same moment
        await asyncio.gather(*(issue_last_months_statements(engine, now=job_day) for _ in range(2)))
        # then one statement, one invoice, numbered 1
        invoices = await fetch(engine, "SELECT number, total FROM invoice WHERE kind = 'invoice'")
        assert invoices == [{"number": f"I-{job_day.year}-000001", "total": 300}]
        assert len(await fetch(engine, "SELECT id FROM sponsor_statement")) == 1
