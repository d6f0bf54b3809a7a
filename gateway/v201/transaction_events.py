"""OCPP 2.0.1 TransactionEvent: Started / Updated / Ended onto ChargeNet's sessions.

The station names the session (transactionInfo.transactionId); ChargeNet files it under that
id (gateway/transactions.py), so:

* a resent event (a lost CALLRESULT) or an offline replay (offline=true, hours late) changes
  nothing twice: a repeated Started finds its session, meter samples are keyed by the fact,
  the live view only moves forward, and an ended session stays ended;
* an Updated or Ended whose Started never arrived still records the session (an Ended one
  flagged start_missing, like 1.6's orphan StopTransaction);
* seqNo counts each session's messages from 0: a gap means messages were lost and is logged.

Energy: the Energy.Active.Import.Register in Started's meterValue (context Transaction.Begin)
is the start; the last one in Ended's is the stop. A Started without a register takes the
first register the session reports later (known on this connection only).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.meter import BadSample, first_register, latest_reading, parse_samples
from gateway.ocppj import OcppError
from gateway.state import StationContext
from gateway.station_transactions import attach_id_tag, find_station_transaction, set_meter_start
from gateway.status import StatusReport, record_status
from gateway.transactions import (
    IdTagInfo,
    StartRequest,
    StopRequest,
    record_meter_values,
    start_transaction,
    stop_transaction,
)
from gateway.v201 import evse
from gateway.writer import Writer
from schema.timeutil import parse_ocpp_datetime

log = logging.getLogger(__name__)

# 2.0.1 stoppedReason words ChargeNet (1.6) spells differently; the others keep their name.
STOPPED_REASONS = {"ImmediateReset": "HardReset"}
# Without a stoppedReason (2.0.1: absent means Local), the trigger can still say who stopped.
TRIGGER_STOP_REASONS = {
    "RemoteStop": "Remote",
    "Deauthorized": "DeAuthorized",
    "EVDeparted": "EVDisconnected",
    "EVCommunicationLost": "EVDisconnected",
    "UnlockCommand": "UnlockCommand",
    "ResetCommand": "Reboot",
    "EnergyLimitReached": "EnergyLimitReached",
    "TimeLimitReached": "TimeLimitReached",
    "AbnormalCondition": "Other",
}
DEFAULT_STOP_REASON = "Local"
NO_AUTHORIZATION = "NoAuthorization"
# Sessions a connection remembers seqNo for: bounds memory on a station that never ends them.
MAX_TRACKED_SESSIONS = 64


def stop_reason(stopped_reason: str | None, trigger_reason: str) -> str:
    """ChargeNet's stop_reason for an Ended event."""
    if stopped_reason:
        return STOPPED_REASONS.get(stopped_reason, stopped_reason)
    return TRIGGER_STOP_REASONS.get(trigger_reason, DEFAULT_STOP_REASON)


def id_token(token: dict[str, Any] | None) -> str | None:
    """The token value ChargeNet authorizes, or None (absent, or NoAuthorization)."""
    if token is None or token["type"] == NO_AUTHORIZATION:
        return None
    return str(token["idToken"])


def id_token_info(info: IdTagInfo) -> dict[str, Any]:
    """1.6's idTagInfo in 2.0.1 words (the statuses are a subset of 2.0.1's)."""
    result: dict[str, Any] = {"status": info.status}
    ocpp = info.to_ocpp()
    if "expiryDate" in ocpp:
        result["cacheExpiryDateTime"] = ocpp["expiryDate"]
    if info.parent_id_tag:
        result["groupIdToken"] = {"idToken": info.parent_id_tag, "type": "Central"}
    return result


def timestamp(value: str) -> datetime:
    """An OCPP timestamp, or the CALLERROR for one that is not (the schema lets "yesterday" by)."""
    try:
        return parse_ocpp_datetime(value)
    except ValueError:
        raise OcppError("PropertyConstraintViolation", f"bad timestamp {value[:40]!r}") from None


@dataclass(frozen=True, slots=True)
class Event:
    """What ChargeNet reads from one TransactionEvent."""

    kind: str
    station_transaction_id: str
    seq_no: int
    at: datetime
    connector_id: int | None
    id_tag: str | None
    meter_values: list[dict[str, Any]]
    register_wh: int | None
    charging_state: str | None
    reason: str
    reservation_id: int | None
    remote_start_id: int | None

    @classmethod
    def parse(cls, p: dict[str, Any]) -> Event:
        info = p["transactionInfo"]
        meter_values = p.get("meterValue") or []
        try:
            reading = latest_reading(parse_samples(meter_values))
        except (BadSample, ValueError) as exc:
            raise OcppError("PropertyConstraintViolation", str(exc)) from None
        found = p.get("evse")
        return cls(
            kind=p["eventType"],
            station_transaction_id=info["transactionId"],
            seq_no=p["seqNo"],
            at=timestamp(p["timestamp"]),
            connector_id=found["id"] if found else None,
            id_tag=id_token(p.get("idToken")),
            meter_values=meter_values,
            register_wh=reading.register_wh,
            charging_state=info.get("chargingState"),
            reason=stop_reason(info.get("stoppedReason"), p["triggerReason"]),
            reservation_id=p.get("reservationId"),
            remote_start_id=info.get("remoteStartId"),
        )


