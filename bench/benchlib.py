"""Shared plumbing of the ChargeNet benchmarks (imported by the scripts beside it).

Why a lean client: the load generator must not be the bottleneck on a two-core machine, so
chargers are asyncio Protocols driving websockets' sans-I/O `ClientProtocol` directly: no
task, no stream reader and no `ocpp` library per message, one callback per received frame.

Why separate processes: the measured server and the load run in different processes so that
each has its own interpreter lock; the orchestrator only coordinates and reads /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import multiprocessing
import multiprocessing.connection
import os
import platform
import resource
import shlex
import signal
import socket
import subprocess
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_MD = BENCH_DIR / "RESULTS.md"
CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH_ID_TAG = "BENCH-TAG-0001"
PG_ADMIN_DB = "test"

# -- process environment -------------------------------------------------------------------


def raise_nofile() -> int:
    """10 000 sockets need more descriptors than the usual soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def install_loop(name: str) -> None:
    """`asyncio` is what `chargenet serve` runs on; `uvloop` is offered for comparison."""
    if name == "uvloop":
        import uvloop

        uvloop.install()


def rss_kb(pid: int) -> int:
    """Resident set size from /proc/<pid>/status (VmRSS, in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User + system CPU time of a process, from /proc/<pid>/stat; with `reaped_children`, plus
    that of its children that have exited (and were waited for)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def postgres_cpu_seconds() -> float:
    """CPU time of the whole local PostgreSQL server: every `postgres` process, plus the
    backends that have already exited (the postmaster reaps them). Backends come and go as
    connection pools grow and shrink, so counting only live ones misses work."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            if text[text.index("(") + 1 : text.rindex(")")] != "postgres":
                continue
            pid = int(stat.parent.name)
            parent = int(text[text.rindex(")") + 2 :].split()[1])
            parent_comm = Path(f"/proc/{parent}/comm").read_text().strip() if parent > 1 else ""
            total += cpu_seconds(pid, reaped_children=parent_comm != "postgres")
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / CLK_TCK


# One process, several, or a function returning the cumulative CPU seconds of a group.
PidGroup = int | Sequence[int] | Callable[[], float]


class CpuMeter:
    """CPU use of some processes over a window, as a fraction of one core.

    A name may stand for several processes; a process of a list that exits during the window
    drops out (its use in the window is not counted). A group whose processes come and go
    (PostgreSQL's backends) is better given as a function of cumulative CPU seconds, e.g.
    `postgres_cpu_seconds`. "others" is everything else on the machine in the same window: on
    a two-core box a busy neighbour changes every figure, so the reports show it.
    """

    def __init__(self, pids: Mapping[str, PidGroup]) -> None:
        self.pids = dict(pids)
        self._t0 = time.perf_counter()
        self._c0 = {name: self._seconds(group) for name, group in self.pids.items()}
        self._m0 = machine_busy_seconds()

    @staticmethod
    def _seconds(group: PidGroup) -> dict[int, float]:
        if callable(group):
            return {0: group()}
        out = {}
        for pid in [group] if isinstance(group, int) else group:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                out[pid] = cpu_seconds(pid)
        return out

    def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self._t0
        out = {}
        for name, group in self.pids.items():
            now = self._seconds(group)
            if not now:
                out[name] = float("nan")
                continue
            out[name] = sum(now[p] - self._c0[name][p] for p in now if p in self._c0[name]) / elapsed
        machine = (machine_busy_seconds() - self._m0) / elapsed
        out["others"] = max(0.0, machine - sum(v for v in out.values() if v == v))
        return out


def tcp_counters(*names: str) -> dict[str, int]:
    """Machine-wide TCP counters from /proc/net/netstat (e.g. ListenOverflows: connection
    attempts a listening socket's full accept queue turned away)."""
    lines = [
        ln.split() for ln in Path("/proc/net/netstat").read_text().splitlines() if ln.startswith("TcpExt:")
    ]
    values = dict(zip(lines[0][1:], (int(v) for v in lines[1][1:]), strict=True))
    return {n: values.get(n, 0) for n in names}


def fmt_cpu(usage: dict[str, float]) -> str:
    return ", ".join(f"{name} {100 * value:.0f}%" for name, value in usage.items())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def machine_info() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        nproc = str(os.cpu_count())
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"nproc={nproc}, CPU {cpu}, RAM {mem_gb:.0f} GiB, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; code {code_version()}; "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )


