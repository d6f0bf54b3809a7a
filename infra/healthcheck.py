"""Container health check of the ChargeNet image (Docker HEALTHCHECK; compose uses it too).

    python /opt/chargenet/healthcheck.py [api|gateway] [PATH]

Without arguments it finds the `chargenet` process of the container and probes what that
process serves: `api` and `serve` answer GET /healthz on CHARGENET_API_PORT, `gateway` answers
it on CHARGENET_GATEWAY_PORT. `worker` serves no port: it touches CHARGENET_WORKER_ALIVE_FILE
every 10 s while its event loop and all its loops run, and is unhealthy when that file is
older than CHARGENET_WORKER_ALIVE_MAX_AGE seconds (or missing). Other commands (`migrate`) are
healthy while they run. Exit status 0 is healthy, 1 unhealthy.
Standard library only: the runtime image has no curl.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

DEFAULT_PORTS = {"api": ("CHARGENET_API_PORT", 8000), "gateway": ("CHARGENET_GATEWAY_PORT", 9000)}
# `serve` runs the API and the gateway; the API's answer covers the process.
PROBED = {"api": "api", "serve": "api", "gateway": "gateway"}
WORKER_ALIVE_FILE = ("CHARGENET_WORKER_ALIVE_FILE", "/tmp/chargenet-worker.alive")
# Six missed beats of the worker's 10 s period: a slow disk or a long GC never trips it.
WORKER_ALIVE_MAX_AGE_S = 60.0
# Well below Docker's --timeout, so a hung probe reports itself instead of being killed.
PROBE_TIMEOUT_S = 3.0


def command_of(cmdline: bytes) -> str | None:
    """The `chargenet` subcommand in a NUL-separated /proc/<pid>/cmdline, if it is one."""
    args = [a.decode(errors="replace") for a in cmdline.split(b"\0") if a]
    for i, arg in enumerate(args):
        if os.path.basename(arg) == "chargenet":
            rest = [a for a in args[i + 1 :] if not a.startswith("-")]
            return rest[0] if rest else None
    return None


def running_command(proc: Path = Path("/proc")) -> str | None:
    """PID 1's command, or (under an init process) the first `chargenet` process found."""
    for pid in [proc / "1", *sorted(p for p in proc.glob("[0-9]*") if p.name != "1")]:
        try:
            command = command_of((pid / "cmdline").read_bytes())
        except OSError:
            continue
        if command is not None:
            return command
    return None


def probe(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def url_for(role: str, path: str = "/healthz") -> str:
    variable, default = DEFAULT_PORTS[role]
    port = int(os.environ.get(variable, default))
    return f"http://127.0.0.1:{port}{path}"


def worker_alive(now: float | None = None) -> bool:
    variable, default = WORKER_ALIVE_FILE
    path = Path(os.environ.get(variable) or default)
    max_age = float(os.environ.get("CHARGENET_WORKER_ALIVE_MAX_AGE", WORKER_ALIVE_MAX_AGE_S))
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except OSError:
        print(f"{path}: missing")
        return False
    print(f"{path}: touched {age:.0f} s ago (at most {max_age:.0f})")
    return age <= max_age


def main(argv: Sequence[str]) -> int:
    command = argv[0] if argv else running_command()
    if command == "worker":
        return 0 if worker_alive() else 1
    role = PROBED.get(command or "")
    if role is None:
        print(f"chargenet {command or '?'} serves no port: running is healthy")
        return 0
    url = url_for(role, argv[1] if len(argv) > 1 else "/healthz")
    healthy = probe(url)
    print(f"{url}: {'ok' if healthy else 'failing'}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
