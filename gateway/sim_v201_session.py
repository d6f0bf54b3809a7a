"""A simulated OCPP 2.0.1 charging session: TransactionEvent Started / Updated / Ended.

The same session as the 1.6 simulator's (gateway/sim_session.py: the power curve, charging
profiles, reservations, AuthorizeRemoteStart), reported the 2.0.1 way: one transaction id the
charger chooses, a seqNo per message, trigger reasons, and an offline queue — events that occur
while the connection is down are kept in order and sent with offline=true after the reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import TYPE_CHECKING, Any

from gateway.sim_auth import authorize_offline
from gateway.sim_types import SMART_CHARGING
from schema.timeutil import to_ocpp, utcnow

if TYPE_CHECKING:
    from gateway.sim_v201 import Evse, SimCharger201

# The 1.6 stop reasons the shared helpers ask for (request_stop), as 2.0.1 (stoppedReason,
# triggerReason). A soft reset waits for sessions in 2.0.1 (OnIdle), so it stops none.
STOPS = {
    "Remote": ("Remote", "RemoteStop"),
    "Local": ("Local", "StopAuthorized"),
    "EVDisconnected": ("EVDisconnected", "EVDeparted"),
    "HardReset": ("ImmediateReset", "ResetCommand"),
    "SoftReset": ("Reboot", "ResetCommand"),
    "UnlockCommand": ("Other", "UnlockCommand"),
    "DeAuthorized": ("DeAuthorized", "Deauthorized"),
}
# A card reader reads ISO 14443 cards; tokens from the central system are Central.
CARD = "ISO14443"


def id_token(token: str, kind: str = CARD) -> dict[str, Any]:
    return {"idToken": token, "type": kind}


def tag_info(id_token_info: dict[str, Any]) -> dict[str, Any]:
    """A 2.0.1 idTokenInfo in the 1.6 idTagInfo shape the shared LocalAuth keeps."""
    info: dict[str, Any] = {"status": id_token_info["status"]}
    if "cacheExpiryDateTime" in id_token_info:
        info["expiryDate"] = id_token_info["cacheExpiryDateTime"]
    group = id_token_info.get("groupIdToken")
    if group is not None:
        info["parentIdTag"] = group["idToken"]
    return info


def meter_value(cp: SimCharger201, conn: Evse, power_w: int, context: str) -> list[dict[str, Any]]:
    """One meterValue: the register, the power and (in a session) the SoC."""
    sampled: list[dict[str, Any]] = [
        {
            "value": cp.register_wh,
            "measurand": "Energy.Active.Import.Register",
            "unitOfMeasure": {"unit": "Wh"},
            "context": context,
            "location": "Outlet",
        },
        {
            "value": power_w,
            "measurand": "Power.Active.Import",
            "unitOfMeasure": {"unit": "W"},
            "context": context,
        },
    ]
    if conn.tx_id is not None:
        sampled.append(
            {
                "value": round(conn.soc),
                "measurand": "SoC",
                "unitOfMeasure": {"unit": "Percent"},
                "location": "EV",
                "context": context,
            }
        )
    return [{"timestamp": to_ocpp(utcnow()), "sampledValue": sampled}]


async def authorize(cp: SimCharger201, token: str) -> dict[str, Any]:
    """As the 1.6 charger does (gateway/sim_auth.py), with 2.0.1's Authorize."""
    known = cp.local_auth.lookup(
        token,
        use_list=cp.config.flag("LocalAuthListEnabled"),
        use_cache=cp.config.flag("AuthorizationCacheEnabled"),
    )
    if known is not None and known["status"] == "Accepted" and cp.config.flag("LocalPreAuthorize"):
        return known
    result = await cp.call("Authorize", {"idToken": id_token(token)})
    info = tag_info(result["idTokenInfo"])
    if cp.config.flag("AuthorizationCacheEnabled"):
        cp.local_auth.remember(token, info)
    return info


