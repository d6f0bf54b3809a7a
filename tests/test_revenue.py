"""A driver's charging history and an operator's revenue, through the real API on real
databases: filters, monthly totals, paging, grouped sums, the CSV export by bearer token and
by signed link — and nobody sees another driver's sessions or another organisation's money."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth.roles import Role
from api.invoicing import receipts
from schema.db import session_factory
from schema.models import Transaction
from tests.account_builders import add_member, make_user, sign_in
from tests.builders import make_location, make_org, make_station
from tests.charge_builders import make_charged_session
from tests.conftest import ApiServer
from tests.dbutil import scalar
from tests.graphql_client import gql
from tests.test_access_matrix import gid
from tests.test_tariffs import _other_org, ok

HISTORY = """
query ($from: DateTime!, $to: DateTime!, $s: ID, $first: Int, $after: String) {
  chargingHistory(from: $from, to: $to, stationId: $s, first: $first, after: $after) {
    edges { cursor node { startedAt energyWh amount currency station { chargePointId }
                          receipt { number } } }
    pageInfo { hasNextPage endCursor }
    monthlyTotals { month currency sessions energyWh amount } } }"""
REPORT = """
query ($from: DateTime!, $to: DateTime!, $g: RevenueGroupBy!) {
  revenueReport(from: $from, to: $to, groupBy: $g) {
    groupBy paymentMethodsKnown
    rows { key label currency sessions energyWh net tax total sponsorAmount driverAmount } } }"""
EXPORT_URL = """
query ($from: DateTime!, $to: DateTime!, $g: RevenueGroupBy) {
  revenueExportUrl(from: $from, to: $to, groupBy: $g, expiresInMinutes: 5) }"""
OCT = datetime(2026, 10, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
PERIOD = {"from": OCT.isoformat(), "to": DEC.isoformat()}


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 10, tzinfo=UTC)


@dataclass
class Network:
    mall: int
    s1: int
    s2: int
    elsewhere: int
    dana: str
    eve: str
    operator: str


@pytest.fixture
async def network(engine: AsyncEngine, api_server: ApiServer) -> Network:
    """Acme: CP-1 at the Mall, CP-2 at its own site; another organisation's OTHER-1. Dana
    charged at both of Acme's and at the other's, Eve and an anonymous card at Acme's."""
    keys = api_server.app.state.auth.keys
    org = await make_org(engine)
    mall = await make_location(engine, name="Mall")
    s1 = await make_station(engine, charge_point_id="CP-1", location_id=mall)
    s2 = await make_station(engine, charge_point_id="CP-2")
    other = await _other_org(engine)
    elsewhere = await make_station(engine, charge_point_id="OTHER-1")
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            f"UPDATE charging_station SET organization_id = {other} WHERE id = {elsewhere}"
        )
    dana = await make_user(engine, email="dana@example.com")
    eve = await make_user(engine, email="eve@example.com")
    olga = await make_user(engine, email="olga@example.com")
    await add_member(engine, user_id=olga, organization_id=org, role=Role.OPERATOR)
    sessions = [
        (s1, dana, at(9, 20), 1_000, 50, 0),  # before the period
        (s1, dana, at(10, 5), 10_000, 400, 0),
        (s2, dana, at(10, 20), 20_000, 800, 0),
        (s1, dana, at(11, 3), 5_000, 200, 0),
        (s1, eve, at(11, 4), 7_000, 300, 0),
        (s2, None, at(11, 10), 3_000, 150, 50),
        (elsewhere, dana, at(11, 5), 8_000, 999, 0),
    ]
    for i, (station, user, started, wh, total, sponsored) in enumerate(sessions):
        await make_charged_session(
            engine,
            station_id=station,
            user_id=user,
            id_tag=f"CARD{i}",
            started_at=started,
            energy_wh=wh,
            total=total,
            sponsor_amount=sponsored,
        )
    await receipts.issue_pending(engine)
    return Network(
        mall=mall,
        s1=s1,
        s2=s2,
        elsewhere=elsewhere,
        dana=(await sign_in(engine, keys, user_id=dana)).access_token,
        eve=(await sign_in(engine, keys, user_id=eve)).access_token,
        operator=(await sign_in(engine, keys, user_id=olga)).access_token,
    )


