"""Receipts through the real system: a session ends at a real charger, the worker prices it and
issues its receipt, the driver reads it in GraphQL and downloads its PDF through a signed link.

Numbers are gap-free per organisation and year however the receipts are issued: by the worker's
handler, by two worker replicas at once, by the catch-up job racing them, or by a transaction
that rolls back (which gives its numbers back).
"""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.invoicing import invoices, links, receipts
from api.worker.jobs import default_registry
from api.worker.processor import Processor
from api.worker.service import DurableWork
from schema import outbox
from schema.db import session_factory
from schema.events import SessionCharged
from schema.models import ChargingStation
from schema.timeutil import to_ocpp, utcnow
from tests.account_builders import DEFAULT_PASSWORD, give_token, make_user, sign_in
from tests.builders import ACCEPTED_TAGS, make_org
from tests.charge_builders import make_charged_session
from tests.conftest import OPERATOR_TOKEN, ApiServer, ApiServerFactory, ChargerFactory
from tests.dbutil import fetch, scalar
from tests.graphql_client import gql
from tests.ocpp201 import T0, Charger201Factory, connect201, register, tx_event
from tests.test_access_matrix import gid
from tests.test_remote_control import eventually
from tests.test_tariffs import ASSIGN, _in_force_since, _meter, _other_org, _status, create, ok

__all__ = ["connect201"]  # the fixture, imported for pytest

DOCUMENT_SECRET = "receipts-test-secret"
MY_RECEIPTS = """
{ myReceipts(first: 10) { edges { node {
    id number issuedAt currency net tax total totalFormatted amountDue
    seller { name legalName address vatId }
    buyer { kind name email card }
    lines { description quantity unit unitPrice amount taxBasisPoints }
    taxBreakdown { taxBasisPoints net tax gross }
    session { chargePointId connectorId locationName address startedAt stoppedAt energyWh
              meterStartWh meterStopWh }
    transaction { id }
} } } }"""
DOWNLOAD = """
query ($id: ID!, $m: Int) { node(id: $id) { ... on Receipt { number downloadUrl(expiresInMinutes: $m) } } }"""
DELETE_ACCOUNT = "mutation ($input: DeleteAccountInput!) { deleteAccount(input: $input) }"
UPDATE_BILLING = """
mutation ($o: ID!, $input: BillingDetailsInput!) {
  updateBillingDetails(organizationId: $o, input: $input) { name legalName address vatId email } }"""
RECEIPTS = "{ receipts(first: 50) { edges { node { id number buyer { name } } } } }"


@pytest.fixture
async def api_server(api_server_factory: ApiServerFactory) -> ApiServer:
    """The API with a configured link key, so a test can sign links the server accepts."""
    return await api_server_factory(CHARGENET_DOCUMENT_SECRET=DOCUMENT_SECRET)


async def _billing_details(http: httpx.AsyncClient, org: int) -> None:
    details = {
        "legalName": "Acme Charging GmbH",
        "address": "Hauptstr. 1\n10115 Berlin",
        "vatId": "de123456789",
    }
    data = await ok(http, UPDATE_BILLING, o=gid("Organization", org), input=details)
    assert data["updateBillingDetails"]["vatId"] == "DE123456789"


async def _session(cp: Any, tag: str, base: Any, *, meter_start: int, meter_stop: int) -> int:
    at = [to_ocpp(base + timedelta(minutes=m)) for m in (0, 20, 30)]
    start = {"connectorId": 1, "idTag": tag, "meterStart": meter_start, "timestamp": at[0]}
    tx = int((await cp.call("StartTransaction", start))["transactionId"])
    await cp.call("StatusNotification", _status("Charging", at[0]))
    await cp.call("MeterValues", _meter(tx, meter_stop, at[1]))
    await cp.call("StopTransaction", {"transactionId": tx, "meterStop": meter_stop, "timestamp": at[2]})
    await cp.call("StatusNotification", _status("Available", at[2]))
    return tx


def pdf_text(body: bytes) -> str:
    """The text of every (Flate-compressed) content stream of a PDF."""
    out = []
    for raw in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", body, re.S):
        try:
            out.append(zlib.decompress(raw).decode("cp1252", "replace"))
        except zlib.error:
            out.append(raw.decode("cp1252", "replace"))
    return "\n".join(out)


