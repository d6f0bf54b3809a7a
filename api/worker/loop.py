"""A background loop with a nudge, back-off on failure and a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)

# After a failure (database or Redis down) the loop retries after 0.2 s, doubling to this.
MAX_BACKOFF_S = 5.0
FIRST_BACKOFF_S = 0.2
# How long stop() lets the current step finish before cancelling it.
STOP_GRACE_S = 5.0


class BackgroundLoop:
    """Calls `_step()` until stopped. `_step` returns True when more work is waiting at once;
    otherwise the loop pauses `_idle_s()` seconds or until `nudge()`."""

    name = "chargenet-loop"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self.failures = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=self.name)

    def nudge(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_S)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _step(self) -> bool:
        raise NotImplementedError

    def _idle_s(self) -> float:
        return 1.0

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0 or self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _run(self) -> None:
        streak = 0
        while not self._stopping:
            self._wake.clear()
            try:
                more = await self._step()
            except Exception as exc:
                streak += 1
                self.failures += 1
                if streak == 1:
                    log.warning("%s failed; retrying with back-off", self.name, exc_info=exc)
                else:
                    log.debug("%s failed again (%d in a row): %r", self.name, streak, exc)
                await self._pause(min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (streak - 1)))
                continue
            if streak:
                log.info("%s recovered after %d failed attempts", self.name, streak)
                streak = 0
            if not more:
                await self._pause(self._idle_s())
