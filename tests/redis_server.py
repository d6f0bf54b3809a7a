"""Redis for tests: the shared server (skipped or failed like PostgreSQL when missing) and a
throw-away `redis-server` of a test's own, on a free port, that the test may stop and restart.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis

REDIS_URL = os.environ.get("CHARGENET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("CHARGENET_REQUIRE_SERVICES") == "1"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
# A redis-server starts in milliseconds; this only bounds a broken install.
START_TIMEOUT_S = 10.0


def shared_redis_url() -> str:
    """The shared Redis, or a skip with the reason (a failure under CHARGENET_REQUIRE_SERVICES=1)."""
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1) as client:
            client.ping()
    except (redis.RedisError, OSError) as exc:
        reason = f"Redis not reachable at {REDIS_URL} ({exc.__class__.__name__})"
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason}; CHARGENET_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(f"{reason}; Redis tests skipped")
    return REDIS_URL


def unique_prefix() -> str:
    """Keys and channels of one test, apart from every other test sharing the server."""
    return f"test-{uuid.uuid4().hex[:10]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server (no persistence) that keeps its port across stop/start."""

    def __init__(self, workdir: Path) -> None:
        if not os.path.exists(REDIS_SERVER):
            reason = f"{REDIS_SERVER} not installed"
            if REQUIRE_SERVICES:
                pytest.fail(f"{reason}; CHARGENET_REQUIRE_SERVICES=1 makes this a failure")
            pytest.skip(reason)
        self.workdir = workdir
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self._proc is None, "already running"
        self._proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with redis.Redis(port=self.port, socket_connect_timeout=0.2) as client:
                    client.ping()
                return
            except (redis.RedisError, OSError):
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (clients see their connections close); its data is gone."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
