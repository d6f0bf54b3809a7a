"""The quarterly uptime CSV (23 CFR 680.112 fields) by bearer token and by signed link, on real
databases: per-port and per-month figures, each outage with its exclusion reason, failed
sessions with their stop reason and the error codes the port reported while they ran — and
nothing of another organisation."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from schema.db import session_factory
from schema.incident_models import ExclusionReason, OutageExclusion
from schema.models import ConnectorStatusEvent, Transaction
from schema.timeutil import utcnow
from tests.conftest import ApiServer
from tests.orgs_world import code
from tests.uptime_world import DAY, Fleet, build_fleet, mu

EXPORT_URL = """
query ($o: ID!, $y: Int!, $q: Int!) {
  uptimeExportUrl(organizationId: $o, year: $y, quarter: $q, expiresInMinutes: 5) }"""


@pytest.fixture
async def fleet(engine: AsyncEngine, api_server: ApiServer, http: httpx.AsyncClient) -> Fleet:
    """The uptime fleet, plus in M: a storm excluded on all of CP-1 11:30–14:00 on day 3, a
    failed session on CP-1 port 1 (emergency stop, 50 Wh) during which it reported a ground
    failure, and a good session that is not reported."""
    fleet = await build_fleet(engine, api_server, http)
    m = fleet.m
    async with session_factory(engine)() as s:
        s.add(
            OutageExclusion(
                organization_id=fleet.world.acme,
                station_id=fleet.cp1,
                started_at=m + timedelta(days=2, hours=11, minutes=30),
                ended_at=m + timedelta(days=2, hours=14),
                reason=ExclusionReason.NATURAL_DISASTER.value,
            )
        )
        for n, (hour, wh, reason) in enumerate(((9, 50, "EmergencyStop"), (16, 30_000, "Local"))):
            s.add(
                Transaction(
                    station_id=fleet.cp1,
                    connector_id=1,
                    start_key=f"x-{n}",
                    state="Completed",
                    started_at=m + timedelta(days=2, hours=hour),
                    stopped_at=m + timedelta(days=2, hours=hour, minutes=40),
                    energy_wh=wh,
                    stop_reason=reason,
                )
            )
        for minute, error in ((10, "GroundFailure"), (20, "GroundFailure"), (300, "HighTemperature")):
            s.add(
                ConnectorStatusEvent(
                    station_id=fleet.cp1,
                    connector_id=1,
                    status="Faulted",
                    error_code=error,
                    received_at=m + timedelta(days=2, hours=9, minutes=minute),
                )
            )
        await s.commit()
    return fleet


def quarter_of(m: datetime) -> tuple[int, int]:
    return m.year, (m.month - 1) // 3 + 1


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def of(table: list[dict[str, str]], record: str, station: str, connector: str = "1") -> list[dict[str, str]]:
    return [
        r for r in table if (r["record"], r["station_id"], r["connector_id"]) == (record, station, connector)
    ]


class TestQuarterlyExport:
    async def test_ports_months_outages_and_failed_sessions_by_bearer_token(
        self, http: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        year, quarter = quarter_of(fleet.m)
        w = fleet.world
        response = await http.get(
            "/exports/uptime.csv",
            params={"organizationId": w.acme_id, "year": year, "quarter": quarter},
            headers={"Authorization": f"Bearer {w.tokens['viewer']}"},
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-disposition"].endswith(f'uptime-{year}-Q{quarter}.csv"')
        table = rows(response.text)
        [port] = of(table, "port", "CP-1")
        assert (port["period"], port["outage_minutes"], port["excluded_minutes"]) == (
            f"{year}-Q{quarter}",
            "180.00",
            "90.00",
        )
        quarter_end = datetime(year + (quarter == 4), 3 * quarter % 12 + 1, 1, tzinfo=UTC)
        quarter_over = quarter_end <= utcnow()
        assert (port["uptime_12_months_percent"] != "") == quarter_over
        [month] = [r for r in of(table, "month", "CP-1") if r["period"] == f"{fleet.m:%Y-%m}"]
        assert float(month["uptime_percent"]) == pytest.approx(mu(fleet.m_minutes, 180, 90), abs=0.001)
        outages = of(table, "outage", "CP-1")
        assert [
            (o["duration_minutes"], o["cause"], o["error_code"], o["exclusion_reason"]) for o in outages
        ] == [("120.00", "faulted", "GroundFailure", "natural_disaster")] * 2
        [failed] = of(table, "failed_session", "CP-1")
        assert (failed["stop_reason"], failed["energy_kwh"], failed["error_code"]) == (
            "EmergencyStop",
            "0.050",
            "GroundFailure",
        )
        # CP-2: the outage from the month before M counts its hour inside M only in M's quarter
        cp2 = of(table, "outage", "CP-2")
        assert [o["duration_minutes"] for o in cp2][-1] == f"{12 * DAY}.00"
        assert not [r for r in table if r["station_id"] == "GLOBEX-1"]
        assert of(table, "port", "CP-1", "2")[0]["outage_minutes"] == "0.00"

    async def test_a_signed_link_works_without_a_token_and_only_as_signed(
        self, http: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        year, quarter = quarter_of(fleet.m)
        w = fleet.world
        made = await w.run("technician", EXPORT_URL, {"o": w.acme_id, "y": year, "q": quarter})
        url = made["data"]["uptimeExportUrl"]
        assert "/exports/uptime.csv?token=" in url
        path = url[url.index("/exports/") :]
        response = await http.get(path)
        assert response.status_code == 200
        assert of(rows(response.text), "port", "CP-2")
        assert (await http.get(path[:-3] + "abc")).status_code == 403

    async def test_who_may_export_what(self, http: httpx.AsyncClient, fleet: Fleet) -> None:
        year, quarter = quarter_of(fleet.m)
        w = fleet.world
        args = {"o": w.globex_id, "y": year, "q": quarter}
        assert code(await w.run("owner", EXPORT_URL, args)) == "FORBIDDEN"
        assert code(await w.run("outsider", EXPORT_URL, {**args, "o": w.acme_id})) == "FORBIDDEN"
        assert code(await w.run("owner", EXPORT_URL, {**args, "o": w.acme_id, "q": 5})) == "INVALID_INPUT"
        params = {"organizationId": w.globex_id, "year": year, "quarter": quarter}
        bearer = {"Authorization": f"Bearer {w.tokens['owner']}"}
        assert (await http.get("/exports/uptime.csv", params=params, headers=bearer)).status_code == 403
        assert (await http.get("/exports/uptime.csv", params=params)).status_code == 401
        future = {**params, "organizationId": w.acme_id, "year": utcnow().year + 1}
        assert (await http.get("/exports/uptime.csv", params=future, headers=bearer)).status_code == 400