def code_version() -> str:
    """The commit measured, and whether code outside bench/ differed from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", ".", ":!bench"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes outside bench/" if dirty else "")


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv])


# -- statistics ----------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return float(sorted_values[rank - 1])


def latency_summary(samples: Iterable[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds."""
    values = sorted(samples)
    return {
        "n": float(len(values)),
        "p50": 1000 * percentile(values, 50),
        "p90": 1000 * percentile(values, 90),
        "p99": 1000 * percentile(values, 99),
        "max": 1000 * values[-1] if values else float("nan"),
    }


def worst_seconds(sent_at: Sequence[float], latencies: Sequence[float], top: int = 5) -> str:
    """The seconds of the window with the worst p99: shows whether slow replies cluster."""
    buckets: dict[int, list[float]] = {}
    for t, lat in zip(sent_at, latencies, strict=True):
        buckets.setdefault(int(t), []).append(lat)
    per = [(1000 * percentile(sorted(v), 99), sec, len(v)) for sec, v in buckets.items()]
    per.sort(reverse=True)
    over = sum(1 for p99, _, _ in per if p99 > 25.0)
    worst = ", ".join(f"t={sec}s p99 {p99:.0f} ms" for p99, sec, _ in per[:top])
    return f"{over}/{len(per)} seconds with p99 > 25 ms; worst: {worst}"


class GcWatch:
    """Times the collector's pauses in the process it runs in (via gc.callbacks)."""

    def __init__(self) -> None:
        self._t0 = 0.0
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._t0)

    def reset(self) -> None:
        self.pauses = {0: [], 1: [], 2: []}

    def summary(self) -> str:
        parts = []
        for gen, p in self.pauses.items():
            if p:
                parts.append(f"gen{gen}: {len(p)}× max {1000 * max(p):.0f} ms total {1000 * sum(p):.0f} ms")
        return "; ".join(parts) or "no collections"


def to_bytes(values: array[float]) -> bytes:
    return values.tobytes()


def from_bytes(data: bytes) -> array[float]:
    out = array("d")
    out.frombytes(data)
    return out


# -- results -------------------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    value: str
    target: str = ""
    ok: bool | None = None
    detail: str = ""

    @property
    def verdict(self) -> str:
        return "" if self.ok is None else ("PASS" if self.ok else "MISS")


@dataclass
class Report:
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    machine: str = field(default_factory=machine_info)

    def add(self, *args: Any, **kwargs: Any) -> Figure:
        fig = Figure(*args, **kwargs)
        self.figures.append(fig)
        print(f"  -> {fig.name}: {fig.value} {('[' + fig.verdict + ']') if fig.verdict else ''}", flush=True)
        return fig

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  .. {text}", flush=True)

    def table(self) -> str:
        rows = [("figure", "value", "target", "result", "detail")]
        rows += [(f.name, f.value, f.target, f.verdict, f.detail) for f in self.figures]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = []
        for n, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def markdown(self) -> str:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        out = [
            f"### {self.title} — {now}",
            "",
            f"Command: `{command_line()}`",
            "",
            f"Machine: {self.machine}",
            "",
            "| figure | value | target | result | detail |",
            "| --- | --- | --- | --- | --- |",
        ]
        for f in self.figures:
            cells = [f.name, f.value, f.target, f.verdict, f.detail]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        if self.notes:
            out.append("")
            out += [f"- {n}" for n in self.notes]
        return "\n".join(out) + "\n\n"

    def emit(self, write: bool, path: Path = RESULTS_MD) -> None:
        print()
        print(f"== {self.title}")
        print(self.table())
        for n in self.notes:
            print(f"  * {n}")
        if write:
            if not path.exists():
                path.write_text("# ChargeNet benchmark results\n\n")
            with path.open("a") as fh:
                fh.write(self.markdown())
            print(f"appended to {path}")


# -- databases -----------------------------------------------------------------------------


