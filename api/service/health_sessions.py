"""What the health score keeps of each ended session: its power at low SoC, written by the
worker on TransactionEnded (in the event's transaction, once) so the hourly health job reads
one row per session instead of the session's meter samples.

The low-SoC level in force when the session ended applies to it; changing the setting
affects sessions ending afterwards.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy.ext.asyncio import AsyncConnection

from api.service import health_repository as repo
from api.service.health_settings import HealthSettings
from schema.events import Event, TransactionEnded


async def check_power_on_end(conn: AsyncConnection, event: Event) -> None:
    assert isinstance(event, TransactionEnded)
    await repo.check_session_power(
        conn,
        event.transaction_id,
        stopped_at=event.stopped_at or event.at,
        low_soc_percent=_low_soc_percent(),
    )


@cache
def _low_soc_percent() -> float:
    """Read once per process, on first use (settings come from the environment at start)."""
    return HealthSettings().low_soc_percent
