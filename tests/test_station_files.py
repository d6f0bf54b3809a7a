"""Diagnostics a station uploads on request land in ChargeNet, linked to the station, once."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import OPERATOR_TOKEN, ChargerFactory
from tests.dbutil import scalar
from tests.graphql_client import gql
from tests.test_access_matrix import gid

REQUEST = """
mutation ($s: ID!) { requestDiagnostics(input: {stationId: $s}) {
  outcome fileName file { id status } } }"""
FILES = """
query ($s: ID!) { stationFiles(stationId: $s) { kind status fileName sizeBytes contentBase64 } }"""


async def files(http: httpx.AsyncClient, station: int) -> list[dict[str, Any]]:
    result = await gql(http, FILES, {"s": gid("Station", station)}, token=OPERATOR_TOKEN)
    found: list[dict[str, Any]] = result["data"]["stationFiles"]
    return found


class TestDiagnosticsUpload:
    async def test_the_station_uploads_to_a_one_time_url_and_the_file_is_kept(
        self, http: httpx.AsyncClient, engine: AsyncEngine, station: int, connect_charger: ChargerFactory
    ) -> None:
        # given a connected station
        await connect_charger("CP-1", speed=60)
        # when an operator asks for its diagnostics without naming a location
        asked = await gql(http, REQUEST, {"s": gid("Station", station)}, token=OPERATOR_TOKEN)
        payload = asked["data"]["requestDiagnostics"]
        assert payload["outcome"] == "ACCEPTED"
        # a fast station may have uploaded before the answer is read back
        assert payload["file"]["status"] in ("requested", "uploaded")
        # then the station uploads it to ChargeNet, and the file is there with its content
        for _ in range(300):  # the simulator uploads after its own short delays
            found = await files(http, station)
            if found and found[0]["status"] == "uploaded":
                break
            await asyncio.sleep(0.05)
        upload = found[0]
        assert (upload["kind"], upload["status"], upload["fileName"]) == (
            "diagnostics",
            "uploaded",
            payload["fileName"],
        )
        content = base64.b64decode(upload["contentBase64"])
        assert len(content) == upload["sizeBytes"] > 0

    async def test_a_used_or_unknown_upload_url_takes_nothing(
        self, http: httpx.AsyncClient, engine: AsyncEngine, station: int, connect_charger: ChargerFactory
    ) -> None:
        charger = await connect_charger("CP-1")
        locations: list[str] = []

        def capture(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
            if action == "GetDiagnostics":
                locations.append(payload["location"])
                return {"fileName": "diag.txt"}
            return None

        charger.on_call = capture
        await gql(http, REQUEST, {"s": gid("Station", station)}, token=OPERATOR_TOKEN)
        (location,) = locations
        assert (await http.put(f"{location}/diag.txt", content=b"first")).status_code == 201
        assert (await http.put(f"{location}/diag.txt", content=b"second")).status_code == 404
        assert (await http.put(f"{location}x/diag.txt", content=b"guess")).status_code == 404
        assert await scalar(engine, "SELECT count(*) FROM station_file WHERE status = 'uploaded'") == 1
        assert base64.b64decode((await files(http, station))[0]["contentBase64"]) == b"first"
