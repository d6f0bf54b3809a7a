"""The cost of a running session, re-priced at each meter reading for a live subscriber.

Loaded once per subscription (the frozen tariff and the readings so far); each reading then
costs one pricing of a few microseconds, no database read. Until the session ends it counts as
charging (idle time needs the end of charging, known only afterwards); the final price comes
from the stored session, exactly as the receipt computes it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from api.billing import pricing, service, timeline
from schema.events import TransactionEvent
from schema.timeutil import utcnow


class LiveCost:
    __slots__ = ("_plan", "_readings", "_started_at")

    def __init__(self, plan: pricing.PricePlan, tl: pricing.Timeline) -> None:
        self._plan = plan
        self._started_at = tl.started_at
        self._readings = list(tl.readings)

    @classmethod
    async def load(cls, conn: AsyncConnection, transaction_id: int) -> LiveCost | None:
        """None when no tariff applies to the session (nothing to show)."""
        found = await service.of_session(conn, transaction_id)
        tl = None if found is None else await timeline.of_session(conn, transaction_id)
        if found is None or tl is None:
            return None
        return cls(pricing.plan(found.tariff), tl)

    def now(self, at: datetime | None = None) -> pricing.Price:
        end = max(at or utcnow(), self._started_at)
        return self._plan.price(pricing.Timeline(self._started_at, end, tuple(self._readings)))

    def on_event(self, event: TransactionEvent) -> pricing.Price:
        sampled = event.last_sample_at
        if sampled is not None and (not self._readings or sampled > self._readings[-1][0]):
            self._readings.append((sampled, event.meter_start_wh + event.energy_wh))
        return self.now(event.stopped_at)
