"""Remote start and stop. A RemoteStart is only a request: the session exists when the
station sends StartTransaction, so the service waits (bounded) for that event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit import service as audit
from api.audit.service import Actor
from api.auth.principal import Principal
from api.auth.roles import Permission
from api.billing import pay_as_you_go
from api.billing.payment_types import PaymentGateway
from api.control import requests
from api.network import repository as network
from api.sessions import repository as sessions
from schema.bus import Bus, Subscription
from schema.commands import Command, CommandReply, RemoteStart, RemoteStop
from schema.enums import TransactionState
from schema.errors import (
    BusUnavailable,
    CommandFailed,
    CommandTimeout,
    Forbidden,
    InvalidInput,
    NotFound,
    StationOffline,
)
from schema.events import (
    TransactionEnded,
    TransactionEvent,
    TransactionStarted,
    station_topic,
    transaction_topic,
)
from schema.models import ChargingStation
from schema.request_models import ChargingRequest, ChargingRequestState

# OCPP 1.6 IdToken is CiString20; 2.0.1 allows 36.
MAX_ID_TAG_LENGTH = 20
# The longest a mutation may hold its HTTP request waiting for the station to act.
MAX_WAIT_S = 60.0


class CommandOutcome(StrEnum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    STATION_OFFLINE = "STATION_OFFLINE"
    TIMED_OUT = "TIMED_OUT"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    FAILED = "FAILED"
    NOT_ACTIVE = "NOT_ACTIVE"
    # Pay-as-you-go starts (api.billing.pay_as_you_go): the station was not asked.
    PAYMENT_REQUIRED = "PAYMENT_REQUIRED"  # no card, or an unpaid session to settle first
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    PAYMENT_ACTION_REQUIRED = "PAYMENT_ACTION_REQUIRED"  # 3-D Secure: confirm, then resumeCharging
    PAYMENT_UNAVAILABLE = "PAYMENT_UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class ControlResult:
    outcome: CommandOutcome
    message: str
    transaction_id: int | None = None
    station_status: str | None = None
    request_id: int | None = None
    # PAYMENT_ACTION_REQUIRED: what the app confirms the payment with.
    payment_client_secret: str | None = None


async def _update_request(db: async_sessionmaker[AsyncSession], fn: Callable[..., Any], *args: Any) -> None:
    async with db() as s:
        await fn(await s.connection(), *args)
        await s.commit()


async def _link_running(
    db: async_sessionmaker[AsyncSession], request_id: int, station_id: int, station_transaction_id: str
) -> int | None:
    async with db() as s:
        linked = await requests.link_running(
            await s.connection(), request_id, station_id, station_transaction_id
        )
        await s.commit()
    return linked


async def send(
    bus: Bus, charge_point_id: str, command: Command, timeout: float
) -> tuple[CommandOutcome, str, CommandReply | None]:
    """Send a command and classify the answer; never raises for a station's behaviour."""
    try:
        reply = await bus.request(charge_point_id, command, timeout=timeout)
    except StationOffline as exc:
        return CommandOutcome.STATION_OFFLINE, exc.message, None
    except CommandTimeout as exc:
        return CommandOutcome.TIMED_OUT, exc.message, None
    except CommandFailed as exc:
        if exc.station_code in ("NotImplemented", "NotSupported"):
            return CommandOutcome.NOT_SUPPORTED, exc.message, None
        return CommandOutcome.FAILED, exc.message, None
    except BusUnavailable:
        return CommandOutcome.FAILED, "commands can't reach the stations right now; try again shortly", None
    if not reply.accepted:
        return CommandOutcome.REJECTED, f"station answered {reply.status}", reply
    return CommandOutcome.ACCEPTED, "accepted by the station", reply


E = TypeVar("E", bound=TransactionEvent)