async def run_session(
    cp: SimCharger201,
    evse_id: int,
    token: str,
    *,
    charging_profile: dict[str, Any] | None = None,
    remote_start_id: int | None = None,
) -> str | None:
    """Plug in, start, meter until the target SoC or a stop request, stop, unplug. Returns the
    transaction id, or None when the EVSE cannot take the session (as in sim_session.py)."""
    conn = cp.evses[evse_id]
    remote = remote_start_id is not None
    if conn.transaction_id is not None or cp.is_inoperative(evse_id):
        return None
    if not remote and not cp.online.is_set() and not authorize_offline(cp, token):
        return None  # offline: only what the local list (or cache) accepts may start
    admitted, reservation_id = cp.reservations.admit(evse_id, token, cp.local_auth.parent_of(token))
    if not admitted:
        return None
    if remote and cp.config.flag("AuthorizeRemoteTxRequests") and cp.online.is_set():
        if (await authorize(cp, token))["status"] != "Accepted":
            return None
    conn.soc = cp.rng.uniform(10, 40)
    conn.target_soc = cp.rng.uniform(70, 95)
    conn.battery_wh = cp.rng.choice([40_000, 60_000, 77_000, 100_000])
    conn.stop_requested, conn.stop_reason = False, None
    conn.wake.clear()
    conn.tx_id, conn.seq_no, conn.transaction_id = uuid.uuid4().hex, 0, cp.next_session_number()
    if reservation_id is not None:
        cp.reservations.consume(reservation_id)
    await cp.status(evse_id, "Preparing")
    started = cp.transaction_event(
        conn,
        "Started",
        "RemoteStart" if remote else "Authorized",
        id_token=id_token(token, "Central" if remote else CARD),
        meter=meter_value(cp, conn, 0, "Transaction.Begin"),
        charging_state="EVConnected",
        reservation_id=reservation_id,
        remote_start_id=remote_start_id,
        evse=True,
    )
    if cp.online.is_set():  # offline, the charger authorizes locally (LocalAuthorizeOffline)
        result = await started
        info = result.get("idTokenInfo")
        if info is not None and info["status"] != "Accepted":
            await _end(cp, conn, "DeAuthorized")
            return None
        if info is not None and cp.config.flag("AuthorizationCacheEnabled"):
            cp.local_auth.remember(token, tag_info(info))
    conn.id_tag, conn.tx_started_at = token, utcnow()
    if charging_profile is not None and SMART_CHARGING in cp.cfg.feature_profiles:
        cp.profiles.install(
            evse_id,
            {**charging_profile, "transactionId": conn.tx_id},
            active_transaction=conn.tx_id,  # type: ignore[arg-type]  # 2.0.1 ids are strings
            connector_ids=cp.connectors.keys(),
            rate_units=cp.cfg.charging_rate_units,
            now=utcnow(),
        )
    conn.status = "Charging"
    cp.transaction_event(conn, "Updated", "ChargingStateChanged", charging_state="Charging")
    reason = "Local"
    while not cp.stopping:
        interval = cp.cfg.meter_interval_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(conn.wake.wait(), interval / cp.cfg.speed)
        if conn.stop_requested:
            reason = conn.stop_reason or "Remote"
            break
        limit = cp.profiles.limit(
            evse_id, utcnow(), transaction_start=conn.tx_started_at, rated_w=conn.max_power_w
        )
        conn.power_w = power = min(cp.power_at(conn), int(limit.watts))
        state = "SuspendedEVSE" if power == 0 else "Charging"
        if state != conn.status:  # a zero limit pauses charging
            conn.status = state
            cp.transaction_event(conn, "Updated", "ChargingStateChanged", charging_state=state)
        delta_wh = int(power * interval / 3600)
        cp.register_wh += delta_wh
        conn.soc = min(100.0, conn.soc + delta_wh / conn.battery_wh * 100)
        await cp.meter(conn, power)
        if conn.soc >= conn.target_soc:
            reason = "EVDisconnected"
            break
    return await _end(cp, conn, reason)


async def _end(cp: SimCharger201, conn: Evse, reason: str) -> str | None:
    stopped, trigger = STOPS.get(reason, ("Other", "AbnormalCondition"))
    tx_id = conn.tx_id
    ended = cp.transaction_event(
        conn,
        "Ended",
        trigger,
        meter=meter_value(cp, conn, 0, "Transaction.End"),
        charging_state="EVConnected",
        stopped_reason=stopped,
    )
    conn.transaction_id, conn.tx_id, conn.tx_started_at, conn.power_w = None, None, None, 0
    cp.session_ended.set()
    cp.profiles.end_transaction(conn.connector_id)
    if cp.online.is_set() and not cp.stopping:
        with contextlib.suppress(ConnectionError, TimeoutError):
            await ended
    await cp.status(conn.connector_id, "Finishing")
    await cp.status(conn.connector_id, cp.idle_status(conn.connector_id))
    return tx_id
