"""Charging requests: a start asked of a station, from "pending" to "charging" (linked to its
transaction), "failed" or "ended".

The app gets the request at once and follows it; whichever process first sees the station's
transaction — the API replica that sent the start, or a worker handling the durable
`transaction.started` event — links it, so a reply that arrives after the caller stopped
waiting still lands. QR codes printed on connectors name the connector as
`{chargePointId}*{connectorId}`, stable for the connector's life.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schema import outbox
from schema.errors import InvalidInput
from schema.events import ChargingRequestFailed, Event, TransactionEnded, TransactionStarted
from schema.models import ChargingStation, Transaction
from schema.payment_models import Payment
from schema.request_models import ChargingRequest, ChargingRequestState
from schema.timeutil import utcnow

REQUEST = ChargingRequest.__table__  # type: ignore[attr-defined]
STATION = ChargingStation.__table__  # type: ignore[attr-defined]
TRANSACTION = Transaction.__table__  # type: ignore[attr-defined]
PAYMENT = Payment.__table__  # type: ignore[attr-defined]
QR_SEPARATOR = "*"
# A station that accepted a remote start and has not reported a transaction by then will not:
# the driver walked away or the cable never went in. Real chargers give up after their own
# ConnectionTimeOut (typically 60–180 s).
START_TIMEOUT_S = 180.0
S = ChargingRequestState


def qr_code(charge_point_id: str, connector_id: int) -> str:
    return f"{charge_point_id}{QR_SEPARATOR}{connector_id}"


def parse_qr_code(code: str) -> tuple[str, int]:
    cpid, sep, connector = code.strip().rpartition(QR_SEPARATOR)
    if not sep or not cpid or not connector.isdigit() or int(connector) < 1:
        raise InvalidInput("not a ChargeNet connector code (expected CHARGEPOINT*CONNECTOR)")
    return cpid, int(connector)


async def open_request(
    conn: AsyncConnection,
    *,
    station_id: int,
    organization_id: int | None,
    connector_id: int | None,
    user_id: int | None,
    id_tag: str,
) -> int:
    now = utcnow()
    result = await conn.execute(
        REQUEST.insert().values(
            station_id=station_id,
            organization_id=organization_id,
            connector_id=connector_id,
            user_id=user_id,
            id_tag=id_tag,
            state=S.PENDING.value,
            created_at=now,
            updated_at=now,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def fail_request(conn: AsyncConnection, request_id: int, reason: str) -> None:
    await _fail(conn, REQUEST.c.id == request_id, reason[:200], utcnow())


async def await_payment(conn: AsyncConnection, request_id: int) -> None:
    """The bank wants the driver to authenticate the hold before the station is asked."""
    await conn.execute(
        update(REQUEST)
        .where(REQUEST.c.id == request_id, REQUEST.c.state == S.PENDING.value)
        .values(state=S.AWAITING_PAYMENT.value, updated_at=utcnow())
    )


async def payment_confirmed(conn: AsyncConnection, request_id: int) -> None:
    await conn.execute(
        update(REQUEST)
        .where(REQUEST.c.id == request_id, REQUEST.c.state == S.AWAITING_PAYMENT.value)
        .values(state=S.PENDING.value, updated_at=utcnow())
    )


# Requests that can still fail: asked of the station, or waiting for the driver's bank.
OPEN = (S.PENDING.value, S.AWAITING_PAYMENT.value)


async def _fail(
    conn: AsyncConnection,
    which: ColumnElement[bool],
    reason: str,
    now: datetime,
    states: tuple[str, ...] = OPEN,
) -> int:
    """Fail the open requests `which` selects, each with a durable `ChargingRequestFailed`
    in the same transaction (the driver hears of it even with the app closed)."""
    pending = (
        select(
            REQUEST.c.id,
            REQUEST.c.station_id,
            REQUEST.c.connector_id,
            REQUEST.c.user_id,
            STATION.c.charge_point_id,
            STATION.c.location_id,
        )
        .select_from(REQUEST.join(STATION, STATION.c.id == REQUEST.c.station_id))
        .where(which, REQUEST.c.state.in_(states))
        .order_by(REQUEST.c.id)
    )
    if conn.dialect.name == "postgresql":
        pending = pending.with_for_update(of=REQUEST, skip_locked=True)
    rows = (await conn.execute(pending)).all()
    if not rows:
        return 0
    await conn.execute(
        update(REQUEST)
        .where(REQUEST.c.id.in_([r.id for r in rows]), REQUEST.c.state.in_(states))
        .values(state=S.FAILED.value, failure_reason=reason, updated_at=now)
    )
    events = [
        ChargingRequestFailed(
            station_id=int(r.station_id),
            charge_point_id=r.charge_point_id,
            location_id=r.location_id,
            at=now,
            request_id=int(r.id),
            connector_id=r.connector_id,
            user_id=r.user_id,
            reason=reason,
        )
        for r in rows
    ]
    await outbox.append(conn, events, now)
    return len(rows)


async def link_started(conn: AsyncConnection, event: Event) -> None:
    """The pending request this transaction answers. A 2.0.1 station names it (remoteStartId);
    otherwise the oldest with the same station and tag, and the same connector when the
    request named one. Idempotent: a linked request is not pending."""
    assert isinstance(event, TransactionStarted)
    if event.remote_start_id is not None:
        which = REQUEST.c.id == event.remote_start_id
    elif event.id_tag is not None:
        which = (
            (REQUEST.c.id_tag == event.id_tag)
            & (REQUEST.c.connector_id.is_(None) | (REQUEST.c.connector_id == event.connector_id))
            & (REQUEST.c.created_at >= event.started_at - timedelta(seconds=START_TIMEOUT_S))
        )
    else:
        return
    candidate = (
        select(REQUEST.c.id)
        .where(which, REQUEST.c.station_id == event.station_id, REQUEST.c.state == S.PENDING.value)
        .order_by(REQUEST.c.id)
        .limit(1)
    )
    found = (await conn.execute(candidate)).scalar()
    if found is not None:
        await _link(conn, int(found), event.transaction_id, event.connector_id)


async def link_running(
    conn: AsyncConnection, request_id: int, station_id: int, station_transaction_id: str
) -> int | None:
    """A 2.0.1 station that already had a session on the connector (the cable went in first)
    answers the start with that session's id: the request is linked to it at once."""
    found = (
        await conn.execute(
            select(TRANSACTION.c.id, TRANSACTION.c.connector_id).where(
                TRANSACTION.c.station_id == station_id,
                TRANSACTION.c.station_transaction_id == station_transaction_id,
            )
        )
    ).first()
    if found is None:
        return None
    await _link(conn, request_id, int(found.id), int(found.connector_id))
    return int(found.id)