class TransactionEvents:
    """The TransactionEvent side of one connected 2.0.1 station."""

    def __init__(self, ctx: StationContext, engine: AsyncEngine, writer: Writer) -> None:
        self.ctx = ctx
        self.engine = engine
        self.writer = writer
        self._seq: dict[str, int] = {}
        # Sessions started without a register reading: their first reading is the start.
        self._start_unknown: set[int] = set()

    async def handle(self, p: dict[str, Any]) -> dict[str, Any]:
        event = Event.parse(p)
        self._check_sequence(event, offline=bool(p.get("offline")))
        if event.kind == "Ended":
            tag, connector_id = await self._ended(event)
        else:
            tag, connector_id = await self._started_or_updated(event)
        status = evse.charging_status(event.charging_state, ended=event.kind == "Ended")
        if status is not None and connector_id:
            await record_status(
                self.writer, self.ctx, StatusReport(connector_id, status, evse.NO_ERROR, timestamp=event.at)
            )
        return {"idTokenInfo": id_token_info(tag)} if tag is not None else {}

    def _check_sequence(self, event: Event, *, offline: bool) -> None:
        cpid, tx = self.ctx.charge_point_id, event.station_transaction_id
        last = self._seq.get(tx)
        expected = 0 if last is None else last + 1
        if last is not None and event.seq_no <= last:
            log.info("%s: TransactionEvent %s seqNo %d again (resend)", cpid, tx, event.seq_no)
        elif event.seq_no > expected and (last is not None or event.kind == "Started"):
            log.warning(
                "%s: TransactionEvent %s seqNo %d after %s: %d message(s) lost%s",
                cpid,
                tx,
                event.seq_no,
                "none" if last is None else last,
                event.seq_no - expected,
                " (offline replay)" if offline else "",
            )
        if event.kind == "Ended":
            self._seq.pop(tx, None)
            return
        if len(self._seq) >= MAX_TRACKED_SESSIONS and tx not in self._seq:
            self._seq.pop(next(iter(self._seq)))
        self._seq[tx] = max(event.seq_no, -1 if last is None else last)

    async def _started_or_updated(self, event: Event) -> tuple[IdTagInfo | None, int | None]:
        found = await find_station_transaction(self.engine, self.ctx, event.station_transaction_id)
        tag: IdTagInfo | None = None
        if found is None:
            # Started, or an Updated whose Started was lost: the session begins here.
            tx_id, info = await start_transaction(
                self.engine,
                self.writer,
                self.ctx,
                StartRequest(
                    connector_id=event.connector_id or 0,
                    id_tag=event.id_tag,
                    meter_start_wh=event.register_wh or 0,
                    timestamp=event.at,
                    reservation_id=event.reservation_id,
                    station_transaction_id=event.station_transaction_id,
                    remote_start_id=event.remote_start_id,
                ),
            )
            tag = info if event.id_tag is not None else None
            if event.register_wh is None and tx_id in self.ctx.transactions:
                self._start_unknown.add(tx_id)
        else:
            tx_id, _active = found
            if event.id_tag is not None:
                # Plug in first, authorize later: the token becomes the session's.
                tag = await attach_id_tag(self.engine, self.writer, self.ctx, tx_id, event.id_tag)
            if tx_id in self._start_unknown and event.register_wh is not None:
                self._start_unknown.discard(tx_id)
                await set_meter_start(self.writer, self.ctx, tx_id, self._first_register(event))
        active = self.ctx.transactions.get(tx_id)
        connector_id = active.connector_id if active is not None else event.connector_id
        if event.meter_values:
            try:
                await record_meter_values(self.writer, self.ctx, connector_id or 0, tx_id, event.meter_values)
            except BadSample as exc:
                raise OcppError("PropertyConstraintViolation", str(exc)) from None
        return tag, connector_id

    @staticmethod
    def _first_register(event: Event) -> int:
        """The earliest register reading in the event (the latest is `register_wh`)."""
        first = first_register(parse_samples(event.meter_values))
        assert first is not None  # called only when the event has a register
        return first[1]

    async def _ended(self, event: Event) -> tuple[IdTagInfo | None, int | None]:
        found = await find_station_transaction(self.engine, self.ctx, event.station_transaction_id)
        active = self.ctx.transactions.get(found[0]) if found is not None else None
        connector_id = active.connector_id if active is not None else event.connector_id
        if found is not None and found[0] in self._start_unknown:
            self._start_unknown.discard(found[0])
            if event.register_wh is not None:
                await set_meter_start(self.writer, self.ctx, found[0], self._first_register(event))
        try:
            tag = await stop_transaction(
                self.engine,
                self.writer,
                self.ctx,
                StopRequest(
                    transaction_id=None,
                    meter_stop_wh=event.register_wh,
                    timestamp=event.at,
                    id_tag=event.id_tag,
                    reason=event.reason,
                    transaction_data=event.meter_values,
                    station_transaction_id=event.station_transaction_id,
                    connector_id=event.connector_id,
                ),
            )
        except BadSample as exc:
            raise OcppError("PropertyConstraintViolation", str(exc)) from None
        return tag, connector_id
