"""`chargenet serve` as a newcomer runs it: migrate, seed, simulate, answer, stop on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

LOG_IN = """
mutation ($email: String!, $password: String!) {
  logIn(input: {email: $email, password: $password}) { accessToken }
}
"""
DRIVER_VIEW = "{ me { email cards { token } appTokens { token } } transactions { totalCount } }"
OPERATOR_VIEW = "{ organizations { edges { node { slug myRole } } } }"
# "  driver@demo.chargenet.dev  <password>   driver (…)" in the banner.
CREDENTIAL = re.compile(r"^\s+(\S+@demo\.chargenet\.dev)\s+(\S+)\s+(driver|admin)")

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
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
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
        # the banner's demo credentials sign in as a driver and as the network's admin
        credentials = {m[3]: (m[1], m[2]) for line in lines if (m := CREDENTIAL.match(line))}
        assert set(credentials) == {"driver", "admin"}, lines
        url = f"http://127.0.0.1:{api_port}/graphql"
        tokens = {}
        for who, (email, password) in credentials.items():
            login = httpx.post(
                url, json={"query": LOG_IN, "variables": {"email": email, "password": password}}
            )
            tokens[who] = login.json()["data"]["logIn"]["accessToken"]
        auth = {"Authorization": f"Bearer {tokens['driver']}"}
        me = httpx.post(url, json={"query": DRIVER_VIEW}, headers=auth).json()["data"]
        assert me["me"]["cards"] == [{"token": "DEMO-RFID-0001"}]
        assert me["me"]["appTokens"] == [{"token": "DEMO-APP-0001"}]
        auth = {"Authorization": f"Bearer {tokens['admin']}"}
        orgs = httpx.post(url, json={"query": OPERATOR_VIEW}, headers=auth).json()["data"]
        assert orgs["organizations"]["edges"] == [{"node": {"slug": "demo-network", "myRole": "ADMIN"}}]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(timeout=5)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{api_port}/graphql" in out
    assert f"ws://127.0.0.1:{gw_port}/ocpp/" in out
    assert "subscription {" in out and "Traceback" not in out
    assert 'stationStatusChanged(locationId: "TG9jYXRpb246MQ==")' in out
