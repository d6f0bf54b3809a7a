"""A charger over a real socket runs whole sessions; every fact lands in the database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from gateway.server import Gateway
from schema.bus import InProcessBus
from schema.db import session_factory
from schema.events import (
    ALL_STATIONS_TOPIC,
    ALL_TRANSACTIONS_TOPIC,
    StationReported,
    StationStatusChanged,
    TransactionEnded,
    TransactionStarted,
    TransactionUpdated,
)
from schema.models import Connector
from schema.timeutil import to_ocpp
from tests.builders import ACCEPTED_TAGS, BLOCKED_TAG
from tests.conftest import ChargerFactory
from tests.dbutil import fetch, scalar

TAG = ACCEPTED_TAGS[0]


def ts(minutes: float) -> str:
    return to_ocpp(datetime(2026, 11, 1, 8, 0, tzinfo=UTC) + timedelta(minutes=minutes))


def meter(tx: int, wh: int, at: str, *, power_w: int = 11_000, soc: int = 40) -> dict:
    return {
        "connectorId": 1,
        "transactionId": tx,
        "meterValue": [
            {
                "timestamp": at,
                "sampledValue": [
                    {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                    {"value": str(power_w / 1000), "measurand": "Power.Active.Import", "unit": "kW"},
                    {"value": "230.1", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
                    {"value": "229.8", "measurand": "Voltage", "phase": "L2-N", "unit": "V"},
                    {"value": str(soc), "measurand": "SoC", "unit": "Percent", "location": "EV"},
                ],
            }
        ],
    }


class TestFullSession:
    async def test_boot_status_start_meter_stop_is_persisted_and_announced(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
        bus: InProcessBus,
    ) -> None:
        # given a subscriber to every station and transaction event
        events = bus.subscribe(ALL_STATIONS_TOPIC, ALL_TRANSACTIONS_TOPIC)
        # when a charger boots, reports, and runs a session with two meter readings
        cp = await connect_charger("CP-1")
        start = await cp.call(
            "StartTransaction", {"connectorId": 1, "idTag": TAG, "meterStart": 1_000_000, "timestamp": ts(0)}
        )
        tx = start["transactionId"]
        await cp.status(1, "Charging")
        await cp.call("MeterValues", meter(tx, 1_002_500, ts(15), soc=45))
        await cp.call("MeterValues", meter(tx, 1_005_000, ts(30), soc=52))
        stop = await cp.call(
            "StopTransaction",
            {
                "transactionId": tx,
                "meterStop": 1_007_250,
                "timestamp": ts(40),
                "idTag": TAG,
                "reason": "EVDisconnected",
            },
        )
        # then the charger was answered as the spec says
        assert start["idTagInfo"]["status"] == "Accepted"
        assert stop["idTagInfo"]["status"] == "Accepted"
        # and the session is stored with energy from the register
        [row] = await fetch(engine, "SELECT * FROM charging_transaction")
        assert row["id"] == tx
        assert row["state"] == "Completed"
        assert (row["meter_start_wh"], row["meter_stop_wh"], row["energy_wh"]) == (
            1_000_000,
            1_007_250,
            7_250,
        )
        assert row["stop_reason"] == "EVDisconnected"
        assert row["soc_percent"] == 52
        # every sampled value, phases included, is kept against the transaction
        assert await scalar(engine, "SELECT count(*) FROM meter_sample WHERE transaction_id = :t", t=tx) == 10
        phases = await fetch(engine, "SELECT DISTINCT phase FROM meter_sample WHERE phase <> ''")
        assert {p["phase"] for p in phases} == {"L1-N", "L2-N"}
        # the boot details and the connector history are recorded
        [st] = await fetch(engine, "SELECT * FROM charging_station WHERE id = :i", i=station)
        assert (st["vendor"], st["model"], st["firmware_version"], st["ocpp_version"]) == (
            "ChargeNetSim",
            "SimAC22",
            "1.4.2",
            "ocpp1.6",
        )
        assert st["online"] is True or st["online"] == 1
        history = await fetch(
            engine,
            "SELECT connector_id, status FROM connector_status_event WHERE connector_id = 1 ORDER BY id",
        )
        assert [h["status"] for h in history][-1] == "Charging"
        # and events arrived in order: started, two updates, ended
        kinds = []
        while True:
            try:
                e = await events.next(0.5)
            except TimeoutError:
                break
            kinds.append(type(e))
            if isinstance(e, TransactionUpdated):
                assert e.energy_wh in (2_500, 5_000)
                assert e.power_w == 11_000
        # (station reports, e.g. the configuration read after boot, interleave: not this test's)
        tx_kinds = [k for k in kinds if k not in (StationStatusChanged, StationReported)]
        assert tx_kinds == [TransactionStarted, TransactionUpdated, TransactionUpdated, TransactionEnded]

    async def test_simulated_session_energy_rises_and_matches_register(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1", speed=30_000, meter_interval_s=300)
        register_before = cp.register_wh
        tx = await cp.run_session(1, TAG)
        assert tx is not None
        [row] = await fetch(engine, "SELECT * FROM charging_transaction WHERE id = :t", t=tx)
        assert row["energy_wh"] == cp.register_wh - register_before > 0
        readings = await fetch(
            engine,
            "SELECT value FROM meter_sample WHERE transaction_id = :t "
            "AND measurand = 'Energy.Active.Import.Register' ORDER BY sampled_at",
            t=tx,
        )
        values = [r["value"] for r in readings]
        assert values == sorted(values) and len(values) >= 2

    async def test_blocked_tag_is_answered_and_recorded(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")
        auth = await cp.call("Authorize", {"idTag": BLOCKED_TAG})
        unknown = await cp.call("Authorize", {"idTag": "NOBODY"})
        start = await cp.call(
            "StartTransaction", {"connectorId": 2, "idTag": BLOCKED_TAG, "meterStart": 0, "timestamp": ts(0)}
        )
        stop = await cp.call(
            "StopTransaction",
            {
                "transactionId": start["transactionId"],
                "meterStop": 0,
                "timestamp": ts(1),
                "idTag": BLOCKED_TAG,
                "reason": "DeAuthorized",
            },
        )
        assert auth["idTagInfo"]["status"] == "Blocked"
        assert unknown["idTagInfo"]["status"] == "Invalid"
        assert start["idTagInfo"]["status"] == "Blocked"
        assert stop["idTagInfo"]["status"] == "Blocked"
        assert await scalar(engine, "SELECT state FROM charging_transaction") == "Completed"


class TestStationStatus:
    async def test_connector_zero_and_unknown_connectors(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1", connectors=[22_000, 22_000, 11_000])
        # connector 3 was never registered: the station's report creates it
        assert await scalar(engine, "SELECT count(*) FROM connector WHERE station_id = :s", s=station) == 3
        await cp.status(0, "Unavailable")
        await cp.status(2, "Faulted", "GroundFailure", vendorErrorCode="E-42", info="relay")
        [st] = await fetch(engine, "SELECT status FROM charging_station")
        assert st["status"] == "Unavailable"
        [c2] = await fetch(engine, "SELECT * FROM connector WHERE connector_id = 2")
        assert (c2["status"], c2["error_code"], c2["vendor_error_code"]) == (
            "Faulted",
            "GroundFailure",
            "E-42",
        )
        async with session_factory(engine)() as s:
            row = (await s.exec(select(Connector).where(Connector.connector_id == 2))).one()
        assert row.status_since is not None and row.status_since.tzinfo is not None

    async def test_repeated_status_is_not_a_change(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")
        before = await scalar(engine, "SELECT count(*) FROM connector_status_event")
        for _ in range(3):
            await cp.status(1, "Available")
        assert await scalar(engine, "SELECT count(*) FROM connector_status_event") == before

    async def test_online_flag_follows_the_socket(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
        gateway: Gateway,
    ) -> None:
        cp = await connect_charger("CP-1")
        assert await scalar(engine, "SELECT online FROM charging_station") in (True, 1)
        await cp.close()
        for _ in range(100):
            if await scalar(engine, "SELECT online FROM charging_station") in (False, 0):
                break
            await asyncio.sleep(0.02)
        assert await scalar(engine, "SELECT online FROM charging_station") in (False, 0)

    async def test_heartbeat_firmware_diagnostics_datatransfer(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
        bus: InProcessBus,
    ) -> None:
        reports = bus.subscribe(ALL_STATIONS_TOPIC)
        cp = await connect_charger("CP-1")
        hb = await cp.call("Heartbeat", {})
        assert datetime.fromisoformat(hb["currentTime"].replace("Z", "+00:00")).tzinfo is not None
        await cp.call("FirmwareStatusNotification", {"status": "Installing"})
        await cp.call("DiagnosticsStatusNotification", {"status": "Uploaded"})
        dt = await cp.call("DataTransfer", {"vendorId": "com.example", "messageId": "hello", "data": "x"})
        assert dt["status"] == "UnknownVendorId"
        [st] = await fetch(engine, "SELECT firmware_status, diagnostics_status FROM charging_station")
        assert (st["firmware_status"], st["diagnostics_status"]) == ("Installing", "Uploaded")
        actions = []
        while True:
            try:
                e = await reports.next(0.3)
            except TimeoutError:
                break
            actions.append(getattr(e, "action", None))
        assert {"FirmwareStatusNotification", "DiagnosticsStatusNotification", "DataTransfer"} <= set(actions)

    async def test_message_log_keeps_frames_both_ways(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
        gateway: Gateway,
    ) -> None:
        cp = await connect_charger("CP-1")
        await cp.call("Authorize", {"idTag": TAG})
        await cp.call("Heartbeat", {})
        await gateway.message_log.flush()
        for _ in range(100):
            n = await scalar(engine, "SELECT count(*) FROM ocpp_message WHERE action = 'Authorize'")
            if n == 2:
                break
            await asyncio.sleep(0.02)
        rows = await fetch(
            engine, "SELECT direction, message_type, payload FROM ocpp_message WHERE action = 'Authorize'"
        )
        assert sorted((r["direction"], r["message_type"]) for r in rows) == [("in", 2), ("out", 3)]
        assert any(TAG in r["payload"] for r in rows)
        # heartbeats only refresh last-seen; they are not logged
        assert await scalar(engine, "SELECT count(*) FROM ocpp_message WHERE action = 'Heartbeat'") == 0
        # retention: nothing is younger than zero days
        assert await gateway.message_log.purge(0) > 0
