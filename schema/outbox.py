"""The transactional outbox: durable events recorded with the facts they announce.

Which events are durable (money and maintenance depend on them):
- `TransactionStarted` and `TransactionEnded`, always;
- `StationStatusChanged` when the connector that changed (connector 0: the station as a whole)
  is Faulted or reports an error code other than NoError.
- `SessionFlagged`, `ChargingRequestFailed`, `SessionCharged` and `PaymentFailed`, which the
  worker writes itself
  (`append`) in the transaction that flags the session or fails the request.
- `StationReported` for a 2.0.1 SecurityEventNotification, and for a NotifyEvent that raises
  or clears an alert (`notify_event_alerts`): detection opens and resolves incidents on them.
Everything else — meter ticks (`TransactionUpdated`), online/offline flips, fault-free status
changes, other station reports — is live only: published after commit, lost if nobody listens.
A fault's recovery is live only as well; jobs that need the current state read it from the
connector row, which the same transaction updated (detection's reconcile job does exactly
that, see api/service/faults.py).

The gateway's writer inserts `outbox_rows(...)` inside the batch's transaction; a relay moves
unpublished rows, in id order, to the durable channel and marks them published.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schema.enums import ConnectorStatus
from schema.events import (
    ChargingRequestFailed,
    DomainEvent,
    Event,
    SessionCharged,
    SessionFlagged,
    StationReported,
    StationStatusChanged,
    TransactionEnded,
    TransactionStarted,
    event_from_dict,
)
from schema.work_models import OutboxEvent

OUTBOX: Table = OutboxEvent.__table__  # type: ignore[attr-defined]

NO_ERROR = "NoError"
_ALWAYS_DURABLE = (
    TransactionStarted,
    TransactionEnded,
    SessionFlagged,
    ChargingRequestFailed,
    SessionCharged,
)


def is_durable(event: Event) -> bool:
    """Whether `event` goes through the outbox (see the module docstring for the rule)."""
    cls = type(event)
    if cls in _ALWAYS_DURABLE:
        return True
    if cls is StationStatusChanged:
        return _is_fault(event)  # type: ignore[arg-type]
    if cls is StationReported:
        return _is_alert(event)  # type: ignore[arg-type]
    return False


# NotifyEvent variables that say "something is wrong" when true (OCPP 2.0.1 Part 2 §N, the
# standardized component variables) — their false is the all-clear.
ALERT_VARIABLES = frozenset({"Problem", "Fault", "Tripped"})


def notify_event_alerts(event: dict[str, Any]) -> bool:
    """Whether one NotifyEvent entry (as the gateway records it) raises or clears an alert:
    a monitor's Alerting trigger, a problem variable, a vendor tech code, or a clearing."""
    return (
        event.get("trigger") == "Alerting"
        or event.get("variable") in ALERT_VARIABLES
        or bool(event.get("tech_code"))
        or bool(event.get("cleared"))
    )


def _is_alert(event: StationReported) -> bool:
    if event.action == "SecurityEventNotification":
        return True
    if event.action == "NotifyEvent":
        return any(notify_event_alerts(e) for e in event.detail.get("events", ()))
    return False


def _is_fault(event: StationStatusChanged) -> bool:
    cid = event.changed_connector_id
    if cid is None:
        return False
    if cid == 0:
        status, error_code = event.station_status, event.station_error_code
    else:
        found = next((c for c in event.connectors if c.connector_id == cid), None)
        if found is None:
            return False
        status, error_code = found.status, found.error_code
    return status == ConnectorStatus.FAULTED.value or error_code != NO_ERROR


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def event_payload(event: DomainEvent) -> dict[str, Any]:
    """`event.to_dict()` as plain JSON values (datetimes as ISO 8601 text)."""
    return _jsonable(event.to_dict())  # type: ignore[no-any-return]


def outbox_rows(events: Iterable[DomainEvent], now: datetime) -> list[dict[str, Any]]:
    return [
        {"event_type": e.kind, "payload": event_payload(e), "created_at": now, "published_at": None}
        for e in events
    ]


async def append(conn: AsyncConnection, events: Sequence[DomainEvent], now: datetime) -> None:
    """Record `events` in the caller's transaction: they are relayed only if it commits."""
    if events:
        await conn.execute(OUTBOX.insert(), outbox_rows(events, now))


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One durable event on its way: the outbox row id is its identity everywhere (the
    processed-event ledger is keyed by it), whatever channel carries it."""

    id: int
    event_type: str
    payload: dict[str, Any]

    def event(self) -> DomainEvent:
        return event_from_dict(self.payload)

    def to_fields(self) -> dict[str, str]:
        """Redis Stream entry fields."""
        return {"id": str(self.id), "type": self.event_type, "data": json.dumps(self.payload)}

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes] | dict[str, str]) -> OutboxMessage:
        f = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
        text = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.items()}
        return cls(int(text["id"]), text["type"], json.loads(text["data"]))


async def fetch_pending(conn: AsyncConnection, limit: int) -> list[OutboxMessage]:
    """The oldest unpublished rows. On PostgreSQL they are locked and rows another relay holds
    are skipped, so replicas relay side by side without sending the same row twice."""
    stmt = (
        select(OUTBOX.c.id, OUTBOX.c.event_type, OUTBOX.c.payload)
        .where(OUTBOX.c.published_at.is_(None))
        .order_by(OUTBOX.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = (await conn.execute(stmt)).all()
    return [OutboxMessage(int(r.id), r.event_type, r.payload) for r in rows]


async def mark_published(conn: AsyncConnection, ids: Sequence[int], at: datetime) -> None:
    await conn.execute(update(OUTBOX).where(OUTBOX.c.id.in_(ids)).values(published_at=at))


async def purge_published(conn: AsyncConnection, before: datetime) -> int:
    result = await conn.execute(
        delete(OUTBOX).where(OUTBOX.c.published_at.is_not(None), OUTBOX.c.published_at < before)
    )
    return int(result.rowcount or 0)