async def _link(conn: AsyncConnection, request_id: int, transaction_id: int, connector_id: int) -> None:
    """The request becomes the session's; a session that began without a token (2.0.1: the
    cable went in first) becomes the requesting driver's, as the station's own report of the
    token would make it."""
    linked = await conn.execute(
        update(REQUEST)
        .where(REQUEST.c.id == request_id, REQUEST.c.state == S.PENDING.value)
        .values(
            state=S.CHARGING.value,
            transaction_id=transaction_id,
            connector_id=connector_id,
            updated_at=utcnow(),
        )
    )
    if not linked.rowcount:  # type: ignore[attr-defined]
        return
    # the request's card hold pays for the session it became
    await conn.execute(
        update(PAYMENT)
        .where(PAYMENT.c.session_id == request_id, PAYMENT.c.transaction_id.is_(None))
        .values(transaction_id=transaction_id)
    )
    request = select(REQUEST.c.id_tag, REQUEST.c.user_id).where(REQUEST.c.id == request_id).subquery()
    await conn.execute(
        update(TRANSACTION)
        .where(TRANSACTION.c.id == transaction_id, TRANSACTION.c.id_tag.is_(None))
        .values(
            id_tag=select(request.c.id_tag).scalar_subquery(),
            user_id=select(request.c.user_id).scalar_subquery(),
        )
    )


async def close_ended(conn: AsyncConnection, event: Event) -> None:
    assert isinstance(event, TransactionEnded)
    await conn.execute(
        update(REQUEST)
        .where(REQUEST.c.transaction_id == event.transaction_id, REQUEST.c.state != S.ENDED.value)
        .values(state=S.ENDED.value, updated_at=utcnow())
    )


async def fail_unstarted(engine: AsyncEngine, *, timeout_s: float = START_TIMEOUT_S) -> int:
    """Requests the station never turned into a session, or whose payment the driver never
    confirmed (3-D Secure abandoned): failed, with the reason. No money is held for the latter:
    an unauthenticated PaymentIntent holds nothing."""
    now = utcnow()
    old = REQUEST.c.created_at < now - timedelta(seconds=timeout_s)
    async with engine.begin() as conn:
        unstarted = await _fail(
            conn,
            old,
            f"the station did not start a session within {timeout_s:.0f} s",
            now,
            (S.PENDING.value,),
        )
        unpaid = await _fail(
            conn,
            old,
            f"the payment was not confirmed within {timeout_s:.0f} s",
            now,
            (S.AWAITING_PAYMENT.value,),
        )
    return unstarted + unpaid


def row_values(row: Any) -> dict[str, Any]:
    return dict(row._mapping)
