"""Holds that keep up with running sessions: raised as the cost nears them, or the session
stopped — the organisation's over-hold policy (api.billing.pay_as_you_go starts and settles)."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit.service import SYSTEM_ACTOR
from api.billing import charges, payments
from api.billing.pay_as_you_go import HELD_STATES, SETTLE_BATCH
from api.billing.payment_types import PaymentGateway
from api.control import operations
from schema.bus import Bus
from schema.charge_models import OrganizationBilling
from schema.commands import RemoteStop
from schema.db import session_factory
from schema.enums import TransactionState
from schema.errors import BillingDisabled, PaymentDeclined, PaymentProviderError, PaymentProviderUnavailable
from schema.models import ChargingStation, Transaction
from schema.payment_models import Payment

log = logging.getLogger(__name__)

TOP_UP_INTERVAL_S = 30.0
# The hold is raised when the running cost reaches this share of it: the next readings must
# not outrun the hold before the next check.
TOP_UP_AT_PERCENT = 80


async def top_up_holds(
    engine: AsyncEngine, gateway: PaymentGateway, bus: Bus, *, command_timeout_s: float
) -> int:
    """Running sessions whose cost nears their hold: the hold is raised by the organisation's
    hold amount ("increment"), or — policy "stop", or the bank refuses more — the station is
    asked to stop the session (on the system's account, in the command log). Returns how many
    sessions were acted on."""
    db = session_factory(engine)
    async with db() as s:
        rows = (
            await s.exec(
                select(Payment, Transaction, OrganizationBilling)  # type: ignore[call-overload]
                .join(Transaction, col(Transaction.id) == col(Payment.transaction_id))
                .join(
                    OrganizationBilling,
                    col(OrganizationBilling.organization_id) == col(Payment.organization_id),
                )
                .where(
                    col(Payment.status).in_(HELD_STATES),
                    col(Transaction.state) == TransactionState.ACTIVE.value,
                )
                .limit(SETTLE_BATCH)
            )
        ).all()
    acted = 0
    for payment, tx, billing in rows:
        async with db() as s:
            price = await charges.bill(await s.connection(), tx.id or 0)
        if price is None or price.total * 100 < payment.amount_held * TOP_UP_AT_PERCENT:
            continue
        acted += 1
        if billing.over_hold_policy == "increment":
            try:
                async with db() as s:
                    await payments.raise_hold(
                        s, gateway, payment.id or 0, new_amount=payment.amount_held + billing.hold_amount
                    )
                    await s.commit()
                continue
            except (PaymentDeclined, PaymentProviderError) as exc:
                log.warning("hold of session %s not raised (%s): stopping it", tx.id, exc)
            except (PaymentProviderUnavailable, BillingDisabled):
                continue  # Stripe down: the next run tries again; the session keeps charging
        await _stop(db, bus, tx, command_timeout_s)
    return acted


async def _stop(db: async_sessionmaker[AsyncSession], bus: Bus, tx: Transaction, timeout_s: float) -> None:
    async with db() as s:
        station = await s.get(ChargingStation, tx.station_id)
    if station is not None:
        await operations.send_logged(
            db, bus, SYSTEM_ACTOR, station, RemoteStop(transaction_id=tx.id or 0), timeout_s
        )