class TestEachPaidSessionGetsAReceipt:
    async def test_the_driver_reads_the_receipt_of_a_session_at_a_real_charger(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        api_server: ApiServer,
        station: int,
        durable: DurableWork,
        connect_charger: ChargerFactory,
    ) -> None:
        # given €0.40/kWh plus a €0.50 fee, 19 % tax included, and the seller's details
        org = await make_org(engine)
        await _billing_details(http, org)
        prices = {"energyPerKwh": "40", "sessionFee": 50, "taxBasisPoints": 1900}
        await ok(http, ASSIGN, t=await create(http, org, "Standard", prices))
        base = utcnow().replace(microsecond=0) - timedelta(minutes=40)
        await _in_force_since(engine, base - timedelta(hours=1))
        # and a driver whose card starts the session
        dana = await make_user(engine, email="dana@example.com", display_name="Dana Driver")
        await give_token(engine, user_id=dana, token="DANA-CARD", organization_id=org)
        token = (await sign_in(engine, api_server.app.state.auth.keys, user_id=dana)).access_token
        cp = await connect_charger("CP-1")
        # when she charges 5 kWh
        tx = await _session(cp, "DANA-CARD", base, meter_start=10_000, meter_stop=15_000)
        # then the worker issues receipt 1 of this year
        assert await eventually(lambda: _receipts(engine, 1))
        edges = (await ok(http, MY_RECEIPTS, token=token))["myReceipts"]["edges"]
        assert len(edges) == 1
        r = edges[0]["node"]
        charge = (await fetch(engine, "SELECT net, tax, total FROM session_charge"))[0]
        assert r["number"] == f"R-{utcnow().year}-000001"
        assert (r["total"], r["totalFormatted"], r["amountDue"]) == (250, "€2.50", 250)
        assert (r["net"], r["tax"]) == (charge["net"], charge["tax"]) == (210, 40)
        assert r["seller"] == {
            "name": "Acme",
            "legalName": "Acme Charging GmbH",
            "address": "Hauptstr. 1\n10115 Berlin",
            "vatId": "DE123456789",
        }
        assert r["buyer"] == {
            "kind": "driver",
            "name": "Dana Driver",
            "email": "dana@example.com",
            "card": None,
        }
        assert [(li["description"], li["quantity"], li["amount"]) for li in r["lines"]] == [
            ("Energy", "5", 200),
            ("Session fee", "1", 50),
        ]
        assert r["taxBreakdown"] == [{"taxBasisPoints": 1900, "net": 210, "tax": 40, "gross": 250}]
        s = r["session"]
        assert (s["chargePointId"], s["connectorId"], s["energyWh"]) == ("CP-1", 1, 5_000)
        assert (s["meterStartWh"], s["meterStopWh"]) == (10_000, 15_000)
        assert s["locationName"] == "Site of CP-1" and s["address"] == "Berlin, DE"
        assert s["startedAt"].startswith(base.strftime("%Y-%m-%dT%H:%M"))
        assert r["transaction"] == {"id": gid("Transaction", tx)}
        # and an anonymous card's session gets the next number, naming no person
        await _session(
            cp, ACCEPTED_TAGS[0], base + timedelta(minutes=1), meter_start=15_000, meter_stop=17_000
        )
        assert await eventually(lambda: _receipts(engine, 2))
        listed = (await ok(http, RECEIPTS))["receipts"]["edges"]
        assert [e["node"]["number"][-6:] for e in listed] == ["000002", "000001"]
        anonymous = (await fetch(engine, "SELECT buyer, user_id FROM invoice WHERE sequence = 2"))[0]
        assert anonymous["user_id"] is None
        raw = anonymous["buyer"]
        buyer = raw if isinstance(raw, dict) else json.loads(raw)
        assert (buyer["kind"], buyer["name"], buyer["id_tag"]) == (
            "anonymous_card",
            "Anonymous card",
            "…OK-1",
        )
        # and Dana still sees only her own
        mine = (await ok(http, MY_RECEIPTS, token=token))["myReceipts"]["edges"]
        assert [e["node"]["number"][-6:] for e in mine] == ["000001"]

    async def test_an_ocpp_201_session_gets_its_receipt_too(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        api_server: ApiServer,
        station: int,
        durable: DurableWork,
        connect201: Charger201Factory,
    ) -> None:
        # given the same prices and Dana's card, at a 2.0.1 station
        org = await make_org(engine)
        prices = {"energyPerKwh": "40", "sessionFee": 50, "taxBasisPoints": 1900}
        await ok(http, ASSIGN, t=await create(http, org, "Standard", prices))
        await _in_force_since(engine, T0 - timedelta(hours=1))
        dana = await make_user(engine, email="dana@example.com", display_name="Dana Driver")
        await give_token(engine, user_id=dana, token="DANA-CARD", organization_id=org)
        token = (await sign_in(engine, api_server.app.state.auth.keys, user_id=dana)).access_token
        cp = await connect201("CP-1")
        # when she charges 5 kWh reported by TransactionEvents
        for event in (
            tx_event(
                "Started", "TX-1", 0, 0, trigger="Authorized", token="DANA-CARD", meter=[register(10_000, 0)]
            ),
            tx_event("Updated", "TX-1", 1, 1, trigger="ChargingStateChanged", chargingState="Charging"),
            tx_event(
                "Ended", "TX-1", 2, 30, trigger="EVDeparted", meter=[register(15_000, 30, "Transaction.End")]
            ),
        ):
            await cp.call("TransactionEvent", event)
        # then her receipt has the same lines and the session's meter readings
        assert await eventually(lambda: _receipts(engine, 1))
        [edge] = (await ok(http, MY_RECEIPTS, token=token))["myReceipts"]["edges"]
        r = edge["node"]
        assert (r["number"], r["total"]) == (f"R-{utcnow().year}-000001", 250)
        assert [(li["description"], li["amount"]) for li in r["lines"]] == [
            ("Energy", 200),
            ("Session fee", 50),
        ]
        assert (r["session"]["meterStartWh"], r["session"]["meterStopWh"], r["session"]["energyWh"]) == (
            10_000,
            15_000,
            5_000,
        )

    async def test_free_and_fully_sponsored_sessions_get_no_receipt(
        self, engine: AsyncEngine, station: int
    ) -> None:
        # given a session that cost nothing and one a sponsor paid in full
        _, free = await make_charged_session(engine, station_id=station, started_at=utcnow(), total=0)
        _, sponsored = await make_charged_session(
            engine, station_id=station, started_at=utcnow(), total=300, sponsor_amount=300, id_tag="TAG-OK-2"
        )
        # when receipts are issued for them
        async with engine.begin() as conn:
            issued = await receipts.issue_receipts(conn, [free, sponsored])
        # then there are none, and no number was used
        assert issued == []
        assert await scalar(engine, "SELECT count(*) FROM document_counter WHERE last_number > 0") == 0

    async def test_a_partly_sponsored_receipt_states_the_tax_in_what_the_driver_pays(
        self, engine: AsyncEngine, station: int
    ) -> None:
        # given a session of 11.90 at 19 % tax, of which a sponsor covers 7.14
        _, charge = await make_charged_session(
            engine, station_id=station, started_at=utcnow(), total=1_190, sponsor_amount=714
        )
        # when its receipt is issued
        async with engine.begin() as conn:
            [doc_id] = await receipts.issue_receipts(conn, [charge])
        doc = (await fetch(engine, "SELECT * FROM invoice WHERE id = :i", i=doc_id))[0]
        breakdown = (
            doc["tax_breakdown"]
            if isinstance(doc["tax_breakdown"], list)
            else json.loads(doc["tax_breakdown"])
        )
        # then it shows the session's price, the sponsor's share and the 4.76 due, and the tax
        # it states is the 19 % included in the 4.76 (0.76), not the whole session's 1.90: the
        # sponsor's 7.14 is taxed on the sponsor's invoice (1.14), and the two add up to 1.90
        assert (doc["total"], doc["sponsor_amount"], doc["amount_due"]) == (1_190, 714, 476)
        assert (doc["net"], doc["tax"]) == (400, 76)
        assert breakdown == [{"tax_basis_points": 1900, "net": 400, "tax": 76, "gross": 476}]
        sponsor_line = invoices.InvoiceLine("sponsored charging", 714, tax_basis_points=1900)
        [sponsor_tax] = invoices.tax_breakdown([sponsor_line], prices_include_tax=True)
        assert doc["tax"] + sponsor_tax["tax"] == 190

    async def test_a_redelivered_event_issues_nothing_twice(self, engine: AsyncEngine, station: int) -> None:
        tx, charge = await make_charged_session(engine, station_id=station, started_at=utcnow())
        event = SessionCharged(
            station_id=station,
            charge_point_id="CP-1",
            location_id=None,
            at=utcnow(),
            transaction_id=tx,
            charge_id=charge,
            user_id=None,
            currency="EUR",
            total=400,
            driver_amount=400,
        )
        for _ in range(3):
            async with engine.begin() as conn:
                await receipts.issue_on_charged(conn, event)
        rows = await fetch(engine, "SELECT sequence FROM invoice")
        assert rows == [{"sequence": 1}]
        assert await scalar(engine, "SELECT last_number FROM document_counter") == 1


