"""`chargenet serve` as a newcomer runs it: migrate, seed, simulate, answer, stop on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

STATIONS = (
    "{ stations(first: 50) { totalCount edges { node { chargePointId online connectors { status } } } } }"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_runs_the_demo_end_to_end_and_stops_cleanly(tmp_path: Path) -> None:
    api_port, gw_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "CHARGENET_ADMIN_TOKEN": "cli-test-token",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.cli",
            "serve",
            "--api-port",
            str(api_port),
            "--gateway-port",
            str(gw_port),
            "--chargers",
            "12",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        online = 0
        total = 0
        while time.monotonic() < deadline:
            try:
                r = httpx.post(f"http://127.0.0.1:{api_port}/graphql", json={"query": STATIONS}, timeout=5)
                page = r.json()["data"]["stations"]
                total = page["totalCount"]
                online = sum(e["node"]["online"] for e in page["edges"])
                if online == 12:
                    break
            except (httpx.HTTPError, KeyError, TypeError):
                pass
            time.sleep(0.5)
        # ten seeded stations plus two the simulator auto-registered, all connected
        assert (total, online) == (12, 12)
        txs = httpx.post(
            f"http://127.0.0.1:{api_port}/graphql",
            json={"query": "{ transactions { totalCount } }"},
            headers={"Authorization": "Bearer cli-test-token"},
            timeout=5,
        ).json()
        assert "errors" not in txs
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{api_port}/graphql" in out
    assert f"ws://127.0.0.1:{gw_port}/ocpp/" in out
    assert "subscription {" in out and "Traceback" not in out
    assert 'stationStatusChanged(locationId: "TG9jYXRpb246MQ==")' in out
