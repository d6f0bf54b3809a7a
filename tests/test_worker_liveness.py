"""A portless worker reports liveness through a file only while all of its loops run."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from api.worker import liveness


class TestBeat:
    async def test_refreshed_while_alive_stale_when_a_loop_died_removed_on_stop(self, tmp_path: Path) -> None:
        # given
        path = tmp_path / "worker.alive"
        alive = True
        task = asyncio.create_task(liveness.beat(path, lambda: alive, interval_s=0.02))
        await asyncio.sleep(0.05)
        # then: written while every loop runs
        assert path.exists()
        os.utime(path, (1.0, 1.0))
        await asyncio.sleep(0.05)
        assert path.stat().st_mtime > 1.0
        # when a loop dies, the file is left to grow old
        alive = False
        os.utime(path, (1.0, 1.0))
        await asyncio.sleep(0.05)
        assert path.stat().st_mtime == 1.0
        # when the worker stops, nothing claims it is alive
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert not path.exists()
