"""Group commit: many OCPP messages' writes share one database transaction.

Committing row by row tops out near 1–3k rows/s; a charger still must not get its CALLRESULT
before its facts are durable. Each message submits a `Unit` and awaits it; the writer drains
everything queued, runs it in one transaction (merging plain inserts and updates into
executemany calls), commits, then publishes the units' events and releases the waiters.
If a batch fails, its units are retried one by one so a single bad message fails alone.

Durable events (see `schema.outbox.is_durable`) are also inserted into the outbox inside the
same transaction, so a crash between commit and publish loses nothing; the relay forwards
them. Meter ticks are live only and never cost an outbox row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Update

from gateway.held_connection import HeldConnection
from gateway.tables import insert_into
from schema.bus import Bus
from schema.events import Event
from schema.outbox import OUTBOX, is_durable, outbox_rows
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

# Under load a writer that commits whatever is queued commits almost per message (each commit
# costs more CPU than the rows in it). When the previous commit ended this recently, a small
# batch waits LINGER_S for company; an idle gateway never waits.
BUSY_WINDOW_S = 0.005
LINGER_S = 0.002
SMALL_BATCH_UNITS = 32
# Upper bound of units per transaction: big enough to amortise the commit, small enough that
# a slow batch does not hold thousands of chargers waiting.
MAX_BATCH_UNITS = 1_000

UnitFn = Callable[[AsyncConnection, list[Event]], Awaitable[Any]]


@dataclass(slots=True)
class Unit:
    """The writes of one inbound message.

    `fn` runs first (for logic that reads or needs generated ids); `inserts` and `updates`
    are merged across the batch. `events` are published after commit; `fn` may append more.
    """

    fn: UnitFn | None = None
    inserts: list[tuple[Table, list[dict[str, Any]]]] = field(default_factory=list)
    updates: list[tuple[Update, dict[str, Any]]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    future: asyncio.Future[Any] | None = None


class Writer:
    def __init__(self, engine: AsyncEngine, bus: Bus) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Unit] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._conn = HeldConnection(engine, "writer")
        self._last_commit = 0.0
        self.batches = 0
        self.units = 0
        # Called after a commit that wrote outbox rows (the relay's nudge); set by the runtime.
        self.on_outbox: Callable[[], None] | None = None
        self._wrote_outbox = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="chargenet-writer")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None
        await self._conn.drop()

    async def submit(self, unit: Unit) -> Any:
        """Queue `unit` and wait until it is committed and its events are published."""
        unit.future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(unit)
        return await unit.future

    def submit_nowait(self, unit: Unit) -> None:
        """Queue writes nobody waits for (message log, liveness); failures are logged."""
        self._queue.put_nowait(unit)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            self._drain(batch)
            loop = asyncio.get_running_loop()
            if len(batch) < SMALL_BATCH_UNITS and loop.time() - self._last_commit < BUSY_WINDOW_S:
                await asyncio.sleep(LINGER_S)
                self._drain(batch)
            try:
                await self._commit(batch)
            finally:
                self._last_commit = loop.time()
                for _ in batch:
                    self._queue.task_done()

    def _drain(self, batch: list[Unit]) -> None:
        while len(batch) < MAX_BATCH_UNITS:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                return

    async def _commit(self, batch: list[Unit]) -> None:
        try:
            results = await self._execute(batch)
        except Exception:
            if len(batch) == 1:
                log.exception("write failed")
                results = None
            else:
                log.warning("batch of %d failed; retrying units one by one", len(batch))
                for unit in batch:
                    await self._commit([unit])
                return
        if results is None:
            unit = batch[0]
            if unit.future is not None and not unit.future.done():
                unit.future.set_exception(RuntimeError("write failed"))
            return
        self.batches += 1
        self.units += len(batch)
        if self._wrote_outbox:
            self._wrote_outbox = False
            if self.on_outbox is not None:
                self.on_outbox()
        events: list[Event] = []
        for unit, (result, produced) in zip(batch, results, strict=True):
            events.extend(unit.events)
            events.extend(produced)
            if unit.future is not None and not unit.future.done():
                unit.future.set_result(result)
        if events:
            try:
                await self._bus.publish(events)
            except Exception:
                log.exception("publishing %d events failed", len(events))

    async def _execute(self, batch: list[Unit]) -> list[tuple[Any, list[Event]]]:
        # Events a unit's fn produces are kept apart per attempt, so a retried unit
        # never announces the same fact twice.
        results: list[tuple[Any, list[Event]]] = []
        conn = await self._conn.get()
        try:
            await self._run_batch(conn, batch, results)
        except BaseException:
            # Whatever failed, the next batch starts from a fresh connection and transaction.
            await self._conn.drop()
            raise
        return results

    async def _run_batch(
        self, conn: AsyncConnection, batch: list[Unit], results: list[tuple[Any, list[Event]]]
    ) -> None:
        inserts: dict[Table, list[dict[str, Any]]] = {}
        updates: dict[Update, list[dict[str, Any]]] = {}
        durable: list[Event] = []
        async with conn.begin():
            for unit in batch:
                produced: list[Event] = []
                value = await unit.fn(conn, produced) if unit.fn is not None else None
                results.append((value, produced))
                for event in unit.events:
                    if is_durable(event):
                        durable.append(event)
                for event in produced:
                    if is_durable(event):
                        durable.append(event)
                for table, rows in unit.inserts:
                    inserts.setdefault(table, []).extend(rows)
                for stmt, params in unit.updates:
                    updates.setdefault(stmt, []).append(params)
            for table, rows in inserts.items():
                if rows:
                    await conn.execute(insert_into(table, conn.dialect.name), rows)
            for stmt, param_list in updates.items():
                await conn.execute(stmt, param_list)
            if durable:
                await conn.execute(OUTBOX.insert(), outbox_rows(durable, utcnow()))
                self._wrote_outbox = True