async def _wait_for(
    sub: Subscription,
    wait_s: float,
    match: type[E],
    pred: Callable[[E], bool],
) -> E | None:
    """The first `match` event satisfying `pred` within `wait_s`, else None."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while (left := deadline - loop.time()) > 0:
        try:
            event = await sub.next(left)
        except TimeoutError:
            return None
        if isinstance(event, match) and pred(event):
            return event
    return None


async def _start_tag(
    s: AsyncSession, principal: Principal, station_org: int | None, id_tag: str | None
) -> str:
    """The idTag to start with, if this caller may start here with it.

    Operators with `stations:control` at the station's organisation may use any tag (a
    customer on the phone). Drivers may start any public station, but only with a token of
    their own, by default their app token.
    """
    if principal.can(Permission.STATIONS_CONTROL, station_org):
        if not id_tag:
            raise InvalidInput("idTag is required")
        return id_tag
    if not principal.is_user:
        raise Forbidden("requires stations:control at this station's organisation")
    tag = await sessions.driver_start_tag(s, principal.user_id or 0, id_tag)
    if tag is None:
        raise InvalidInput(
            "that token is not one of your active cards or app tokens" if id_tag else "you have no app token"
        )
    return tag


async def start_charging(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    actor: Actor,
    *,
    station_id: int | None,
    connector_id: int | None,
    id_tag: str | None,
    wait_s: float,
    command_timeout_s: float,
    qr_code: str | None = None,
    payments: PaymentGateway | None = None,
) -> ControlResult:
    """Start a session: the charging request is recorded first and returned whatever the
    station does; with `wait_s` > 0 the call also waits (bounded) for the session itself."""
    if id_tag is not None and (not id_tag or len(id_tag) > MAX_ID_TAG_LENGTH):
        raise InvalidInput(f"idTag must be 1–{MAX_ID_TAG_LENGTH} characters")
    if (station_id is None) == (qr_code is None):
        raise InvalidInput("give either stationId (and optionally connectorId) or qrCode")
    principal = actor.principal
    async with db() as s:
        if qr_code is not None:
            if connector_id is not None:
                raise InvalidInput("a qrCode already names the connector")
            cpid, connector_id = requests.parse_qr_code(qr_code)
            station = await network.station_by_charge_point_id(s, principal, cpid)
        else:
            station = (await network.stations_by_ids(s, principal, [station_id or 0])).get(station_id or 0)
        if station is None:
            raise NotFound("no such station")
        station_id = station.id or 0
        if connector_id is not None and connector_id < 1:
            raise InvalidInput("connectorId starts at 1")
        tag = await _start_tag(s, principal, station.organization_id, id_tag)
        if connector_id is not None:
            connectors = await network.connectors_by_station_ids(s, principal, [station_id])
            if connector_id not in {c.connector_id for c in connectors.get(station_id, [])}:
                raise NotFound(f"station has no connector {connector_id}")
        conn = await s.connection()
        request_id = await requests.open_request(
            conn,
            station_id=station_id,
            organization_id=station.organization_id,
            connector_id=connector_id,
            user_id=principal.user_id if principal.is_user else None,
            id_tag=tag,
        )
        await s.commit()
    if payments is not None and principal.is_user:
        gate = await pay_as_you_go.authorize_start(
            db,
            payments,
            user_id=principal.user_id or 0,
            organization_id=station.organization_id,
            request_id=request_id,
        )
        refused = _payment_refusal(gate)
        if refused is not None:
            if refused is CommandOutcome.PAYMENT_ACTION_REQUIRED:
                await _update_request(db, requests.await_payment, request_id)
            else:
                await _update_request(db, requests.fail_request, request_id, gate.message)
            result = ControlResult(
                refused, gate.message, request_id=request_id, payment_client_secret=gate.client_secret
            )
            await _audit(
                db, actor, "station.remote_start", station.organization_id, station_id, result, connector_id
            )
            return result
    return await _send_start(
        db,
        bus,
        actor,
        station,
        tag=tag,
        connector_id=connector_id,
        request_id=request_id,
        wait_s=wait_s,
        command_timeout_s=command_timeout_s,
    )


def _payment_refusal(gate: pay_as_you_go.StartPayment) -> CommandOutcome | None:
    G = pay_as_you_go.Gate
    return {
        G.NEEDS_CARD: CommandOutcome.PAYMENT_REQUIRED,
        G.UNPAID_BALANCE: CommandOutcome.PAYMENT_REQUIRED,
        G.DECLINED: CommandOutcome.PAYMENT_DECLINED,
        G.AUTHENTICATE: CommandOutcome.PAYMENT_ACTION_REQUIRED,
        G.UNAVAILABLE: CommandOutcome.PAYMENT_UNAVAILABLE,
    }.get(gate.gate)


async def resume_charging(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    payments: PaymentGateway,
    actor: Actor,
    *,
    request_id: int,
    wait_s: float,
    command_timeout_s: float,
) -> ControlResult:
    """After the app passed the bank's authentication: the hold is checked, then the station is
    asked, as startCharging would have."""
    principal = actor.principal
    async with db() as s:
        request = await s.get(ChargingRequest, request_id)
        if request is None or not principal.is_user or request.user_id != principal.user_id:
            raise NotFound("no such charging request")
        station = (await network.stations_by_ids(s, principal, [request.station_id])).get(request.station_id)
    if station is None:
        raise NotFound("no such charging request")
    if request.state != ChargingRequestState.AWAITING_PAYMENT.value:
        raise InvalidInput("this request is not waiting for a payment")
    if not await pay_as_you_go.confirm_authenticated(db, payments, request_id=request_id):
        return ControlResult(
            CommandOutcome.PAYMENT_ACTION_REQUIRED, "the payment is not confirmed yet", request_id=request_id
        )
    await _update_request(db, requests.payment_confirmed, request_id)
    return await _send_start(
        db,
        bus,
        actor,
        station,
        tag=request.id_tag,
        connector_id=request.connector_id,
        request_id=request_id,
        wait_s=wait_s,
        command_timeout_s=command_timeout_s,
    )


async def _send_start(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    actor: Actor,
    station: ChargingStation,
    *,
    tag: str,
    connector_id: int | None,
    request_id: int,
    wait_s: float,
    command_timeout_s: float,
) -> ControlResult:
    station_id = station.id or 0
    # Subscribe before sending, so a fast station's StartTransaction is not missed.
    sub = bus.subscribe(station_topic(station_id))
    try:
        outcome, message, reply = await send(
            bus,
            station.charge_point_id,
            RemoteStart(id_tag=tag, connector_id=connector_id, remote_start_id=request_id),
            command_timeout_s,
        )
        result = ControlResult(outcome, message, request_id=request_id)
        running = None if reply is None else reply.detail.get("station_transaction_id")
        if outcome is not CommandOutcome.ACCEPTED:
            await _update_request(db, requests.fail_request, request_id, f"{outcome.value}: {message}")
        elif running is not None and (
            linked := await _link_running(db, request_id, station_id, str(running))
        ):
            result = ControlResult(outcome, "session started", linked, request_id=request_id)
        else:
            wanted = connector_id
            started = await _wait_for(
                sub,
                min(wait_s, MAX_WAIT_S),
                TransactionStarted,
                lambda e: (
                    e.remote_start_id == request_id
                    or (e.remote_start_id is None and e.id_tag == tag and wanted in (None, e.connector_id))
                ),
            )
            if started is None:
                result = ControlResult(
                    outcome, "accepted; the session starts when the car is plugged in", request_id=request_id
                )
            else:
                await _update_request(db, requests.link_started, started)
                result = ControlResult(
                    outcome, "session started", started.transaction_id, request_id=request_id
                )
    finally:
        sub.close()
    await _audit(db, actor, "station.remote_start", station.organization_id, station_id, result, connector_id)
    return result


async def _audit(
    db: async_sessionmaker[AsyncSession],
    actor: Actor,
    action: str,
    organization_id: int | None,
    station_id: int,
    result: ControlResult,
    connector_id: int | None = None,
) -> None:
    await audit.record(
        db,
        audit.entry(
            actor,
            action=action,
            result=result.outcome.value,
            organization_id=organization_id,
            target_type="station",
            target_id=station_id,
            detail={
                "connector_id": connector_id,
                "transaction_id": result.transaction_id,
                "message": result.message,
            },
        ),
    )


async def stop_charging(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    actor: Actor,
    *,
    transaction_id: int,
    wait_s: float,
    command_timeout_s: float,
) -> ControlResult:
    principal = actor.principal
    async with db() as s:
        tx = (await sessions.transactions_by_ids(s, principal, [transaction_id])).get(transaction_id)
        if tx is None:
            raise NotFound("no such transaction")
        station = (await network.stations_by_ids(s, principal, [tx.station_id])).get(tx.station_id)
    if station is None:
        raise NotFound("no such transaction")
    own = principal.is_user and tx.user_id == principal.user_id
    if not own and not principal.can(Permission.STATIONS_CONTROL, station.organization_id):
        raise Forbidden("requires stations:control at this station's organisation")
    if tx.state != TransactionState.ACTIVE.value:
        return ControlResult(CommandOutcome.NOT_ACTIVE, "the session has already ended", transaction_id)
    sub = bus.subscribe(transaction_topic(transaction_id))
    try:
        outcome, message, _ = await send(
            bus, station.charge_point_id, RemoteStop(transaction_id=transaction_id), command_timeout_s
        )
        if outcome is CommandOutcome.ACCEPTED:
            ended = await _wait_for(sub, min(wait_s, MAX_WAIT_S), TransactionEnded, lambda e: True)
            message = "session stopped" if ended else "accepted; waiting for the station to stop"
        result = ControlResult(outcome, message, transaction_id)
    finally:
        sub.close()
    await _audit(
        db, actor, "station.remote_stop", station.organization_id, station.id or 0, result, tx.connector_id
    )
    return result
