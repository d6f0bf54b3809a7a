"""Fixtures and payload builders for the OCPP 2.0.1 tests: simulated 2.0.1 stations on the
real gateway (import `connect201` into a test module to use it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from gateway.server import Gateway
from gateway.sim_v201 import SimCharger201, SimConfig
from schema.timeutil import to_ocpp, utcnow

Charger201Factory = Callable[..., Awaitable[SimCharger201]]
T0 = utcnow().replace(microsecond=0) - timedelta(hours=2)


@pytest.fixture
async def connect201(gateway: Gateway) -> AsyncIterator[Charger201Factory]:
    """Connect a simulated 2.0.1 station (booted, every EVSE reported, unless boot=False)."""
    chargers: list[SimCharger201] = []

    async def factory(cpid: str, *, boot: bool = True, **cfg: Any) -> SimCharger201:
        cfg.setdefault("url", f"ws://127.0.0.1:{gateway.bound_port}/ocpp")
        charger = SimCharger201(SimConfig(charge_point_id=cpid, **cfg))
        await charger.connect()
        chargers.append(charger)
        if boot:
            await charger.start()
        return charger

    yield factory
    for c in chargers:
        await c.close()


def ts(minutes: float = 0) -> str:
    return to_ocpp(T0 + timedelta(minutes=minutes))


def register(wh: float, minutes: float, context: str = "Sample.Periodic", unit: str = "Wh") -> dict[str, Any]:
    return {
        "timestamp": ts(minutes),
        "sampledValue": [
            {
                "value": wh,
                "measurand": "Energy.Active.Import.Register",
                "context": context,
                "unitOfMeasure": {"unit": unit},
            }
        ],
    }


def tx_event(
    kind: str,
    tx_id: str,
    seq_no: int,
    minutes: float,
    *,
    trigger: str = "MeterValuePeriodic",
    evse: int | None = 1,
    meter: list[dict[str, Any]] | None = None,
    token: str | None = None,
    offline: bool = False,
    **info: Any,
) -> dict[str, Any]:
    """A TransactionEvent as a station sends it."""
    payload: dict[str, Any] = {
        "eventType": kind,
        "timestamp": ts(minutes),
        "triggerReason": trigger,
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": tx_id, **info},
    }
    if evse is not None:
        payload["evse"] = {"id": evse, "connectorId": 1}
    if meter:
        payload["meterValue"] = meter
    if token is not None:
        payload["idToken"] = {"idToken": token, "type": "ISO14443"}
    if offline:
        payload["offline"] = True
    return payload


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 5.0) -> None:
    """Wait until `check()` holds (what a station does after its answer is asynchronous)."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110  (the fact is in the database, not an Event)
            await asyncio.sleep(0.02)
