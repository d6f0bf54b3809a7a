"""Chargers resend after reconnects and replay queued messages after being offline (OCPP 1.6
§4.8): every repeat must change nothing, and late readings must land in the right session."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.builders import ACCEPTED_TAGS
from tests.conftest import ChargerFactory
from tests.dbutil import fetch, scalar
from tests.test_gateway_sessions import meter, ts

TAG = ACCEPTED_TAGS[0]


def start_payload(minutes: float = 0, meter_start: int = 500) -> dict:
    return {"connectorId": 1, "idTag": TAG, "meterStart": meter_start, "timestamp": ts(minutes)}


class TestRepeatedStart:
    async def test_same_start_after_reconnect_returns_same_transaction(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")
        first = await cp.call("StartTransaction", start_payload())
        # the reply was "lost": the charger reconnects and sends the same message again
        await cp.close()
        cp2 = await connect_charger("CP-1")
        again = await cp2.call("StartTransaction", start_payload())
        assert again["transactionId"] == first["transactionId"]
        assert await scalar(engine, "SELECT count(*) FROM charging_transaction") == 1

    async def test_a_new_start_time_is_a_new_transaction(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")
        a = await cp.call("StartTransaction", start_payload(0))
        b = await cp.call("StartTransaction", {**start_payload(90, 9_000), "connectorId": 2})
        assert a["transactionId"] != b["transactionId"]


class TestRepeatedStop:
    async def test_second_stop_changes_nothing(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")
        tx = (await cp.call("StartTransaction", start_payload()))["transactionId"]
        stop = {"transactionId": tx, "meterStop": 4_500, "timestamp": ts(30), "reason": "Local"}
        await cp.call("StopTransaction", stop)
        [before] = await fetch(engine, "SELECT * FROM charging_transaction")
        # a resend with different numbers (a confused charger) must not rewrite the session
        again = await cp.call("StopTransaction", {**stop, "meterStop": 9_999, "timestamp": ts(60)})
        [after] = await fetch(engine, "SELECT * FROM charging_transaction")
        assert again == {}
        assert after == before
        assert after["energy_wh"] == 4_000

    async def test_stop_without_reason_means_local(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")
        tx = (await cp.call("StartTransaction", start_payload()))["transactionId"]
        await cp.call("StopTransaction", {"transactionId": tx, "meterStop": 600, "timestamp": ts(5)})
        assert await scalar(engine, "SELECT stop_reason FROM charging_transaction") == "Local"


class TestOfflineReplay:
    async def test_queued_messages_with_old_timestamps_keep_their_times(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        # given a charger that was offline for hours and now replays its queue in order
        cp = await connect_charger("CP-1")
        tx = (await cp.call("StartTransaction", start_payload(-300, 10_000)))["transactionId"]
        await cp.call("MeterValues", meter(tx, 12_000, ts(-280)))
        await cp.call("MeterValues", meter(tx, 15_000, ts(-260)))
        await cp.call(
            "StopTransaction",
            {"transactionId": tx, "meterStop": 16_000, "timestamp": ts(-250), "reason": "EVDisconnected"},
        )
        [row] = await fetch(engine, "SELECT energy_wh, state FROM charging_transaction")
        assert row == {"energy_wh": 6_000, "state": "Completed"}
        times = await fetch(
            engine, "SELECT DISTINCT sampled_at FROM meter_sample WHERE transaction_id = :t", t=tx
        )
        assert len(times) == 2

    async def test_late_meter_values_after_stop_land_in_their_transaction(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")
        tx = (await cp.call("StartTransaction", start_payload()))["transactionId"]
        await cp.call("StopTransaction", {"transactionId": tx, "meterStop": 3_000, "timestamp": ts(20)})
        # after a reconnect the gateway no longer holds the session in memory
        await cp.close()
        cp2 = await connect_charger("CP-1")
        await cp2.call("MeterValues", meter(tx, 2_000, ts(10)))
        n = await scalar(engine, "SELECT count(*) FROM meter_sample WHERE transaction_id = :t", t=tx)
        assert n == 5
        # and the finished session's energy is the register difference, untouched
        assert await scalar(engine, "SELECT energy_wh FROM charging_transaction") == 2_500

    async def test_a_resent_meter_value_is_stored_once(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        # given a MeterValues the gateway stored but whose reply the charger never saw
        cp = await connect_charger("CP-1")
        tx = (await cp.call("StartTransaction", start_payload()))["transactionId"]
        await cp.call("MeterValues", meter(tx, 2_000, ts(10)))
        before = await scalar(engine, "SELECT count(*) FROM meter_sample WHERE transaction_id = :t", t=tx)
        # when the charger resends it after reconnecting, and again in the same batch as a new one
        await cp.close()
        cp2 = await connect_charger("CP-1")
        await cp2.call("MeterValues", meter(tx, 2_000, ts(10)))
        await cp2.call("MeterValues", meter(tx, 2_500, ts(11)))
        # then each sampled value exists once
        after = await scalar(engine, "SELECT count(*) FROM meter_sample WHERE transaction_id = :t", t=tx)
        assert before > 0 and after == 2 * before

    async def test_meter_values_for_a_foreign_transaction_id_are_not_misfiled(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")
        await cp.call("MeterValues", meter(987_654, 2_000, ts(10)))
        assert await scalar(engine, "SELECT count(*) FROM meter_sample WHERE transaction_id IS NULL") == 5

    async def test_stop_for_a_start_never_seen_is_answered_recorded_and_flagged(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")
        data = [
            {
                "timestamp": ts(0),
                "sampledValue": [
                    {
                        "value": "100.5",
                        "measurand": "Energy.Active.Import.Register",
                        "unit": "kWh",
                        "context": "Transaction.Begin",
                    }
                ],
            },
            {
                "timestamp": ts(45),
                "sampledValue": [
                    {
                        "value": "112.0",
                        "measurand": "Energy.Active.Import.Register",
                        "unit": "kWh",
                        "context": "Transaction.End",
                    }
                ],
            },
        ]
        stop = {
            "transactionId": 424242,
            "meterStop": 112_000,
            "timestamp": ts(45),
            "idTag": TAG,
            "transactionData": data,
        }
        reply = await cp.call("StopTransaction", stop)
        again = await cp.call("StopTransaction", stop)
        assert reply["idTagInfo"]["status"] == "Accepted" and again == reply
        [row] = await fetch(engine, "SELECT * FROM charging_transaction")
        assert row["start_missing"] in (True, 1)
        assert (row["meter_start_wh"], row["energy_wh"], row["state"]) == (100_500, 11_500, "Completed")
        assert (
            await scalar(engine, "SELECT count(*) FROM meter_sample WHERE transaction_id = :t", t=row["id"])
            == 2
        )


class TestPlainReadings:
    async def test_meter_values_outside_a_transaction_are_kept(
        self,
        engine: AsyncEngine,
        station: int,
        connect_charger: ChargerFactory,
    ) -> None:
        cp = await connect_charger("CP-1")
        await cp.call(
            "MeterValues",
            {"connectorId": 0, "meterValue": [{"timestamp": ts(0), "sampledValue": [{"value": "7.5"}]}]},
        )
        [row] = await fetch(engine, "SELECT * FROM meter_sample")
        # no measurand means the import register, in Wh (OCPP 1.6 §7.31)
        assert (row["measurand"], row["value"], row["transaction_id"]) == (
            "Energy.Active.Import.Register",
            7.5,
            None,
        )
