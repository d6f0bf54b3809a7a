"""Real ChargeNet processes for scale-out tests: gateways, APIs and workers as separate OS
processes (`python -m api.cli …`) on one PostgreSQL database and one Redis, as deployed.

Each process's output is collected (and shown when a test fails); processes are started on
free ports and waited for until their readiness probe answers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from api.auth.keys import generate_key_set_json

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "cluster-admin-token-0123456789"
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[str]
    port: int | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def alive(self) -> bool:
        return self.popen.poll() is None


class Cluster:
    """Start, kill and stop ChargeNet processes sharing `database_url` and `bus_url`."""

    def __init__(self, *, database_url: str, bus_url: str, extra_env: dict[str, str] | None = None) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "BUS_URL": bus_url,
            "CHARGENET_ADMIN_TOKEN": ADMIN_TOKEN,
            # Every API replica must verify every other's tokens: one key set for all.
            "CHARGENET_JWT_KEYS": generate_key_set_json(),
            "CHARGENET_DEMO": "false",
            "CHARGENET_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.processes: dict[str, Process] = {}
        self._workdir = Path(tempfile.mkdtemp(prefix="chargenet-cluster-"))

    def _spawn(
        self, name: str, args: list[str], port: int | None, env: dict[str, str] | None = None
    ) -> Process:
        popen = subprocess.Popen(
            [sys.executable, "-m", "api.cli", *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        proc = Process(name, popen, port)
        assert popen.stdout is not None
        stream = popen.stdout
        threading.Thread(target=lambda: proc.lines.extend(iter(stream.readline, "")), daemon=True).start()
        self.processes[name] = proc
        return proc

    async def _ready(self, proc: Process, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if not proc.alive():
                    raise RuntimeError(f"{proc.name} exited:\n{proc.output}")
                try:
                    if (await client.get(url, timeout=1)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{proc.name} not ready after {START_TIMEOUT_S} s:\n{proc.output}")

    async def gateway(self, name: str) -> Process:
        port = free_port()
        proc = self._spawn(
            name, ["gateway", "--gateway-host", "127.0.0.1", "--gateway-port", str(port)], port
        )
        await self._ready(proc, f"http://127.0.0.1:{port}/readyz")
        return proc

    async def api(self, name: str) -> Process:
        port = free_port()
        proc = self._spawn(name, ["api", "--api-host", "127.0.0.1", "--api-port", str(port)], port)
        await self._ready(proc, f"http://127.0.0.1:{port}/readyz")
        return proc

    def alive_file(self, name: str) -> Path:
        """Each worker of the cluster beats into a file of its own (they share one /tmp)."""
        return self._workdir / f"{name}.alive"

    async def worker(self, name: str, *, ready_line: str = "worker") -> Process:
        alive = {"CHARGENET_WORKER_ALIVE_FILE": str(self.alive_file(name))}
        proc = self._spawn(name, ["worker"], None, alive)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{name} exited:\n{proc.output}")
            if any(ready_line in line for line in proc.lines):
                return proc
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{name} did not start:\n{proc.output}")

    def kill(self, name: str) -> None:
        """kill -9: no shutdown code runs, as when a node dies."""
        proc = self.processes[name]
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait(timeout=10)

    async def stop(self, name: str, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the graceful shutdown an orchestrator asks for."""
        proc = self.processes[name]
        proc.popen.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(proc.popen.wait, timeout)

    def url(self, name: str, path: str = "") -> str:
        proc = self.processes[name]
        return f"http://127.0.0.1:{proc.port}{path}"

    def ws_url(self, name: str, path: str) -> str:
        proc = self.processes[name]
        return f"ws://127.0.0.1:{proc.port}{path}"

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.output[-4000:]}" for p in self.processes.values())

    async def aclose(self) -> None:
        for proc in self.processes.values():
            if proc.alive():
                proc.popen.send_signal(signal.SIGTERM)
        for proc in self.processes.values():
            try:
                await asyncio.to_thread(proc.popen.wait, 15)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
        shutil.rmtree(self._workdir, ignore_errors=True)
