"""Remote start and stop. A RemoteStart is only a request: the session exists when the
station sends StartTransaction, so the service waits (bounded) for that event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.auth.principal import Principal
from api.network import repository as network
from api.sessions import repository as sessions
from schema.bus import Bus, Subscription
from schema.commands import Command, CommandReply, RemoteStart, RemoteStop
from schema.enums import TransactionState
from schema.errors import CommandFailed, CommandTimeout, InvalidInput, NotFound, StationOffline
from schema.events import (
    TransactionEnded,
    TransactionEvent,
    TransactionStarted,
    station_topic,
    transaction_topic,
)

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


@dataclass(frozen=True, slots=True)
class ControlResult:
    outcome: CommandOutcome
    message: str
    transaction_id: int | None = None
    station_status: str | None = None


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
    if not reply.accepted:
        return CommandOutcome.REJECTED, f"station answered {reply.status}", reply
    return CommandOutcome.ACCEPTED, "accepted by the station", reply


async def _wait_for(
    sub: Subscription,
    wait_s: float,
    match: type[TransactionEvent],
    pred: Callable[[TransactionEvent], bool],
) -> int | None:
    """The id of the first `match` event satisfying `pred` within `wait_s`, else None."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while (left := deadline - loop.time()) > 0:
        try:
            event = await sub.next(left)
        except TimeoutError:
            return None
        if isinstance(event, match) and pred(event):
            return event.transaction_id
    return None


async def start_charging(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    principal: Principal,
    *,
    station_id: int,
    connector_id: int | None,
    id_tag: str,
    wait_s: float,
    command_timeout_s: float,
) -> ControlResult:
    if not id_tag or len(id_tag) > MAX_ID_TAG_LENGTH:
        raise InvalidInput(f"idTag must be 1–{MAX_ID_TAG_LENGTH} characters")
    if connector_id is not None and connector_id < 1:
        raise InvalidInput("connectorId starts at 1")
    async with db() as s:
        found = await network.stations_by_ids(s, principal, [station_id])
        station = found.get(station_id)
        if station is None:
            raise NotFound("no such station")
        if connector_id is not None:
            connectors = await network.connectors_by_station_ids(s, principal, [station_id])
            if connector_id not in {c.connector_id for c in connectors.get(station_id, [])}:
                raise NotFound(f"station has no connector {connector_id}")
    # Subscribe before sending, so a fast station's StartTransaction is not missed.
    sub = bus.subscribe(station_topic(station_id))
    try:
        outcome, message, _ = await send(
            bus,
            station.charge_point_id,
            RemoteStart(id_tag=id_tag, connector_id=connector_id),
            command_timeout_s,
        )
        if outcome is not CommandOutcome.ACCEPTED:
            return ControlResult(outcome, message)
        tx_id = await _wait_for(
            sub,
            min(wait_s, MAX_WAIT_S),
            TransactionStarted,
            lambda e: e.id_tag == id_tag and (connector_id is None or e.connector_id == connector_id),
        )
        if tx_id is None:
            return ControlResult(outcome, "accepted; the session starts when the car is plugged in")
        return ControlResult(outcome, "session started", tx_id)
    finally:
        sub.close()


async def stop_charging(
    db: async_sessionmaker[AsyncSession],
    bus: Bus,
    principal: Principal,
    *,
    transaction_id: int,
    wait_s: float,
    command_timeout_s: float,
) -> ControlResult:
    async with db() as s:
        tx = (await sessions.transactions_by_ids(s, principal, [transaction_id])).get(transaction_id)
        if tx is None:
            raise NotFound("no such transaction")
        station = (await network.stations_by_ids(s, principal, [tx.station_id])).get(tx.station_id)
    if station is None:
        raise NotFound("no such transaction")
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
        return ControlResult(outcome, message, transaction_id)
    finally:
        sub.close()
