"""Typed domain events. They are published on the bus only after the transaction that
recorded them commits, and carry enough state that subscribers need no database read.

Each event names the topics it belongs to; `to_dict`/`from_dict` make them transport-neutral
so an out-of-process bus can carry them unchanged.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar


def station_topic(station_id: int) -> str:
    return f"station:{station_id}"


def location_topic(location_id: int) -> str:
    return f"location:{location_id}"


def transaction_topic(transaction_id: int) -> str:
    return f"transaction:{transaction_id}"


def organization_incidents_topic(organization_id: int) -> str:
    return f"incidents:{organization_id}"


def organization_work_orders_topic(organization_id: int) -> str:
    return f"work_orders:{organization_id}"


ALL_STATIONS_TOPIC = "stations"
ALL_TRANSACTIONS_TOPIC = "transactions"


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | datetime):
        return value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain_fields(value)
    return copy.deepcopy(value)


def _plain_fields(obj: Any) -> dict[str, Any]:
    """`dataclasses.asdict` without its deep copy of every leaf: events are published by the
    thousand in a reconnect storm, and asdict was the largest cost of publishing them."""
    return {name: _plain(getattr(obj, name)) for name in _field_names(type(obj))}


@dataclass(frozen=True, slots=True)
class ConnectorState:
    connector_id: int
    status: str
    error_code: str
    status_since: datetime | None


def user_topic(user_id: int) -> str:
    return f"user:{user_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    """Anything the outbox, the bus and the worker carry. Events of a station extend `Event`;
    others (a driver's membership invoices) name their own topics."""

    kind: ClassVar[str] = "event"
    at: datetime

    def topics(self) -> tuple[str, ...]:
        return ()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **_plain_fields(self)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Event(DomainEvent):
    """Something that happened at a station: on its topics, its location's and all stations'."""

    kind: ClassVar[str] = "event"
    station_id: int
    charge_point_id: str
    location_id: int | None

    def topics(self) -> tuple[str, ...]:
        topics = [station_topic(self.station_id), ALL_STATIONS_TOPIC]
        if self.location_id is not None:
            topics.append(location_topic(self.location_id))
        return tuple(topics)


@dataclass(frozen=True, slots=True, kw_only=True)
class StationStatusChanged(Event):
    """A station came online, went offline, booted, or one of its connectors changed status.

    `connectors` is the full current view, so a subscriber never has to merge partial updates.
    """

    kind: ClassVar[str] = "station.status_changed"
    online: bool
    station_status: str
    station_error_code: str
    connectors: tuple[ConnectorState, ...]
    changed_connector_id: int | None = None
    reason: str = "status"


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionEvent(Event):
    kind: ClassVar[str] = "transaction"
    transaction_id: int
    connector_id: int
    state: str
    id_tag: str | None
    started_at: datetime
    stopped_at: datetime | None
    meter_start_wh: int
    energy_wh: int
    power_w: int | None
    soc_percent: int | None
    last_sample_at: datetime | None
    stop_reason: str | None

    def topics(self) -> tuple[str, ...]:
        return (
            transaction_topic(self.transaction_id),
            ALL_TRANSACTIONS_TOPIC,
            *Event.topics(self),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionStarted(TransactionEvent):
    kind: ClassVar[str] = "transaction.started"
    # 2.0.1: the remoteStartId the station echoed (ChargeNet's charging request id), if any.
    remote_start_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionUpdated(TransactionEvent):
    kind: ClassVar[str] = "transaction.updated"


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionEnded(TransactionEvent):
    kind: ClassVar[str] = "transaction.ended"
    start_missing: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StationReported(Event):
    """A fact a station reported that later capabilities react to (firmware, diagnostics, data)."""

    kind: ClassVar[str] = "station.reported"
    action: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class StationCommandCompleted(Event):
    """A command to the station got its answer (or gave up): for live operator views only;
    the command log is the record."""

    kind: ClassVar[str] = "station.command_completed"
    command_id: int
    name: str
    outcome: str
    station_status: str | None
    latency_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionFlagged(Event):
    """A session looks abandoned or broken: its station went offline, its meter went silent,
    or it ran beyond the maximum duration. Durable, so incidents and driver notifications can
    act on it; the `stuck_session` row is the record."""

    kind: ClassVar[str] = "session.flagged"
    transaction_id: int
    connector_id: int
    user_id: int | None
    reason: str

    def topics(self) -> tuple[str, ...]:
        return (transaction_topic(self.transaction_id), *Event.topics(self))


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargingRequestFailed(Event):
    """A driver's start never became a session (refused, offline, or the station gave up
    waiting for the cable). Durable: the driver is told even if no app is listening now."""

    kind: ClassVar[str] = "charging_request.failed"
    request_id: int
    connector_id: int | None
    user_id: int | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionCharged(Event):
    """A session was priced at its end (its `session_charge` row): what payment capture,
    receipts and the driver's notification act on. Durable."""

    kind: ClassVar[str] = "session.charged"
    transaction_id: int
    charge_id: int
    user_id: int | None
    currency: str
    total: int
    driver_amount: int

    def topics(self) -> tuple[str, ...]:
        return (transaction_topic(self.transaction_id), *Event.topics(self))


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentFailed(Event):
    """A session's price could not be taken from the driver's card: it is owed, and blocks the
    driver's next start until paid. Durable, so the driver is told."""

    kind: ClassVar[str] = "payment.failed"
    transaction_id: int
    user_id: int
    amount_due: int
    currency: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentChanged(Event):
    """An incident opened, recurred, was acknowledged, commented on or resolved: what
    `fleetAlerts` streams. Live only; the `incident` row and its entries are the record."""

    kind: ClassVar[str] = "incident.changed"
    incident_id: int
    organization_id: int | None
    connector_id: int | None
    incident_kind: str
    severity: str
    state: str
    title: str
    change: str  # opened | recurred | acknowledged | commented | resolved | reopened | updated

    def topics(self) -> tuple[str, ...]:
        if self.organization_id is None:
            return Event.topics(self)
        return (organization_incidents_topic(self.organization_id), *Event.topics(self))


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkOrderChanged(Event):
    """A work order was created, assigned, moved on, worked on (notes, parts, actions) or
    breached its SLA: what `workOrderUpdated` streams. Live only; the rows are the record."""

    kind: ClassVar[str] = "work_order.changed"
    work_order_id: int
    organization_id: int
    assignee_id: int | None
    state: str
    severity: str
    title: str
    sla_due_at: datetime
    change: str  # created | assigned | state | updated | action | sla_breached
    # Handed over: the technician who had it learns it left their queue.
    previous_assignee_id: int | None = None

    def topics(self) -> tuple[str, ...]:
        return (organization_work_orders_topic(self.organization_id),)


@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipInvoiceEvent(DomainEvent):
    """Stripe settled an invoice of a driver's membership. Durable: recorded in the webhook
    handler's transaction, so the driver can be told even if the process dies right after."""

    organization_id: int
    user_id: int
    membership_id: int
    stripe_invoice_id: str
    amount: int
    currency: str

    def topics(self) -> tuple[str, ...]:
        return (user_topic(self.user_id),)


@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipInvoicePaid(MembershipInvoiceEvent):
    """Paid, and ChargeNet's numbered invoice issued for it (`invoice_id`)."""

    kind: ClassVar[str] = "membership.invoice_paid"
    invoice_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipInvoiceFailed(MembershipInvoiceEvent):
    """The card was declined; on a renewal the membership's prices stop until it is paid."""

    kind: ClassVar[str] = "membership.invoice_failed"
    renewal: bool


EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.kind: cls
    for cls in (
        StationStatusChanged,
        TransactionStarted,
        TransactionUpdated,
        TransactionEnded,
        StationReported,
        StationCommandCompleted,
        SessionFlagged,
        ChargingRequestFailed,
        SessionCharged,
        PaymentFailed,
        IncidentChanged,
        WorkOrderChanged,
        MembershipInvoicePaid,
        MembershipInvoiceFailed,
    )
}


def event_from_dict(data: dict[str, Any]) -> DomainEvent:
    """Rebuild an event from `to_dict` output (datetimes as datetime or ISO text)."""
    data = dict(data)
    cls = EVENT_TYPES[data.pop("kind")]
    for f in dataclasses.fields(cls):
        value = data.get(f.name)
        if (isinstance(value, str) and f.name.endswith("_at")) or f.name == "at":
            data[f.name] = datetime.fromisoformat(value) if isinstance(value, str) else value
    if "connectors" in data:
        data["connectors"] = tuple(
            ConnectorState(
                **{
                    **c,
                    "status_since": datetime.fromisoformat(c["status_since"])
                    if isinstance(c.get("status_since"), str)
                    else c.get("status_since"),
                }
            )
            if isinstance(c, dict)
            else c
            for c in data["connectors"]
        )
    return cls(**data)