class TestChargingHistory:
    async def test_the_period_newest_first_with_monthly_totals_across_organisations(
        self, http: httpx.AsyncClient, network: Network
    ) -> None:
        data = (await ok(http, HISTORY, token=network.dana, **PERIOD))["chargingHistory"]
        entries = [e["node"] for e in data["edges"]]
        assert [(e["station"]["chargePointId"], e["energyWh"], e["amount"]) for e in entries] == [
            ("OTHER-1", 8_000, 999),
            ("CP-1", 5_000, 200),
            ("CP-2", 20_000, 800),
            ("CP-1", 10_000, 400),
        ]
        assert all(e["receipt"]["number"].startswith("R-") for e in entries)
        assert data["monthlyTotals"] == [
            {"month": "2026-10", "currency": "EUR", "sessions": 2, "energyWh": 30_000, "amount": 1_200},
            {"month": "2026-11", "currency": "EUR", "sessions": 2, "energyWh": 13_000, "amount": 1_199},
        ]

    async def test_filtered_by_station_and_paged(self, http: httpx.AsyncClient, network: Network) -> None:
        s1 = gid("Station", network.s1)
        first = (await ok(http, HISTORY, token=network.dana, s=s1, first=1, **PERIOD))["chargingHistory"]
        assert [e["node"]["startedAt"][:10] for e in first["edges"]] == ["2026-11-03"]
        assert first["pageInfo"]["hasNextPage"] is True
        assert [m["sessions"] for m in first["monthlyTotals"]] == [1, 1]  # the whole period
        after = first["pageInfo"]["endCursor"]
        rest = (await ok(http, HISTORY, token=network.dana, s=s1, first=1, after=after, **PERIOD))[
            "chargingHistory"
        ]
        assert [e["node"]["startedAt"][:10] for e in rest["edges"]] == ["2026-10-05"]
        assert rest["pageInfo"]["hasNextPage"] is False
        november = {"from": at(11, 1).isoformat(), "to": DEC.isoformat()}
        only = (await ok(http, HISTORY, token=network.dana, **november))["chargingHistory"]
        assert len(only["edges"]) == 2

    async def test_each_driver_sees_only_their_own(self, http: httpx.AsyncClient, network: Network) -> None:
        eve = (await ok(http, HISTORY, token=network.eve, **PERIOD))["chargingHistory"]
        assert [e["node"]["energyWh"] for e in eve["edges"]] == [7_000]
        assert eve["monthlyTotals"] == [
            {"month": "2026-11", "currency": "EUR", "sessions": 1, "energyWh": 7_000, "amount": 300}
        ]

    async def test_a_session_no_tariff_applied_to_is_listed_at_no_cost(
        self, http: httpx.AsyncClient, engine: AsyncEngine, network: Network
    ) -> None:
        # given Eve's session at CP-2 that was never charged (no tariff applied)
        eve = int(await scalar(engine, "SELECT id FROM user_account WHERE email = 'eve@example.com'"))
        async with session_factory(engine)() as s:
            s.add(
                Transaction(
                    station_id=network.s2,
                    connector_id=1,
                    user_id=eve,
                    start_key="free-1",
                    state="Completed",
                    started_at=at(11, 20),
                    stopped_at=at(11, 21),
                    energy_wh=2_500,
                )
            )
            await s.commit()
        data = (await ok(http, HISTORY, token=network.eve, **PERIOD))["chargingHistory"]
        assert [
            (e["node"]["energyWh"], e["node"]["amount"], e["node"]["receipt"]) for e in data["edges"]
        ] == [
            (2_500, 0, None),
            (7_000, 300, data["edges"][1]["node"]["receipt"]),
        ]
        assert data["monthlyTotals"] == [
            {"month": "2026-11", "currency": "EUR", "sessions": 2, "energyWh": 9_500, "amount": 300}
        ]

    async def test_a_backwards_period_is_refused(self, http: httpx.AsyncClient, network: Network) -> None:
        result = await gql(
            http, HISTORY, {"from": DEC.isoformat(), "to": OCT.isoformat()}, token=network.dana
        )
        assert result["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


def _rows(report: dict[str, object]) -> dict[str, tuple[int, ...]]:
    return {
        str(r["label"]): (r["sessions"], r["energyWh"], r["total"], r["sponsorAmount"], r["driverAmount"])  # type: ignore[index]
        for r in report["rows"]  # type: ignore[attr-defined]
    }


class TestRevenueReport:
    async def test_sums_by_station_location_month_and_payment_method(
        self, http: httpx.AsyncClient, network: Network, engine: AsyncEngine
    ) -> None:
        async def report(group: str) -> dict[str, object]:
            return (await ok(http, REPORT, token=network.operator, g=group, **PERIOD))["revenueReport"]  # type: ignore[no-any-return]

        by_station = await report("STATION")
        # the other organisation's station is not in Olga's report; the September session neither
        assert _rows(by_station) == {
            "CP-1": (3, 22_000, 900, 0, 900),
            "CP-2": (2, 23_000, 950, 50, 900),
        }
        assert {r["key"] for r in by_station["rows"]} == {  # type: ignore[attr-defined]
            gid("Station", network.s1),
            gid("Station", network.s2),
        }
        for r in by_station["rows"]:  # type: ignore[attr-defined]
            assert r["net"] + r["tax"] == r["total"]
        by_location = await report("LOCATION")
        assert _rows(by_location) == {
            "Mall": (3, 22_000, 900, 0, 900),
            "Site of CP-2": (2, 23_000, 950, 50, 900),
        }
        assert gid("Location", network.mall) in {r["key"] for r in by_location["rows"]}  # type: ignore[attr-defined]
        assert _rows(await report("MONTH")) == {
            "2026-10": (2, 30_000, 1_200, 0, 1_200),
            "2026-11": (3, 15_000, 650, 50, 600),
        }
        # not settled yet: unknown; once the worker has taken them by card: card
        by_method = await report("PAYMENT_METHOD")
        assert by_method["paymentMethodsKnown"] is True
        assert _rows(by_method) == {"unknown": (5, 45_000, 1_850, 50, 1_800)}
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE session_charge SET payment_method = 'card'"))
        assert _rows(await report("PAYMENT_METHOD")) == {"card": (5, 45_000, 1_850, 50, 1_800)}

    async def test_drivers_cannot_read_revenue(self, http: httpx.AsyncClient, network: Network) -> None:
        result = await gql(http, REPORT, {"g": "MONTH", **PERIOD}, token=network.dana)
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def _csv(response: httpx.Response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.text)))


