"""Bad input gets the right CALLERROR, loses nothing, and the connection stays up."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.simulator import CallError, SimCharger
from tests.conftest import ChargerFactory
from tests.dbutil import scalar
from tests.test_gateway_sessions import ts


async def still_alive(cp: SimCharger) -> None:
    assert "currentTime" in await cp.call("Heartbeat", {})


@pytest.fixture
async def cp(station: int, connect_charger: ChargerFactory) -> SimCharger:
    return await connect_charger("CP-1")


class TestMalformedFrames:
    @pytest.mark.parametrize("raw", ["not json", '{"a": 1}', "[2]", "[]"])
    async def test_unparseable_frames_get_formation_violation(self, cp: SimCharger, raw: str) -> None:
        frame = await cp.send_raw(raw, expect_id="-1")
        assert frame[0] == 4 and frame[2] == "FormationViolation"
        await still_alive(cp)

    async def test_call_with_non_object_payload(self, cp: SimCharger) -> None:
        frame = await cp.send_raw(json.dumps([2, "m1", "Heartbeat", []]), expect_id="m1")
        assert frame[:3] == [4, "m1", "FormationViolation"]
        await still_alive(cp)

    async def test_unknown_message_type(self, cp: SimCharger) -> None:
        frame = await cp.send_raw(json.dumps([7, "m2", "Heartbeat", {}]), expect_id="m2")
        assert frame[:3] == [4, "m2", "ProtocolError"]
        await still_alive(cp)


class TestActions:
    async def test_unknown_action_is_not_implemented_at_once(self, cp: SimCharger) -> None:
        with pytest.raises(CallError) as err:
            await cp.call("FlyToTheMoon", {}, timeout=2)
        assert err.value.code == "NotImplemented"
        await still_alive(cp)

    async def test_known_but_unsupported_action_is_not_supported(self, cp: SimCharger) -> None:
        with pytest.raises(CallError) as err:
            await cp.call("SecurityEventNotification", {"type": "X", "timestamp": ts(0)}, timeout=2)
        assert err.value.code == "NotSupported"


class TestPayloadValidation:
    @pytest.mark.parametrize(
        ("action", "payload", "code"),
        [
            (
                "StatusNotification",
                {"connectorId": "one", "status": "Available", "errorCode": "NoError"},
                "TypeConstraintViolation",
            ),
            ("StatusNotification", {"connectorId": 1, "errorCode": "NoError"}, "ProtocolError"),
            (
                "StatusNotification",
                {"connectorId": 1, "status": "Available", "errorCode": "NoError", "colour": "red"},
                "FormationViolation",
            ),
            (
                "StatusNotification",
                {"connectorId": 1, "status": "Sleeping", "errorCode": "NoError"},
                "PropertyConstraintViolation",
            ),
            ("Authorize", {"idTag": "X" * 21}, "PropertyConstraintViolation"),
            (
                "StartTransaction",
                {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "yesterday"},
                "PropertyConstraintViolation",
            ),
            (
                "StartTransaction",
                {"connectorId": 0, "idTag": "T", "meterStart": 0, "timestamp": "2026-11-01T08:00:00Z"},
                "PropertyConstraintViolation",
            ),
            (
                "StatusNotification",
                {"connectorId": -1, "status": "Available", "errorCode": "NoError"},
                "PropertyConstraintViolation",
            ),
            ("MeterValues", {"connectorId": 1, "meterValue": []}, "OccurenceConstraintViolation"),
            (
                "MeterValues",
                {
                    "connectorId": 1,
                    "meterValue": [
                        {"timestamp": "2026-11-01T08:00:00Z", "sampledValue": [{"value": "lots"}]}
                    ],
                },
                "PropertyConstraintViolation",
            ),
        ],
    )
    async def test_violations_are_named_and_nothing_is_stored(
        self,
        engine: AsyncEngine,
        cp: SimCharger,
        action: str,
        payload: dict,
        code: str,
    ) -> None:
        before = await scalar(engine, "SELECT count(*) FROM meter_sample")
        with pytest.raises(CallError) as err:
            await cp.call(action, payload, timeout=2)
        assert err.value.code == code
        assert await scalar(engine, "SELECT count(*) FROM meter_sample") == before
        assert await scalar(engine, "SELECT count(*) FROM charging_transaction") == 0
        await still_alive(cp)

    async def test_local_time_without_offset_is_accepted_as_utc(
        self, cp: SimCharger, engine: AsyncEngine
    ) -> None:
        reply = await cp.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG-OK-1", "meterStart": 0, "timestamp": "2026-11-01T08:00:00"},
        )
        assert reply["transactionId"] > 0
