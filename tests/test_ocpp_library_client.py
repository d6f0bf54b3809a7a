"""An independent OCPP 1.6 client (the `ocpp` library's ChargePoint, which validates every
answer against the official JSON schemas) runs a session and receives a remote command."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action, RegistrationStatus, RemoteStartStopStatus
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import connect

from gateway.server import Gateway
from schema.bus import InProcessBus
from schema.commands import RemoteStart
from tests.builders import ACCEPTED_TAGS
from tests.dbutil import fetch
from tests.test_gateway_sessions import ts

# The library logs whole frames at INFO, id tags included.
logging.getLogger("ocpp").setLevel(logging.WARNING)


class LibraryCharger(ChargePoint):  # type: ignore[misc]
    remote_starts: list[str]

    @on(Action.remote_start_transaction)
    async def on_remote_start(self, id_tag: str, **kwargs: Any) -> call_result.RemoteStartTransaction:
        self.remote_starts.append(id_tag)
        return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted)


async def test_library_client_session_and_remote_start(
    engine: AsyncEngine,
    gateway: Gateway,
    station: int,
    bus: InProcessBus,
) -> None:
    async with connect(f"ws://127.0.0.1:{gateway.bound_port}/ocpp/CP-1", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        cp = LibraryCharger("CP-1", ws)
        cp.remote_starts = []
        listener = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(call.BootNotification(charge_point_vendor="Lib", charge_point_model="L1"))
            assert boot.status == RegistrationStatus.accepted
            await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
            start = await cp.call(
                call.StartTransaction(
                    connector_id=1, id_tag=ACCEPTED_TAGS[0], meter_start=100, timestamp=ts(0)
                )
            )
            await cp.call(
                call.MeterValues(
                    connector_id=1,
                    transaction_id=start.transaction_id,
                    meter_value=[{"timestamp": ts(5), "sampledValue": [{"value": "1100", "unit": "Wh"}]}],
                )
            )
            stop = await cp.call(
                call.StopTransaction(meter_stop=2100, timestamp=ts(10), transaction_id=start.transaction_id)
            )
            assert stop.id_tag_info is None
            reply = await bus.request("CP-1", RemoteStart(id_tag=ACCEPTED_TAGS[1], connector_id=1), timeout=5)
            assert reply.accepted and cp.remote_starts == [ACCEPTED_TAGS[1]]
        finally:
            listener.cancel()
    [row] = await fetch(engine, "SELECT energy_wh, state FROM charging_transaction")
    assert row == {"energy_wh": 2000, "state": "Completed"}