class TestRevenueExport:
    async def test_every_session_as_a_csv_row_with_the_bearer_token(
        self, http: httpx.AsyncClient, network: Network
    ) -> None:
        response = await http.get(
            "/exports/revenue.csv", params=PERIOD, headers={"Authorization": f"Bearer {network.operator}"}
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert (
            response.headers["content-disposition"] == 'attachment; filename="revenue-20261001-20261201.csv"'
        )
        rows = _csv(response)
        # in the order they ended; amounts in euros
        assert [(r["station"], r["energy_kwh"], r["total"], r["driver_amount"]) for r in rows] == [
            ("CP-1", "10.000", "4.00", "4.00"),
            ("CP-2", "20.000", "8.00", "8.00"),
            ("CP-1", "5.000", "2.00", "2.00"),
            ("CP-1", "7.000", "3.00", "3.00"),
            ("CP-2", "3.000", "1.50", "1.00"),
        ]
        assert all(r["receipt_number"].startswith("R-2026-") for r in rows)
        assert {r["payment_method"] for r in rows} == {"unknown"}
        grouped = await http.get(
            "/exports/revenue.csv",
            params={**PERIOD, "groupBy": "MONTH"},
            headers={"Authorization": f"Bearer {network.operator}"},
        )
        assert [(r["key"], r["sessions"], r["total"]) for r in _csv(grouped)] == [
            ("2026-10", "2", "12.00"),
            ("2026-11", "3", "6.50"),
        ]

    async def test_a_signed_link_works_without_a_token_until_tampered_with(
        self, http: httpx.AsyncClient, network: Network
    ) -> None:
        url = (await ok(http, EXPORT_URL, token=network.operator, g="STATION", **PERIOD))["revenueExportUrl"]
        response = await http.get(url)
        assert response.status_code == 200
        assert [(r["label"], r["sessions"]) for r in _csv(response)] == [("CP-1", "3"), ("CP-2", "2")]
        assert (await http.get(url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB"))).status_code == 403

    async def test_refusals(self, http: httpx.AsyncClient, network: Network) -> None:
        assert (await http.get("/exports/revenue.csv", params=PERIOD)).status_code == 401
        driver = {"Authorization": f"Bearer {network.dana}"}
        assert (await http.get("/exports/revenue.csv", params=PERIOD, headers=driver)).status_code == 403
        operator = {"Authorization": f"Bearer {network.operator}"}
        bad = {"from": "yesterday", "to": DEC.isoformat()}
        assert (await http.get("/exports/revenue.csv", params=bad, headers=operator)).status_code == 400
        bad_group = {**PERIOD, "groupBy": "COLOUR"}
        assert (await http.get("/exports/revenue.csv", params=bad_group, headers=operator)).status_code == 400
        assert (
            await http.get("/exports/revenue.csv", params=PERIOD, headers={"Authorization": "Bearer nope"})
        ).status_code == 401
