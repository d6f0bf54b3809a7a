"""The worker's part in reservations: a session that uses one, and reservations running out.

Both keep the stored status in step with what the station does on its own: it ends a
reservation when a session with its idTag starts there (naming it in StartTransaction), and
when its expiry passes (OCPP 1.6 §5.13). Reads already treat an active reservation past its
expiry as expired, so the expiry job only makes the stored row catch up.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.reservations import repository
from api.worker import repository as worker_repo
from schema.events import Event, TransactionStarted
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

# How often stored statuses catch up with expiries: reads never depend on it (see above), so
# half a minute of lag costs nothing and keeps the query rare.
EXPIRY_INTERVAL_S = 30.0


async def use_reservation_on_start(conn: AsyncConnection, event: Event) -> None:
    """Mark the reservation a starting session used, and link the session (once per event,
    in the processor's transaction; a repeat finds the link made and changes nothing)."""
    assert isinstance(event, TransactionStarted)
    tx = await worker_repo.transaction_row(conn, event.transaction_id)
    if tx is None:
        log.warning("reservation use: transaction %d not found", event.transaction_id)
        return
    if await repository.use_for_transaction(conn, tx, utcnow()):
        log.info("transaction %d used a reservation at station %d", tx["id"], tx["station_id"])


async def expire_reservations(engine: AsyncEngine, *, now: datetime | None = None) -> int:
    async with engine.begin() as conn:
        expired = await repository.expire_due(conn, now or utcnow())
    if expired:
        log.info("%d reservations expired", expired)
    return expired