class TestTheSellersDetails:
    async def test_a_change_applies_to_documents_issued_afterwards(
        self, http: httpx.AsyncClient, engine: AsyncEngine, station: int
    ) -> None:
        org = await make_org(engine)
        _, before = await make_charged_session(engine, station_id=station, started_at=utcnow(), id_tag="A")
        async with engine.begin() as conn:
            await receipts.issue_receipts(conn, [before])
        await _billing_details(http, org)
        _, after = await make_charged_session(engine, station_id=station, started_at=utcnow(), id_tag="B")
        async with engine.begin() as conn:
            await receipts.issue_receipts(conn, [after])
        rows = await fetch(engine, "SELECT seller FROM invoice ORDER BY sequence")
        sellers = [r["seller"] if isinstance(r["seller"], dict) else json.loads(r["seller"]) for r in rows]
        assert [s["vat_id"] for s in sellers] == [None, "DE123456789"]

    @pytest.mark.parametrize("details", [{"vatId": "DE 123!"}, {"email": "nobody"}, {"address": "x\n" * 7}])
    async def test_nonsense_is_refused(
        self, http: httpx.AsyncClient, engine: AsyncEngine, details: dict[str, str]
    ) -> None:
        org = await make_org(engine)
        result = await gql(
            http, UPDATE_BILLING, {"o": gid("Organization", org), "input": details}, token=OPERATOR_TOKEN
        )
        assert result["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


INVOICES = """
{ invoices(first: 10) { edges { node { id number periodStart periodEnd net tax total amountDue
    buyer { kind name vatId } lines { description amount taxBasisPoints }
    taxBreakdown { taxBasisPoints net tax gross } downloadUrl(expiresInMinutes: 5) } } } }"""


class TestMonthlyInvoicesShareTheNumberingAndRendering:
    async def test_an_invoice_has_its_own_series_tax_per_rate_and_a_pdf(
        self, http: httpx.AsyncClient, engine: AsyncEngine, station: int
    ) -> None:
        # given a receipt already issued this year
        org = await make_org(engine)
        _, charge = await make_charged_session(engine, station_id=station, started_at=utcnow())
        async with engine.begin() as conn:
            await receipts.issue_receipts(conn, [charge])
        # when a sponsor's monthly statement is invoiced: two rates, prices include tax
        lines = [
            invoices.InvoiceLine("Sponsored charging, 42 sessions", 11_900, tax_basis_points=1900),
            invoices.InvoiceLine("Parking", 1_070, Decimal(2), "day", Decimal(535), tax_basis_points=700),
        ]
        sponsor = invoices.Buyer(kind="sponsor", name="Fleet Co", vat_id="NL123456789B01")
        async with engine.begin() as conn:
            for _ in range(2):
                await invoices.issue_invoice(
                    conn,
                    organization_id=org,
                    buyer=sponsor,
                    lines=lines,
                    period_start=datetime(2026, 10, 1, tzinfo=UTC),
                    period_end=datetime(2026, 11, 1, tzinfo=UTC),
                    currency="EUR",
                )
        # then invoices count 1, 2 in their own series beside receipt 1
        found = [e["node"] for e in (await ok(http, INVOICES))["invoices"]["edges"]]
        year = utcnow().year
        assert [i["number"] for i in found] == [f"I-{year}-000002", f"I-{year}-000001"]
        assert await scalar(engine, "SELECT number FROM invoice WHERE kind = 'receipt'") == f"R-{year}-000001"
        invoice = found[0]
        assert invoice["taxBreakdown"] == [
            {"taxBasisPoints": 700, "net": 1_000, "tax": 70, "gross": 1_070},
            {"taxBasisPoints": 1900, "net": 10_000, "tax": 1_900, "gross": 11_900},
        ]
        assert (invoice["net"], invoice["tax"], invoice["total"]) == (11_000, 1_970, 12_970)
        assert invoice["buyer"] == {"kind": "sponsor", "name": "Fleet Co", "vatId": "NL123456789B01"}
        assert invoice["periodStart"].startswith("2026-10-01")
        # and its PDF is rendered by the same code as receipts
        response = await http.get(invoice["downloadUrl"])
        assert response.status_code == 200 and response.content.startswith(b"%PDF-")
        text = pdf_text(response.content)
        assert f"Invoice I-{year}-000002" in text and "Period 2026-10-01 to 2026-11-01" in text
        assert "€5.35/day" in text and "€129.70" in text and "NL123456789B01" in text


class TestNumbersHaveNoGaps:
    async def test_a_rolled_back_issue_gives_its_numbers_back(
        self, engine: AsyncEngine, station: int
    ) -> None:
        charges = [
            (await make_charged_session(engine, station_id=station, started_at=utcnow(), id_tag=f"T{i}"))[1]
            for i in range(3)
        ]
        # when an issue fails after numbering two receipts
        with pytest.raises(RuntimeError):
            async with engine.begin() as conn:
                await receipts.issue_receipts(conn, charges[:2])
                raise RuntimeError("the worker died before commit")
        # then the next issue starts at 1 again
        async with engine.begin() as conn:
            await receipts.issue_receipts(conn, charges)
        rows = await fetch(engine, "SELECT session_charge_id, sequence FROM invoice ORDER BY sequence")
        assert [(r["session_charge_id"], r["sequence"]) for r in rows] == list(
            zip(charges, [1, 2, 3], strict=True)
        )

    async def test_two_workers_and_the_catch_up_job_racing_number_1_to_n(
        self, engine: AsyncEngine, station: int
    ) -> None:
        # given many sessions charged at once, each announced by its durable event
        n = 60
        other_org = await _other_org(engine)
        other_station = await _station_of(engine, other_org, "OTHER-1")
        for i in range(n):
            await make_charged_session(
                engine,
                station_id=station if i % 3 else other_station,
                started_at=utcnow() - timedelta(minutes=i),
                id_tag=f"RACE{i}",
                announce=True,
            )
        async with engine.connect() as conn:
            messages = [
                m for m in await outbox.fetch_pending(conn, 1_000) if m.event_type == "session.charged"
            ]
        assert len(messages) == n
        # when two worker replicas (one consumer group) handle them side by side, while the
        # catch-up job runs in small batches
        replicas = [Processor(engine, default_registry(), consumer="worker") for _ in range(2)]

        async def replica(k: int) -> None:
            for m in messages[k::2]:
                await replicas[k].process(m)

        await asyncio.gather(replica(0), replica(1), receipts.issue_pending(engine, batch_size=7))
        # then each organisation's receipts are numbered 1..N, once each
        rows = await fetch(engine, "SELECT organization_id, sequence, session_charge_id FROM invoice")
        assert len({r["session_charge_id"] for r in rows}) == len(rows) == n
        for org, count in ((other_org, n // 3), (await make_org(engine), n - n // 3)):
            sequences = sorted(r["sequence"] for r in rows if r["organization_id"] == org)
            assert sequences == list(range(1, count + 1)), org
            last = await scalar(
                engine, "SELECT last_number FROM document_counter WHERE organization_id = :o", o=org
            )
            assert last == count


class TestThePdfLink:
    async def test_a_real_pdf_through_a_signed_link_that_expires(
        self, http: httpx.AsyncClient, engine: AsyncEngine, api_server: ApiServer, station: int
    ) -> None:
        # given a receipt of Dana's
        dana = await make_user(engine, email="dana@example.com", display_name="Dana Driver")
        _, charge = await make_charged_session(
            engine, station_id=station, started_at=utcnow(), user_id=dana, total=913
        )
        async with engine.begin() as conn:
            [doc] = await receipts.issue_receipts(conn, [charge])
        token = (await sign_in(engine, api_server.app.state.auth.keys, user_id=dana)).access_token
        # when she asks for a link and follows it without signing in
        found = (await ok(http, DOWNLOAD, token=token, id=gid("Receipt", doc), m=5))["node"]
        url = found["downloadUrl"]
        assert url.startswith(f"{api_server.base_url}/documents/")
        response = await http.get(url)
        # then it is a PDF of that receipt
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/pdf"
        assert response.headers["content-disposition"] == f'attachment; filename="{found["number"]}.pdf"'
        assert response.content.startswith(b"%PDF-")
        content = pdf_text(response.content)
        assert found["number"] in content
        assert "€9.13" in content and "Dana Driver" in content and "10.000 kWh" in content
        # and a tampered link is refused, an expired one is gone
        body, _, mac = url.rsplit("/", 1)[1].partition(".")
        forged = links.sign(b"not-our-key", links.DOCUMENT_PURPOSE, {"d": doc}, utcnow() + timedelta(hours=1))
        assert (await http.get(f"/documents/{body}.{mac[::-1]}")).status_code == 403
        assert (await http.get(f"/documents/{forged}")).status_code == 403
        expired = links.sign(
            DOCUMENT_SECRET.encode(), links.DOCUMENT_PURPOSE, {"d": doc}, utcnow() - timedelta(seconds=1)
        )
        assert (await http.get(f"/documents/{expired}")).status_code == 410
        # and an export link is no document link
        export = links.sign(
            DOCUMENT_SECRET.encode(), links.EXPORT_PURPOSE, {"d": doc}, utcnow() + timedelta(hours=1)
        )
        assert (await http.get(f"/documents/{export}")).status_code == 403
        # and links live at most a week
        result = await gql(http, DOWNLOAD, {"id": gid("Receipt", doc), "m": 60 * 24 * 8}, token=token)
        assert result["errors"][0]["extensions"]["code"] == "INVALID_INPUT"

    async def test_deleting_the_account_erases_the_buyer_but_keeps_the_receipt(
        self, http: httpx.AsyncClient, engine: AsyncEngine, api_server: ApiServer, station: int
    ) -> None:
        dana = await make_user(engine, email="dana@example.com", display_name="Dana Driver")
        _, charge = await make_charged_session(engine, station_id=station, started_at=utcnow(), user_id=dana)
        async with engine.begin() as conn:
            await receipts.issue_receipts(conn, [charge])
        token = (await sign_in(engine, api_server.app.state.auth.keys, user_id=dana)).access_token
        await ok(http, DELETE_ACCOUNT, token=token, input={"password": DEFAULT_PASSWORD})
        listed = (await ok(http, RECEIPTS))["receipts"]["edges"]
        assert [e["node"]["buyer"]["name"] for e in listed] == ["Deleted account"]
        rows = await fetch(engine, "SELECT sequence, total, buyer FROM invoice")
        assert (rows[0]["sequence"], rows[0]["total"]) == (1, 400)
        assert "dana" not in str(rows[0]["buyer"]).lower()

    async def test_another_driver_can_neither_see_nor_link_it(
        self, http: httpx.AsyncClient, engine: AsyncEngine, api_server: ApiServer, station: int
    ) -> None:
        dana = await make_user(engine, email="dana@example.com")
        eve = await make_user(engine, email="eve@example.com")
        _, charge = await make_charged_session(engine, station_id=station, started_at=utcnow(), user_id=dana)
        async with engine.begin() as conn:
            [doc] = await receipts.issue_receipts(conn, [charge])
        token = (await sign_in(engine, api_server.app.state.auth.keys, user_id=eve)).access_token
        assert (await ok(http, DOWNLOAD, token=token, id=gid("Receipt", doc), m=5))["node"] is None
        assert (await ok(http, MY_RECEIPTS, token=token))["myReceipts"]["edges"] == []
        listed = await gql(http, RECEIPTS, token=token)
        assert listed["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def _station_of(engine: AsyncEngine, organization_id: int, charge_point_id: str) -> int:
    async with session_factory(engine)() as s:
        st = ChargingStation(organization_id=organization_id, charge_point_id=charge_point_id)
        s.add(st)
        await s.commit()
        return st.id or 0


async def _receipts(engine: AsyncEngine, n: int) -> bool:
    return int(await scalar(engine, "SELECT count(*) FROM invoice WHERE kind = 'receipt'")) >= n