@dataclass
class BenchDatabase:
    """A fresh database for one run: a SQLite file in a temp dir, or a new PostgreSQL database."""

    url: str
    kind: str
    pg_name: str | None = None
    pg_admin_url: str | None = None

    def drop(self) -> None:
        if self.pg_name is None or self.pg_admin_url is None:
            return
        asyncio.run(_pg_exec(self.pg_admin_url, f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)'))


async def _pg_exec(admin_dsn: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        for stmt in statements:
            await conn.execute(stmt)
    finally:
        await conn.close()


def fresh_database(database_url: str | None, tmpdir: Path, name: str) -> BenchDatabase:
    """Create (and migrate) an empty database named after `name`.

    PostgreSQL: connect to the `test` database as `postgres` on the host of `database_url`,
    drop `name` if a previous run left it, create it; SQLite: a new file in `tmpdir`.
    """
    from sqlalchemy.engine import make_url

    from schema.migrate import upgrade

    if database_url is None or database_url.startswith("sqlite"):
        db = BenchDatabase(f"sqlite+aiosqlite:///{tmpdir / (name + '.db')}", "sqlite")
    else:
        parsed = make_url(database_url)
        admin = f"postgresql://postgres@{parsed.host or '127.0.0.1'}:{parsed.port or 5432}/{PG_ADMIN_DB}"
        asyncio.run(
            _pg_exec(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
        )
        url = parsed.set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)
        db = BenchDatabase(url, "postgresql", pg_name=name, pg_admin_url=admin)
    upgrade(db.url)
    return db


async def seed_id_tag(url: str) -> None:
    """An Accepted RFID tag so StartTransaction is authorised like a real session."""
    from sqlalchemy import insert

    from gateway.tables import ID_TOKEN
    from schema.db import create_engine
    from schema.timeutil import utcnow

    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(
            insert(ID_TOKEN).values(
                token=BENCH_ID_TAG, token_type="RFID", status="Accepted", created_at=utcnow()
            )
        )
    await engine.dispose()


async def count_rows(url: str, table: str, where: str = "") -> int:
    from sqlalchemy import text

    from schema.db import create_engine

    engine = create_engine(url)
    async with engine.connect() as conn:
        sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
        n = (await conn.execute(text(sql))).scalar_one()
    await engine.dispose()
    return int(n)


SEED_CONNECTOR_STATUSES = ("Available", "Available", "Charging", "Preparing", "Faulted", "Unavailable")


async def seed_stations(url: str, stations: int, *, prefix: str, heartbeat_interval_s: int = 300) -> None:
    """An organisation, N/10 locations, N stations (`{prefix}000000`…) with 2 connectors each,
    in a few inserts; a third of them marked online, connector statuses mixed like a real map."""
    from sqlalchemy import insert, select

    from schema.db import create_engine
    from schema.models import ChargingStation, Connector, Location, Organization
    from schema.timeutil import utcnow

    org_t, loc_t = Organization.__table__, Location.__table__  # type: ignore[attr-defined]
    st_t, con_t = ChargingStation.__table__, Connector.__table__  # type: ignore[attr-defined]
    now = utcnow()
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(
            insert(org_t).values(name="Bench Network", slug="bench", currency="EUR", created_at=now)
        )
        org_id = (await conn.execute(select(org_t.c.id))).scalar_one()
        n_loc = max(1, stations // 10)
        await conn.execute(
            insert(loc_t),
            [
                {
                    "organization_id": org_id,
                    "name": f"Site {i}",
                    "address": f"Street {i}",
                    "city": "Berlin",
                    "country": "DE",
                    "latitude": 52.0 + (i % 100) / 100,
                    "longitude": 13.0 + (i // 100) / 100,
                    "time_zone": "Europe/Berlin",
                    "created_at": now,
                }
                for i in range(n_loc)
            ],
        )
        loc_ids = [r[0] for r in await conn.execute(select(loc_t.c.id).order_by(loc_t.c.id))]
        await conn.execute(
            insert(st_t),
            [
                {
                    "organization_id": org_id,
                    "location_id": loc_ids[i % n_loc],
                    "charge_point_id": f"{prefix}{i:06d}",
                    "vendor": "ChargeNetBench",
                    "model": "BenchAC22",
                    "registration_status": "Accepted",
                    "online": i % 3 != 0,
                    "heartbeat_interval_s": heartbeat_interval_s,
                    "status": "Available",
                    "error_code": "NoError",
                    "created_at": now,
                }
                for i in range(stations)
            ],
        )
        st_ids = [r[0] for r in await conn.execute(select(st_t.c.id).order_by(st_t.c.id))]
        await conn.execute(
            insert(con_t),
            [
                {
                    "station_id": sid,
                    "connector_id": n,
                    "connector_type": "Type2",
                    "current_type": "AC",
                    "max_power_w": 22_000,
                    "status": SEED_CONNECTOR_STATUSES[(k + n) % len(SEED_CONNECTOR_STATUSES)],
                    "error_code": "NoError",
                    "status_since": now,
                }
                for k, sid in enumerate(st_ids)
                for n in (1, 2)
            ],
        )
    await engine.dispose()


# -- ChargeNet as deployed: separate processes on PostgreSQL and Redis ----------------------


@dataclass
class BenchRedis:
    """The Redis of a multi-process run.

    By default a private `redis-server` on a free port (no persistence), because pub/sub
    channels are server-wide: a database number separates keys, not the `chargenet:events`
    channel, so a run on a shared server would flood (and be crossed by) every other ChargeNet
    process on it. With `url` an existing server is used and its database flushed first.
    """

    url: str
    server: Any = None

    @classmethod
    def start(cls, url: str | None, workdir: Path) -> BenchRedis:
        import redis

        if url is None:
            from tests.redis_server import RedisServer

            server = RedisServer(workdir)
            server.start()
            return cls(server.url, server)
        with redis.Redis.from_url(url) as client:
            client.flushdb()
        return cls(url)

    @property
    def pid(self) -> int:
        import redis

        with redis.Redis.from_url(self.url) as client:
            return int(client.info("server")["process_id"])

    def count_keys(self, pattern: str) -> int:
        import redis

        with redis.Redis.from_url(self.url) as client:
            return sum(1 for _ in client.scan_iter(match=pattern, count=10_000))

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def postgres_sessions(url: str) -> int:
    """Connections ever opened to the database of `url` (pg_stat_database.sessions): how much a
    run churned its pools, each new backend being a fork on the database host."""
    from sqlalchemy import text

    from schema.db import create_engine

    async def query() -> int:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                sql = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
                return int((await conn.execute(text(sql))).scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(query())


def chargenet_cluster(database_url: str, bus_url: str, **env: str) -> Any:
    """`chargenet gateway` / `chargenet api` processes sharing a database and a bus
    (tests/cluster.py: readiness waits, one JWT key set, output kept), logging warnings only:
    per-connection INFO lines would cost the gateways CPU the figures should not include."""
    from tests.cluster import Cluster

    return Cluster(
        database_url=database_url,
        bus_url=bus_url,
        extra_env={"CHARGENET_LOG_LEVEL": "WARNING", **env},
    )


# -- child processes -----------------------------------------------------------------------

_MP = multiprocessing.get_context("spawn")


@dataclass
class Child:
    """A spawned child talking over a pipe: ("ready", info) first, then request/answer pairs."""

    name: str
    proc: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def request(self, message: tuple[Any, ...], timeout: float = 600.0) -> Any:
        self.conn.send(message)
        return self.answer(timeout)

    def answer(self, timeout: float = 600.0) -> Any:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"{self.name}: no answer in {timeout:.0f}s")
        kind, payload = self.conn.recv()
        if kind == "error":
            raise RuntimeError(f"{self.name} failed:\n{payload}")
        return payload

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (servers shut down gracefully, profiles are written), then SIGKILL."""
        if self.proc.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


def spawn(name: str, target: Callable[..., None], *args: Any, ready_timeout: float = 120.0) -> Child:
    parent, child = _MP.Pipe()
    proc = _MP.Process(target=target, args=(child, *args), name=name, daemon=True)
    proc.start()
    child.close()
    c = Child(name, proc, parent)
    c.info = c.answer(ready_timeout)
    return c


class Worker(Protocol):
    async def main(self) -> None: ...


def run_load_worker(
    conn: multiprocessing.connection.Connection,
    loop_name: str,
    make: Callable[[multiprocessing.connection.Connection], Worker],
) -> None:
    """The body of a load process: many sockets, its own loop, `make(conn).main()` until closed."""

    def body() -> None:
        raise_nofile()
        install_loop(loop_name)
        asyncio.run(make(conn).main())

    report_errors(conn, body)


def parse_modes(text: str, known: Sequence[str]) -> set[str]:
    """A comma-separated subset of `known`, or exit with the unknown ones named."""
    modes = {m.strip() for m in text.split(",") if m.strip()}
    unknown = modes - set(known)
    if unknown:
        raise SystemExit(f"unknown modes: {', '.join(sorted(unknown))}")
    return modes


def report_errors(conn: multiprocessing.connection.Connection, fn: Callable[[], None]) -> None:
    """Run a child's body; a crash is sent to the parent as ("error", traceback)."""
    import traceback

    try:
        fn()
    except BaseException:
        with contextlib.suppress(OSError):
            conn.send(("error", traceback.format_exc()))
        raise


async def recv_async(conn: multiprocessing.connection.Connection) -> Any:
    """Await the next message from the parent without blocking the event loop."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def on_readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), on_readable)
    try:
        await ready
    finally:
        loop.remove_reader(conn.fileno())
        # uvloop leaves the descriptor non-blocking; Connection.send needs it blocking.
        os.set_blocking(conn.fileno(), True)
    return conn.recv()


def stop_event_on_sigterm() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


class Profiler:
    """Optional cProfile of a server child; written when the child stops."""

    def __init__(self, out: str | None) -> None:
        self.out = out
        self._prof: Any = None
        if out:
            import cProfile

            self._prof = cProfile.Profile()
            self._prof.enable()

    def dump(self) -> None:
        if self._prof is None or self.out is None:
            return
        import io
        import pstats

        self._prof.disable()
        self._prof.dump_stats(self.out)
        buf = io.StringIO()
        stats = pstats.Stats(self._prof, stream=buf)
        stats.sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats(60)
        Path(self.out + ".txt").write_text(buf.getvalue())


def py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """Sample a process with py-spy (if installed) for `seconds`; collapsed stacks to `out`."""
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        print("py-spy not installed (.venv/bin/pip install py-spy); skipping profile", flush=True)
        return None
    cmd = [str(exe), "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", "250"]
    cmd += ["--format", "raw", "--nonblocking", "--threads", "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize_collapsed(path: Path, top: int = 25) -> str:
    """Self time and inclusive time per function of the main thread (the event loop).

    Samples in `select` are the loop waiting for work: their share is the idle time.
    """
    self_t: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    if not path.exists():
        return f"(no profile at {path})"
    for line in path.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        try:
            count = int(count_s)
        except ValueError:
            continue
        frames = stack.split(";")
        if frames[0].startswith("thread ") and "MainThread" not in frames[0]:
            continue
        frames = frames[1:] if frames[0].startswith("thread ") else frames
        if not frames:
            continue
        total += count
        for f in set(frames):
            incl[f] = incl.get(f, 0) + count
        self_t[frames[-1]] = self_t.get(frames[-1], 0) + count
    total = max(total, 1)
    lines = [f"main-thread samples: {total}", "self time:"]
    for f, n in sorted(self_t.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * n / total:5.1f}%  {f}")
    lines.append("inclusive time:")
    for f, n in sorted(incl.items(), key=lambda kv: -kv[1])[: top * 2]:
        lines.append(f"  {100 * n / total:5.1f}%  {f}")
    return "\n".join(lines)


# -- a lean OCPP-J charger -----------------------------------------------------------------


def ocpp_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


ReplyHook = Callable[["OcppConn", list[Any], float, float], None]


class OcppConn(asyncio.Protocol):
    """One charger socket. `call()` for setup steps; `send_call()` + `on_reply` for load.

    Every reply is matched by message id to its send time; `on_reply(conn, frame, sent, now)`
    runs for replies to `send_call()` frames (no future, no task: the cheapest path).
    """

    def __init__(self, host: str, port: int, path: str, subprotocol: str = "ocpp1.6") -> None:
        self.ws = ClientProtocol(
            parse_uri(f"ws://{host}:{port}{path}"),
            subprotocols=[Subprotocol(subprotocol)],
            max_size=None,
        )
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.pending: dict[str, tuple[float, asyncio.Future[list[Any]] | None]] = {}
        self.on_reply: ReplyHook | None = None
        self.on_text: Callable[[str], None] | None = None
        self.closed = False
        self._next = 0
        # Free-form per-charger state of the load modes (register, transaction id, …).
        self.state: dict[str, Any] = {}

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self._on_text(event.data.decode())
            elif isinstance(event, Response) and not self.opened.done():
                if self.ws.state is State.OPEN:
                    self.opened.set_result(None)
                else:
                    self.opened.set_exception(
                        ConnectionError(f"handshake refused: {self.ws.handshake_exc!r}")
                    )
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost during handshake: {exc!r}"))
        for _sent, fut in self.pending.values():
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionError("connection closed"))
        self.pending.clear()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                transport.write(chunk)

    # OCPP-J

    def _on_text(self, text: str) -> None:
        if self.on_text is not None:
            self.on_text(text)
            return
        now = time.perf_counter()
        frame = json.loads(text)
        if frame[0] == 2:  # the central system calls us: nothing here is simulated
            self.send_text(json.dumps([4, frame[1], "NotImplemented", "bench charger", {}]))
            return
        entry = self.pending.pop(frame[1], None)
        if entry is None:
            return
        sent, fut = entry
        if fut is not None:
            if not fut.done():
                fut.set_result(frame)
        elif self.on_reply is not None:
            self.on_reply(self, frame, sent, now)

    @property
    def is_open(self) -> bool:
        """Frames can be sent: the socket is up and no close handshake has begun."""
        return not self.closed and self.ws.state is State.OPEN

    def send_text(self, text: str) -> None:
        if not self.closed:
            self.ws.send_text(text.encode())
            self._flush()

    def new_id(self) -> str:
        self._next += 1
        return str(self._next)

    def send_call(self, message_id: str, text: str) -> None:
        """Send a pre-serialised CALL whose reply goes to `on_reply`."""
        self.pending[message_id] = (time.perf_counter(), None)
        self.send_text(text)

    async def call(self, action: str, payload: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        mid = self.new_id()
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.pending[mid] = (time.perf_counter(), fut)
        try:
            self.send_text(json.dumps([2, mid, action, payload], separators=(",", ":")))
        except Exception:
            del self.pending[mid]  # nothing will answer it
            raise
        frame = await asyncio.wait_for(fut, timeout)
        if frame[0] != 3:
            raise RuntimeError(f"{action} answered with {frame!r}")
        result: dict[str, Any] = frame[2]
        return result

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def open_charger(host: str, port: int, charge_point_id: str, *, timeout: float = 120.0) -> OcppConn:
    loop = asyncio.get_running_loop()
    _transport, conn = await asyncio.wait_for(
        loop.create_connection(lambda: OcppConn(host, port, f"/ocpp/{charge_point_id}"), host, port),
        timeout,
    )
    await asyncio.wait_for(conn.opened, timeout)
    return conn


BOOT_PAYLOAD = {
    "chargePointVendor": "ChargeNetBench",
    "chargePointModel": "BenchAC22",
    "firmwareVersion": "1.4.2",
}


def meter_values_frame(conn: OcppConn, message_id: str, step_wh: int = 7) -> str:
    """A realistic periodic MeterValues: rising register, power and SoC, one timestamp.

    Advances the charger's register by `step_wh`; the text is formatted by hand because
    json.dumps of the nested payload would cost the generator more than the frame is worth.
    """
    st = conn.state
    st["register"] += step_wh
    st["soc"] = min(100.0, st["soc"] + 0.01)
    return (
        f'[2,"{message_id}","MeterValues",{{"connectorId":1,"transactionId":{st["tx"]},'
        f'"meterValue":[{{"timestamp":"{ocpp_now()}","sampledValue":['
        f'{{"value":"{st["register"]}","context":"Sample.Periodic",'
        f'"measurand":"Energy.Active.Import.Register","location":"Outlet","unit":"Wh"}},'
        f'{{"value":"{st["power"]}","context":"Sample.Periodic",'
        f'"measurand":"Power.Active.Import","location":"Outlet","unit":"W"}},'
        f'{{"value":"{st["soc"]:.0f}","context":"Sample.Periodic",'
        f'"measurand":"SoC","location":"EV","unit":"Percent"}}]}}]}}]'
    )


SAMPLES_PER_METER_VALUES = 3


async def start_transaction(conn: OcppConn, index: int) -> int:
    """StartTransaction on connector 1 with the bench tag; remembers register, tx, SoC."""
    register = 1_000_000 + index * 10
    result = await conn.call(
        "StartTransaction",
        {"connectorId": 1, "idTag": BENCH_ID_TAG, "meterStart": register, "timestamp": ocpp_now()},
    )
    tx = int(result["transactionId"])
    conn.state.update(register=register, meter_start=register, tx=tx, soc=20.0, power=11_000 + index % 1000)
    return tx


async def gather_limited(coros: Iterable[Any], limit: int) -> list[Any]:
    """Run coroutines with at most `limit` in flight; exceptions are returned, not raised."""
    sem = asyncio.Semaphore(limit)

    async def one(c: Any) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)


# -- the composed server (api/runtime.py) in a child ---------------------------------------


def runtime_child(
    conn: multiprocessing.connection.Connection,
    db_url: str,
    loop_name: str,
    run_api: bool,
    run_gateway: bool,
    admin_token: str,
    profile_out: str | None,
) -> None:
    """`Runtime(settings, run_api=…, run_gateway=…)` as `chargenet serve` builds it, demo off."""

    def body() -> None:
        import logging

        raise_nofile()
        logging.basicConfig(level=logging.WARNING, format="server %(levelname)s %(name)s: %(message)s")
        install_loop(loop_name)
        asyncio.run(_runtime_main(conn, db_url, run_api, run_gateway, admin_token, profile_out))

    report_errors(conn, body)


async def _runtime_main(
    conn: multiprocessing.connection.Connection,
    db_url: str,
    run_api: bool,
    run_gateway: bool,
    admin_token: str,
    profile_out: str | None,
) -> None:
    from api.runtime import Runtime
    from schema.bus import InProcessBus
    from schema.settings import Settings

    settings = Settings().model_copy(
        update={
            "database_url": db_url,
            "demo": False,
            "api_host": "127.0.0.1",
            "api_port": 0,
            "gateway_host": "127.0.0.1",
            "gateway_port": 0,
            "auto_register": True,
            "admin_token": admin_token,
        }
    )
    stop = stop_event_on_sigterm()
    gc_watch = GcWatch()
    bus = InProcessBus()
    rt = Runtime(settings, run_api=run_api, run_gateway=run_gateway, bus=bus)
    await rt.start()
    info: dict[str, Any] = {"pid": os.getpid()}
    if rt.api_server is not None:
        info["api_port"] = next(iter(rt.api_server.servers[0].sockets)).getsockname()[1]
    if rt.gateway is not None:
        info["gateway_port"] = rt.gateway.bound_port
    profiler = Profiler(profile_out)
    conn.send(("ready", info))
    stopping = asyncio.create_task(stop.wait())
    while not stop.is_set():
        reading = asyncio.create_task(recv_async(conn))
        done, _ = await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if reading not in done:
            reading.cancel()
            break
        msg = reading.result()
        if msg[0] == "gc_reset":
            gc_watch.reset()
            conn.send(("ok", {}))
        elif msg[0] == "gc_freeze":  # an experiment, not something the server does itself
            gc.collect()
            gc.freeze()
            conn.send(("ok", {"frozen": gc.get_freeze_count()}))
        elif msg[0] == "stats":
            conn.send(
                (
                    "ok",
                    {
                        "subscribers": bus.subscriber_count(),
                        "connections": len(rt.gateway.connections) if rt.gateway else 0,
                        "gc": gc_watch.summary(),
                    },
                )
            )
    profiler.dump()
    await rt.stop()


def add_server_args(p: argparse.ArgumentParser, *, pg_name: str, subject: str) -> None:
    """The options every benchmark shares: where the server stores data, its event loop,
    profiling of the server child, and writing the results."""
    p.add_argument(
        "--database-url",
        help="postgresql+asyncpg://postgres@127.0.0.1:5432/<db>: run on a fresh PostgreSQL "
        "database (created via `test`, dropped at the end); default: SQLite in a temp dir",
    )
    p.add_argument("--pg-name", default=pg_name, help="name of the PostgreSQL database to create")
    p.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="uvloop",
        help="server event loop (uvloop is what `chargenet` runs on)",
    )
    p.add_argument("--py-spy", metavar="DIR", help=f"record the {subject} with py-spy while measuring")
    p.add_argument("--cprofile", action="store_true", help=f"cProfile the {subject} child")
    p.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")


def add_postgres_args(p: argparse.ArgumentParser, *, pg_name: str) -> None:
    """The options of a benchmark that seeds its own PostgreSQL database in-process."""
    p.add_argument(
        "--database-url",
        default=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pg_name}",
        help="PostgreSQL server to create the fresh database on",
    )
    p.add_argument("--pg-name", default=pg_name)
    p.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")


def run_on_fresh_postgres(args: argparse.Namespace, report: Report, run: Callable[[str], Any]) -> None:
    """`run(url)` (a coroutine function) on a freshly created, migrated PostgreSQL database that
    is dropped afterwards; then the report is printed (and appended with `--write`)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        db = fresh_database(args.database_url, Path(tmp), args.pg_name)
        if db.kind != "postgresql":
            sys.exit("this benchmark measures PostgreSQL (COPY seeding); give a postgresql URL")
        try:
            asyncio.run(run(db.url))
        finally:
            db.drop()
    report.emit(args.write)
