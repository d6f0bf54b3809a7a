"""A simulated charging session: plug in, authorize, start, meter, stop, unplug.

The energy register rises with the charger's power curve, held within the charging profiles
in force (gateway/sim_smart.py); reservations, the local list and AuthorizeRemoteTxRequests
decide whether a session may start at all (OCPP 1.6 §3.5, §5.13).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from gateway.sim_auth import authorize, authorize_offline, parent_of
from gateway.sim_types import SMART_CHARGING
from schema.timeutil import to_ocpp, utcnow

if TYPE_CHECKING:
    from gateway.simulator import SimCharger, SimConnector


def meter_payload(conn: SimConnector, register_wh: int, power_w: int) -> dict[str, Any]:
    """MeterValues.req for one connector: register, power and (in a session) the SoC."""
    sampled: list[dict[str, Any]] = [
        {
            "value": str(register_wh),
            "measurand": "Energy.Active.Import.Register",
            "unit": "Wh",
            "context": "Sample.Periodic",
            "location": "Outlet",
        },
        {
            "value": str(power_w),
            "measurand": "Power.Active.Import",
            "unit": "W",
            "context": "Sample.Periodic",
        },
    ]
    if conn.transaction_id is not None:
        sampled.append(
            {
                "value": f"{conn.soc:.0f}",
                "measurand": "SoC",
                "unit": "Percent",
                "location": "EV",
                "context": "Sample.Periodic",
            }
        )
    payload: dict[str, Any] = {
        "connectorId": conn.connector_id,
        "meterValue": [{"timestamp": to_ocpp(utcnow()), "sampledValue": sampled}],
    }
    if conn.transaction_id is not None:
        payload["transactionId"] = conn.transaction_id
    return payload


async def run_session(
    cp: SimCharger,
    connector_id: int,
    id_tag: str,
    *,
    charging_profile: dict[str, Any] | None = None,
    remote: bool = False,
) -> int | None:
    """Plug in, start, meter until the target SoC or a stop request, stop, unplug.

    Returns None without starting on an Inoperative connector, one reserved for another
    tag, or (AuthorizeRemoteTxRequests) a remote start the central system does not
    authorize. A reservation for this tag or its parentIdTag is used up and named in
    StartTransaction; the power drawn stays within the charging profiles in force.
    """
    conn = cp.connectors[connector_id]
    if conn.transaction_id is not None or cp.is_inoperative(connector_id):
        return None
    if not remote and not cp.online.is_set() and not authorize_offline(cp, id_tag):
        return None  # offline: only what the local list (or cache) accepts may start
    admitted, reservation_id = cp.reservations.admit(connector_id, id_tag, await parent_of(cp, id_tag))
    if not admitted:
        return None
    if remote and cp.config.flag("AuthorizeRemoteTxRequests"):
        if (await authorize(cp, id_tag))["status"] != "Accepted":
            return None
    conn.soc = cp.rng.uniform(10, 40)
    conn.target_soc = cp.rng.uniform(70, 95)
    conn.battery_wh = cp.rng.choice([40_000, 60_000, 77_000, 100_000])
    conn.stop_requested, conn.stop_reason = False, None
    conn.wake.clear()
    start: dict[str, Any] = {
        "connectorId": connector_id,
        "idTag": id_tag,
        "meterStart": cp.register_wh,
        "timestamp": to_ocpp(utcnow()),
    }
    if reservation_id is not None:
        cp.reservations.consume(reservation_id)
        start["reservationId"] = reservation_id
    await cp.status(connector_id, "Preparing")
    result = await cp.call_transactional("StartTransaction", start)
    if cp.config.flag("AuthorizationCacheEnabled"):
        cp.local_auth.remember(id_tag, result["idTagInfo"])
    if result["idTagInfo"]["status"] != "Accepted":
        await cp.call(
            "StopTransaction",
            {
                "transactionId": result["transactionId"],
                "meterStop": cp.register_wh,
                "timestamp": to_ocpp(utcnow()),
                "reason": "DeAuthorized",
            },
        )
        await cp.status(connector_id, cp.idle_status(connector_id))
        return None
    conn.transaction_id, conn.id_tag = result["transactionId"], id_tag
    conn.tx_started_at = utcnow()
    if charging_profile is not None and SMART_CHARGING in cp.cfg.feature_profiles:
        cp.profiles.install(
            connector_id,
            {**charging_profile, "transactionId": conn.transaction_id},
            active_transaction=conn.transaction_id,
            connector_ids=cp.connectors.keys(),
            rate_units=cp.cfg.charging_rate_units,
            now=utcnow(),
        )
    await cp.status(connector_id, "Charging")
    reason = "Local"
    while not cp.stopping:
        interval = cp.cfg.meter_interval_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(conn.wake.wait(), interval / cp.cfg.speed)
        if conn.stop_requested:
            reason = conn.stop_reason or "Remote"
            break
        limit = cp.profiles.limit(
            connector_id, utcnow(), transaction_start=conn.tx_started_at, rated_w=conn.max_power_w
        )
        conn.power_w = power = min(cp.power_at(conn), int(limit.watts))
        if (power == 0) != (conn.status == "SuspendedEVSE"):  # a zero limit pauses charging
            await cp.status(connector_id, "SuspendedEVSE" if power == 0 else "Charging")
        delta_wh = int(power * interval / 3600)
        cp.register_wh += delta_wh
        conn.soc = min(100.0, conn.soc + delta_wh / conn.battery_wh * 100)
        await cp.meter(conn, power)
        if conn.soc >= conn.target_soc:
            reason = "EVDisconnected"
            break
    tx_id = conn.transaction_id
    await cp.call_transactional(
        "StopTransaction",
        {
            "transactionId": tx_id,
            "meterStop": cp.register_wh,
            "timestamp": to_ocpp(utcnow()),
            "idTag": id_tag,
            "reason": reason,
        },
    )
    conn.transaction_id, conn.tx_started_at, conn.power_w = None, None, 0
    cp.session_ended.set()
    cp.profiles.end_transaction(connector_id)
    await cp.status(connector_id, "Finishing")
    await cp.status(connector_id, cp.idle_status(connector_id))
    return tx_id
