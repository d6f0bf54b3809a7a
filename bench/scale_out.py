"""ChargeNet scaled out: two gateway processes holding 20 000 chargers, an API process, PostgreSQL
and Redis, loaded the way a network loads them, and a gateway restart in the middle of it.

Why: one process stops being enough at tens of thousands of chargers. What an operator needs to
know before running replicas is what each one costs (memory and CPU per connection), whether
chargers see the same answers as on one process (latency, no errors, nothing acknowledged and
lost), and what happens when a gateway restarts: its chargers all come back at once, and the
API must stay usable meanwhile.

  traffic  20 000 chargers (10 000 per gateway) connected and booted; 30 % start a session.
           Every charger sends Heartbeat every 60 s; chargers in a session send MeterValues
           every 30 s, each charger on its own staggered schedule. Reports connections held
           (load generator, database `online`, Redis station ownership), RSS per gateway and per
           connection, CPU of every process, messages/s, CALL→CALLRESULT p50/p99 per action,
           errors, and that every acknowledged MeterValues is in `meter_sample`.
  storm    With the same traffic running, gateway A gets SIGTERM (or kill -9 with --kill) and
           is started again; its 10 000 chargers reconnect spread over 10 s, each sending
           BootNotification and then StatusNotification for connectors 0, 1 and 2, retrying
           every second until accepted. Reports each charger's wait from its first reconnect
           attempt to Boot accepted (and to its last StatusNotification answered), and the
           latency of `{ stations(first: 100) { edges { node { id online status } } } }`
           polled every 50 ms against the API throughout.

Everything runs as deployed: `chargenet gateway` ×2 and `chargenet api` as separate OS processes
(tests/cluster.py starts them) with DATABASE_URL = a fresh PostgreSQL database and BUS_URL = a
Redis of the run's own (see benchlib.BenchRedis; --redis-url to use another). Stations are
seeded in bulk before the gateways start. The chargers are benchlib's sans-I/O clients in two
load processes (one per gateway), the GraphQL client a third process. All of it shares one
machine: every report lists the CPU of each process, PostgreSQL and Redis included.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import multiprocessing.connection
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib as bl
import gateway_load as gl

MODES = ("traffic", "storm")
PREFIX = "SCALE-"
STATIONS_QUERY = "{ stations(first: 100) { edges { node { id online status } } } }"
# Message ids carry their action's initial, so a reply says what it answers.
HEARTBEAT, METER = "h", "m"
ACTION_NAMES = {HEARTBEAT: "Heartbeat", METER: "MeterValues"}


def status_payloads(in_session: bool) -> list[dict[str, Any]]:
    """What an OCPP 1.6 charger reports after its boot: the station and each connector."""
    now = bl.ocpp_now()
    return [
        {"connectorId": connector, "errorCode": "NoError", "status": status, "timestamp": now}
        for connector, status in (
            (0, "Available"),
            (1, "Charging" if in_session else "Available"),
            (2, "Available"),
        )
    ]


# -- the load processes --------------------------------------------------------------------


class Traffic:
    """Every charger's Heartbeat (and, in a session, MeterValues) on its own fixed period.

    Timers are kept per slot, not per socket: a charger whose socket is gone skips its turn
    (counted) and picks up again on the socket that replaced it.
    """

    def __init__(self, slots: list[bl.OcppConn], heartbeat_s: float, meter_s: float) -> None:
        self.slots = slots
        self.periods = {HEARTBEAT: heartbeat_s, METER: meter_s}
        self.sent = {HEARTBEAT: 0, METER: 0}
        self.latency = {HEARTBEAT: array("d"), METER: array("d")}
        self.sent_at = {HEARTBEAT: array("d"), METER: array("d")}
        self.errors = 0
        self.first_error = ""
        self.skipped = 0
        self.running = False

    def start(self, t0: float) -> None:
        loop = asyncio.get_running_loop()
        lt0 = loop.time() + (t0 - time.perf_counter())
        self.running = True
        everyone = list(range(len(self.slots)))
        charging = [i for i in everyone if "tx" in self.slots[i].state]
        for kind, indices in ((HEARTBEAT, everyone), (METER, charging)):
            period = self.periods[kind]
            for k, i in enumerate(indices):
                due = lt0 + period * k / max(1, len(indices))
                loop.call_at(due, self.fire, i, kind, due)
        for c in self.slots:
            c.on_reply = self.on_reply

    def fire(self, i: int, kind: str, due: float) -> None:
        if not self.running:
            return
        nxt = due + self.periods[kind]
        asyncio.get_running_loop().call_at(nxt, self.fire, i, kind, nxt)
        c = self.slots[i]
        if not c.is_open:
            self.skipped += 1
            return
        mid = kind + c.new_id()
        text = f'[2,"{mid}","Heartbeat",{{}}]' if kind == HEARTBEAT else bl.meter_values_frame(c, mid)
        self.sent[kind] += 1
        c.send_call(mid, text)

    def on_reply(self, _c: bl.OcppConn, frame: list[Any], sent: float, now: float) -> None:
        kind = frame[1][0]
        if frame[0] == 3:
            self.latency[kind].append(now - sent)
            self.sent_at[kind].append(sent)
        else:
            self.errors += 1
            self.first_error = self.first_error or json.dumps(frame)[:300]

    def unanswered(self) -> int:
        return sum(1 for c in self.slots for mid in c.pending if mid[0] in ACTION_NAMES)

    async def stop(self, drain_s: float) -> dict[str, Any]:
        self.running = False
        for _ in range(int(drain_s * 10)):  # replies still on their way
            if not self.unanswered():
                break
            await asyncio.sleep(0.1)
        return {
            "sent": dict(self.sent),
            "latency": {k: v.tobytes() for k, v in self.latency.items()},
            "sent_at": {k: v.tobytes() for k, v in self.sent_at.items()},
            "errors": self.errors,
            "first_error": self.first_error,
            "skipped": self.skipped,
            "unanswered": self.unanswered(),
        }


class ScaleWorker(gl.LoadWorker):
    """gateway_load's worker (connect, start_tx) plus the traffic schedule and the storm."""

    HANDLERS = (*gl.LoadWorker.HANDLERS, "open_sockets", "traffic", "traffic_stop", "storm")

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        super().__init__(conn)
        self.traffic_load: Traffic | None = None

    async def open_sockets(self) -> int:
        return sum(1 for c in self.chargers if not c.closed)

    async def traffic(self, t0: float, heartbeat_s: float, meter_s: float) -> dict[str, Any]:
        self.traffic_load = Traffic(self.chargers, heartbeat_s, meter_s)
        self.traffic_load.start(t0)
        return {"chargers": len(self.chargers), "charging": sum("tx" in c.state for c in self.chargers)}

    async def traffic_stop(self, drain_s: float) -> dict[str, Any]:
        assert self.traffic_load is not None
        out = await self.traffic_load.stop(drain_s)
        self.traffic_load = None
        return out

    async def storm(
        self,
        host: str,
        port: int,
        t_start: float,
        window_s: float,
        retry_s: float,
        backoff_cap_s: float,
        attempt_timeout_s: float,
        give_up_s: float,
    ) -> dict[str, Any]:
        """Every charger of this process reconnects: first attempt at t_start + window·i/n.

        An attempt that fails or takes longer than `attempt_timeout_s` is retried like OCPP
        2.0.1's RetryBackOff settings: after `retry_s` doubled per failed attempt (at most
        `backoff_cap_s`) plus a random part of up to `retry_s`, so retries do not synchronise.
        """
        rng = random.Random(os.getpid())
        n = len(self.chargers)
        first, booted, reported = (array("d", [math.nan] * n) for _ in range(3))
        attempts = array("q", [0] * n)
        failures: dict[str, int] = {}

        async def one(i: int) -> None:
            old = self.chargers[i]
            cpid = old.ws.uri.path.rsplit("/", 1)[1]
            await asyncio.sleep(max(0.0, t_start + window_s * i / n - time.perf_counter()))
            first[i] = time.perf_counter()
            while True:
                attempts[i] += 1
                c: bl.OcppConn | None = None
                try:
                    c = await bl.open_charger(host, port, cpid, timeout=attempt_timeout_s)
                    result = await c.call("BootNotification", bl.BOOT_PAYLOAD, timeout=attempt_timeout_s)
                    if result.get("status") != "Accepted":
                        raise RuntimeError(f"BootNotification {result.get('status')}")
                    booted[i] = time.perf_counter()
                    for payload in status_payloads("tx" in old.state):
                        await c.call("StatusNotification", payload, timeout=attempt_timeout_s)
                    reported[i] = time.perf_counter()
                    c.state = old.state
                    if self.traffic_load is not None:
                        c.on_reply = self.traffic_load.on_reply
                    self.chargers[i] = c
                    return
                except Exception as exc:
                    why = f"{type(exc).__name__}: {str(exc)[:100]}"
                    if c is not None and c.ws.close_rcvd is not None:  # the gateway closed it: why
                        why += f" (close {c.ws.close_rcvd.code} {c.ws.close_rcvd.reason[:60]})"
                    failures[why] = failures.get(why, 0) + 1
                    if c is not None:
                        c.abort()
                    if time.perf_counter() - first[i] > give_up_s:
                        return
                    backoff = min(backoff_cap_s, retry_s * 2 ** (attempts[i] - 1))
                    await asyncio.sleep(backoff + rng.uniform(0, retry_s))

        await asyncio.gather(*(one(i) for i in range(n)))
        gc.collect()
        gc.freeze()
        return {
            "first": first.tobytes(),
            "booted": booted.tobytes(),
            "reported": reported.tobytes(),
            "attempts": attempts.tobytes(),
            "failures": failures,
        }


def load_child(conn: multiprocessing.connection.Connection, loop_name: str) -> None:
    bl.run_load_worker(conn, loop_name, ScaleWorker)


# -- the GraphQL client --------------------------------------------------------------------


def poller_child(conn: multiprocessing.connection.Connection, url: str, interval_s: float) -> None:
    """One app polling a page of stations over a keep-alive connection until told to stop."""

    def body() -> None:
        import httpx

        sent_at, latency, failed = array("d"), array("d"), array("d")
        first_failure = ""
        conn.send(("ready", {"pid": os.getpid()}))
        with httpx.Client(timeout=30.0) as client:
            due = time.perf_counter()
            while not conn.poll(0):
                t0 = time.perf_counter()
                try:
                    response = client.post(url, json={"query": STATIONS_QUERY})
                    data = response.json()
                    ok = response.status_code == 200 and not data.get("errors")
                    why = "" if ok else f"HTTP {response.status_code}: {response.text[:200]}"
                except (httpx.HTTPError, ValueError) as exc:
                    ok, why = False, repr(exc)[:200]
                t1 = time.perf_counter()
                (latency if ok else failed).append(t1 - t0)
                if ok:
                    sent_at.append(t0)
                else:
                    first_failure = first_failure or why
                due = max(due + interval_s, t1)
                time.sleep(max(0.0, due - time.perf_counter()))
        conn.recv()
        conn.send(
            (
                "ok",
                {
                    "sent_at": sent_at.tobytes(),
                    "latency": latency.tobytes(),
                    "failed": len(failed),
                    "first_failure": first_failure,
                },
            )
        )

    bl.report_errors(conn, body)


# -- orchestration -------------------------------------------------------------------------


def _window(sent_at: array[float], latency: array[float], t0: float, t1: float) -> list[float]:
    return [lat for at, lat in zip(sent_at, latency, strict=True) if t0 <= at and at + lat <= t1]


TCP_COUNTERS = ("ListenOverflows", "TCPSynRetrans")


def _delta(before: dict[str, int]) -> dict[str, int]:
    after = bl.tcp_counters(*before)
    return {k: after[k] - v for k, v in before.items()}


def _fmt_tcp(delta: dict[str, int]) -> str:
    return (
        f"kernel: {delta['ListenOverflows']} connection attempts turned away by a full accept queue, "
        f"{delta['TCPSynRetrans']} SYNs resent"
    )


def _lat(summary: dict[str, float]) -> str:
    return f"{summary['p50']:.1f} / {summary['p99']:.1f} ms"


class ScaleRun:
    """The cluster, the load processes and the report of one run."""

    def __init__(self, args: argparse.Namespace, tmp: Path, report: bl.Report) -> None:
        self.args = args
        self.tmp = tmp
        self.report = report
        self.redis: bl.BenchRedis | None = None
        self.db: bl.BenchDatabase | None = None
        self.cluster: Any = None
        self.fleet: gl.Fleet | None = None
        self.gateways = ("gwA", "gwB")
        self.ports: dict[str, int] = {}
        self.baseline_rss: dict[str, int] = {}
        self.per_gateway = args.chargers // 2
        self.retired: list[Any] = []  # processes replaced by a restart (their logs still count)

    # setup

    def start(self) -> None:
        a = self.args
        self.redis = bl.BenchRedis.start(a.redis_url, self.tmp)
        self.db = bl.fresh_database(a.database_url, self.tmp, a.pg_name)
        t0 = time.perf_counter()
        asyncio.run(
            bl.seed_stations(self.db.url, a.chargers, prefix=PREFIX, heartbeat_interval_s=int(a.heartbeat))
        )
        asyncio.run(bl.seed_id_tag(self.db.url))
        self.report.note(
            f"seeded {a.chargers} stations (2 connectors each) in {time.perf_counter() - t0:.1f} s; "
            f"database {self.db.pg_name}, bus {self.redis.url}"
            + (" (a redis-server of this run)" if a.redis_url is None else "")
        )
        self.cluster = bl.chargenet_cluster(self.db.url, self.redis.url)
        for name in self.gateways:
            self._start_gateway(name)
        asyncio.run(self.cluster.api("api"))
        time.sleep(a.settle)
        for name in (*self.gateways, "api"):
            self.baseline_rss[name] = bl.rss_kb(self.pid(name))
        self.fleet = gl.Fleet(2, a.gen_loop, load_child)

    def _start_gateway(self, name: str) -> float:
        t0 = time.perf_counter()
        proc = asyncio.run(self.cluster.gateway(name))
        self.ports[name] = proc.port
        return time.perf_counter() - t0

    def pid(self, name: str) -> int:
        return int(self.cluster.processes[name].popen.pid)

    def watched(self) -> dict[str, bl.PidGroup]:
        assert self.redis is not None and self.fleet is not None
        pids: dict[str, bl.PidGroup] = {name: self.pid(name) for name in (*self.gateways, "api")}
        pids.update(self.fleet.pids)
        pids["postgres"] = bl.postgres_cpu_seconds
        pids["redis"] = self.redis.pid
        return pids

    def connect(self) -> None:
        a, fleet = self.args, self.fleet
        assert fleet is not None and self.db is not None and self.redis is not None
        n = self.per_gateway
        print(f"connecting {2 * n} chargers ({n} per gateway), BootNotification each…", flush=True)
        cpu = bl.CpuMeter(self.watched())
        tcp0 = bl.tcp_counters(*TCP_COUNTERS)
        pg0 = bl.postgres_sessions(self.db.url)
        t0 = time.perf_counter()
        answers = fleet.broadcast(
            "connect",
            [
                {
                    "host": "127.0.0.1",
                    "port": self.ports[gw],
                    "prefix": PREFIX,
                    "start": k * n,
                    "count": n,
                    "concurrency": a.connect_concurrency,
                }
                for k, gw in enumerate(self.gateways)
            ],
        )
        elapsed = time.perf_counter() - t0
        usage = cpu.stop()
        tcp = _delta(tcp0)
        pg_sessions = bl.postgres_sessions(self.db.url) - pg0 - 1
        connected = sum(x["connected"] for x in answers)
        failed = sum(x["failed"] for x in answers)
        if failed:
            self.report.note(
                f"connect failures: {failed}, e.g. {[e for x in answers for e in x['first_errors']][:3]}"
            )
        self.report.add(
            f"connect + BootNotification, {2 * n} chargers over 2 gateways",
            f"{elapsed:.1f} s",
            "",
            None,
            f"{connected / elapsed:.0f} chargers/s, {a.connect_concurrency} handshakes in flight per "
            f"gateway; {failed} failed; {_fmt_tcp(tcp)}; {pg_sessions} PostgreSQL connections opened; "
            f"CPU {bl.fmt_cpu(usage)}",
        )
        sessions = int(n * a.session_share)
        print(f"StartTransaction on {2 * sessions} chargers…", flush=True)
        st = fleet.broadcast(
            "start_tx",
            [{"offset": k * n, "concurrency": a.connect_concurrency, "limit": sessions} for k in range(2)],
        )
        started = sum(x["started"] for x in st)
        if any(x["failed"] for x in st):
            self.report.note(f"StartTransaction failures: {[e for x in st for e in x['first_errors']][:3]}")
        self.report.note(
            f"{started} sessions started ({100 * a.session_share:.0f} % of the chargers) in "
            f"{max(x['elapsed'] for x in st):.1f} s"
        )
        time.sleep(a.settle)

    def held(self) -> tuple[int, int]:
        """Stations online in the database, and stations with a gateway owner in Redis."""
        assert self.db is not None and self.redis is not None
        online = asyncio.run(bl.count_rows(self.db.url, "charging_station", "online"))
        return online, self.redis.count_keys("chargenet:station:*")

    # figure 1

    def traffic(self) -> None:
        a, fleet, report = self.args, self.fleet, self.report
        assert fleet is not None and self.db is not None
        n = 2 * self.per_gateway
        idle = {name: bl.rss_kb(self.pid(name)) for name in self.gateways}
        online, owned = self.held()
        connected = sum(w.request(("open_sockets",)) for w in fleet.workers)
        report.add(
            "chargers connected (load generator / database online / Redis owners)",
            f"{connected} / {online} / {owned}",
            f"all {n}",
            connected == online == owned == n,
        )
        before = asyncio.run(bl.count_rows(self.db.url, "meter_sample"))
        t0 = time.perf_counter() + 1.0
        charging = 0
        for w in fleet.workers:
            w.conn.send(("traffic", {"t0": t0, "heartbeat_s": a.heartbeat, "meter_s": a.meter_interval}))
        for w in fleet.workers:
            charging += w.answer()["charging"]
        print(
            f"traffic: {n} chargers, Heartbeat every {a.heartbeat:g} s, {charging} in a session with "
            f"MeterValues every {a.meter_interval:g} s; {a.warmup:g} s warm-up + {a.duration:g} s measured…",
            flush=True,
        )
        m0 = t0 + a.warmup
        time.sleep(max(0.0, m0 - time.perf_counter()))
        spy = self._spy("gwA", "traffic", a.duration)
        cpu = bl.CpuMeter(self.watched())
        time.sleep(a.duration)
        usage = cpu.stop()
        m1 = time.perf_counter()
        rss = {name: bl.rss_kb(self.pid(name)) for name in (*self.gateways, "api")}
        answers = [w.request(("traffic_stop", {"drain_s": 30.0})) for w in fleet.workers]
        self._spy_done(spy)
        persisted = asyncio.run(bl.count_rows(self.db.url, "meter_sample")) - before

        for name in self.gateways:
            base = self.baseline_rss[name]
            report.add(
                f"{name}: RSS started → {self.per_gateway} idle chargers → under traffic",
                f"{base / 1024:.0f} → {idle[name] / 1024:.0f} → {rss[name] / 1024:.0f} MiB",
                "",
                None,
                f"{(idle[name] - base) / self.per_gateway:.1f} KB per idle connection; "
                f"{(rss[name] - base) / self.per_gateway:.1f} KB per connection under traffic",
            )
        report.add("api: RSS", f"{rss['api'] / 1024:.0f} MiB")
        acked = {k: 0 for k in ACTION_NAMES}
        per_gw = []
        for gw, ans in zip(self.gateways, answers, strict=True):
            count = 0
            for kind in ACTION_NAMES:
                win = _window(
                    bl.from_bytes(ans["sent_at"][kind]), bl.from_bytes(ans["latency"][kind]), m0, m1
                )
                acked[kind] += len(win)
                count += len(win)
            per_gw.append(f"{gw} {count / a.duration:.0f}/s")
        errors = sum(x["errors"] for x in answers)
        unanswered = sum(x["unanswered"] for x in answers)
        report.add(
            "messages handled (Heartbeat + MeterValues)",
            f"{sum(acked.values()) / a.duration:.0f} msg/s",
            "",
            None,
            f"{', '.join(per_gw)}; expected {n / a.heartbeat + charging / a.meter_interval:.0f}/s from the "
            f"schedule; {a.duration:g} s window",
        )
        for kind, name in ACTION_NAMES.items():
            lat: list[float] = []
            for ans in answers:
                lat += _window(
                    bl.from_bytes(ans["sent_at"][kind]), bl.from_bytes(ans["latency"][kind]), m0, m1
                )
            s = bl.latency_summary(lat)
            at: list[float] = []
            for ans in answers:
                sent_at = bl.from_bytes(ans["sent_at"][kind])
                done = zip(sent_at, bl.from_bytes(ans["latency"][kind]), strict=True)
                at += [t - m0 for t, x in done if m0 <= t and t + x <= m1]
            report.add(
                f"{name} CALL→CALLRESULT p50 / p99",
                _lat(s),
                "",
                None,
                f"p90 {s['p90']:.1f} ms, max {s['max']:.1f} ms, {int(s['n'])} round trips",
            )
            report.note(f"{name} timeline: {bl.worst_seconds(at, lat)}")
        first_error = next((x["first_error"] for x in answers if x["first_error"]), "")
        report.add(
            "errors (CALLERROR) / unanswered",
            f"{errors} / {unanswered}",
            "0 / 0",
            errors == 0 and unanswered == 0,
            first_error,
        )
        sent_mv = sum(x["sent"][METER] for x in answers)
        acked_mv = sum(len(bl.from_bytes(x["latency"][METER])) for x in answers)
        expected = acked_mv * bl.SAMPLES_PER_METER_VALUES
        report.add(
            "acknowledged MeterValues in meter_sample (rows)",
            f"{persisted} / {expected}",
            "= acked × 3",
            persisted == expected and unanswered == 0,
            f"{acked_mv} acked of {sent_mv} sent, whole traffic phase",
        )
        report.add("CPU during traffic (% of one core)", bl.fmt_cpu(usage))

    # figure 2

    def storm(self) -> None:
        a, fleet, report = self.args, self.fleet, self.report
        assert fleet is not None and self.db is not None
        n = self.per_gateway
        poller = bl.spawn(
            "graphql",
            poller_child,
            f"http://127.0.0.1:{self.cluster.processes['api'].port}/graphql",
            a.poll_interval,
        )
        t0 = time.perf_counter() + 0.5
        for w in fleet.workers:
            w.request(("traffic", {"t0": t0, "heartbeat_s": a.heartbeat, "meter_s": a.meter_interval}))
        time.sleep(a.storm_lead)
        how = "kill -9" if a.kill else "SIGTERM"
        print(
            f"storm: {how} gwA, start it again, {n} chargers reconnect over {a.storm_window:g} s…", flush=True
        )
        t_down = time.perf_counter()
        if a.kill:
            self.cluster.kill("gwA")
        else:
            asyncio.run(self.cluster.stop("gwA", timeout=120))
        t_exit = time.perf_counter()
        self.retired.append(self.cluster.processes["gwA"])
        t_ready = t_exit + self._start_gateway("gwA")
        t_start = time.perf_counter() + 0.5
        storm = fleet.workers[0]
        storm.conn.send(
            (
                "storm",
                {
                    "host": "127.0.0.1",
                    "port": self.ports["gwA"],
                    "t_start": t_start,
                    "window_s": a.storm_window,
                    "retry_s": a.retry,
                    "backoff_cap_s": a.backoff_cap,
                    "attempt_timeout_s": a.attempt_timeout,
                    "give_up_s": a.give_up,
                },
            )
        )
        time.sleep(max(0.0, t_start - time.perf_counter()))
        spy = self._spy("gwA", "storm", a.storm_window + 5)
        cpu = bl.CpuMeter({**self.watched(), "graphql": poller.pid})
        tcp0 = bl.tcp_counters(*TCP_COUNTERS)
        pg0 = bl.postgres_sessions(self.db.url)
        result = storm.answer(a.give_up + a.storm_window + 120)
        usage = cpu.stop()
        tcp = _delta(tcp0)
        pg_sessions = bl.postgres_sessions(self.db.url) - pg0 - 1
        time.sleep(a.storm_tail)
        polls = poller.request(("stop",))
        poller.stop(10)
        answers = [w.request(("traffic_stop", {"drain_s": 30.0})) for w in fleet.workers]
        self._spy_done(spy)

        first, booted, reported = (bl.from_bytes(result[k]) for k in ("first", "booted", "reported"))
        attempts = array("q")
        attempts.frombytes(result["attempts"])
        ok = [i for i in range(n) if not math.isnan(reported[i])]
        boot_wait = [booted[i] - first[i] for i in range(n) if not math.isnan(booted[i])]
        report_wait = [reported[i] - first[i] for i in ok]
        bw, rw = bl.latency_summary(boot_wait), bl.latency_summary(report_wait)
        last_done = max((reported[i] for i in ok), default=math.nan)
        report.add(
            f"gwA restart ({how}): shutdown / start to ready",
            f"{t_exit - t_down:.1f} s / {t_ready - t_exit:.1f} s",
        )
        report.add(
            f"chargers reconnected (Boot + 3 StatusNotification answered), spread over {a.storm_window:g} s",
            f"{len(ok)} / {n}",
            f"all {n}",
            len(ok) == n,
            f"last one done {last_done - t_start:.1f} s after the first attempt; "
            f"{sum(attempts) - n} retries; failures {result['failures'] or 'none'}; {_fmt_tcp(tcp)}; "
            f"{pg_sessions} PostgreSQL connections opened",
        )
        report.add(
            "wait from first reconnect attempt to Boot accepted: p50 / p99 / max",
            f"{bw['p50'] / 1000:.2f} / {bw['p99'] / 1000:.2f} / {bw['max'] / 1000:.2f} s",
            "max ≤ 10 s",
            len(boot_wait) == n and bw["max"] <= 10_000,
            f"to the last StatusNotification answered: p50 {rw['p50'] / 1000:.2f} s, p99 "
            f"{rw['p99'] / 1000:.2f} s, max {rw['max'] / 1000:.2f} s",
        )
        done_at = sorted(reported[i] - t_start for i in ok)
        marks = [m for m in (5, 10, 20, 30, 60, 120) if m < done_at[-1] + 5] if done_at else []
        by = ", ".join(f"{sum(1 for t in done_at if t <= m)} by {m} s" for m in marks)
        peak = max(
            (sum(1 for t in done_at if s0 <= t < s0 + 5) for s0 in range(int(done_at[-1]) + 1)), default=0
        )
        report.add(
            "gwA reconnects completed (Boot + StatusNotifications) after the first attempt",
            by,
            "",
            None,
            f"peak {peak / 5:.0f}/s over 5 s; {len(ok) / max(1.0, done_at[-1] if done_at else 0):.0f}/s "
            "on average",
        )
        sent_at, latency = bl.from_bytes(polls["sent_at"]), bl.from_bytes(polls["latency"])
        during = bl.latency_summary(_window(sent_at, latency, t_start, last_done))
        restart = bl.latency_summary(_window(sent_at, latency, t_down, t_start))
        report.add(
            "GraphQL stations(first: 100) during the reconnects: p50 / p99",
            _lat(during),
            "p99 < 100 ms",
            during["p99"] < 100 and polls["failed"] == 0,
            f"max {during['max']:.0f} ms, {int(during['n'])} requests every {1000 * a.poll_interval:.0f} ms; "
            f"while gwA restarted: p50 {restart['p50']:.1f}, p99 {restart['p99']:.1f} ms; "
            f"failed requests {polls['failed']} {polls['first_failure']}",
        )
        other = answers[1]
        lat_b = bl.latency_summary(
            _window(
                bl.from_bytes(other["sent_at"][METER]),
                bl.from_bytes(other["latency"][METER]),
                t_start,
                last_done,
            )
        )
        report.add(
            "gwB MeterValues p50 / p99 meanwhile",
            _lat(lat_b),
            "",
            None,
            f"errors {sum(x['errors'] for x in answers)} "
            f"{next((x['first_error'] for x in answers if x['first_error']), '')}; gwA's chargers skipped "
            f"{answers[0]['skipped']} messages while disconnected",
        )
        report.add("CPU during the reconnects (% of one core)", bl.fmt_cpu(usage))
        time.sleep(a.settle)
        online, owned = self.held()
        report.add(
            "after the storm: stations online in the database / owned in Redis",
            f"{online} / {owned}",
            f"{2 * n} / {2 * n}",
            online == owned == 2 * n,
        )

    def log_notes(self) -> None:
        """Warnings and errors the ChargeNet processes logged during the run."""
        for proc in (*self.retired, *self.cluster.processes.values()):
            lines = list(proc.lines)
            bad = [n for n, line in enumerate(lines) if " WARNING " in line or " ERROR " in line]
            if bad:
                self.report.note(
                    f"{proc.name} logged {len(bad)} warnings/errors, e.g. {lines[bad[0]].strip()[:300]}"
                )
                print(
                    f"--- {proc.name}, first warning/error:\n" + "".join(lines[bad[0] : bad[0] + 40]),
                    flush=True,
                )

    # profiling and teardown

    def _spy(self, name: str, what: str, seconds: float) -> tuple[Any, Path] | None:
        if not self.args.py_spy:
            return None
        out = Path(self.args.py_spy)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"scale_out_{name}_{what}.txt"
        spy = bl.py_spy(self.pid(name), seconds, path)
        return (spy, path) if spy is not None else None

    def _spy_done(self, spy: tuple[Any, Path] | None) -> None:
        if spy is None:
            return
        proc, path = spy
        proc.wait(120)
        summary = bl.summarize_collapsed(path)
        path.with_suffix(".summary.txt").write_text(summary)
        print(f"py-spy: {path}\n" + "\n".join(summary.splitlines()[:40]), flush=True)

    def close(self) -> None:
        if self.fleet is not None:
            self.fleet.close()
        if self.cluster is not None:
            asyncio.run(self.cluster.aclose())
            failed = [
                p.name
                for p in self.cluster.processes.values()
                if p.popen.returncode not in (0, -signal.SIGKILL)
            ]
            if failed:
                print(self.cluster.logs(), file=sys.stderr)
        if self.db is not None:
            self.db.drop()
        if self.redis is not None:
            self.redis.stop()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    p.add_argument(
        "--database-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/chargenet_bench_scale",
        help="PostgreSQL server to create the run's database on (via `test`; dropped at the end)",
    )
    p.add_argument("--pg-name", default="chargenet_bench_scale", help="name of the database to create")
    p.add_argument(
        "--redis-url",
        help="use this Redis (its database is flushed first) instead of a redis-server of the run's own; "
        "pub/sub is server-wide, so do not share it with other ChargeNet processes",
    )
    p.add_argument("--chargers", type=int, default=20_000, help="chargers, split over the two gateways")
    p.add_argument("--session-share", type=float, default=0.3, help="share of chargers in a session")
    p.add_argument("--heartbeat", type=float, default=60.0, help="seconds between a charger's Heartbeats")
    p.add_argument("--meter-interval", type=float, default=30.0, help="seconds between MeterValues")
    p.add_argument("--warmup", type=float, default=30.0, help="traffic: unmeasured seconds first")
    p.add_argument("--duration", type=float, default=180.0, help="traffic: measured seconds")
    p.add_argument("--connect-concurrency", type=int, default=100, help="handshakes in flight per gateway")
    p.add_argument("--kill", action="store_true", help="storm: kill -9 the gateway instead of SIGTERM")
    p.add_argument("--storm-window", type=float, default=10.0, help="storm: reconnects spread over seconds")
    p.add_argument(
        "--storm-lead", type=float, default=5.0, help="storm: seconds of traffic before the restart"
    )
    p.add_argument("--storm-tail", type=float, default=5.0, help="storm: seconds of traffic after it")
    p.add_argument(
        "--retry", type=float, default=1.0, help="storm: first retry after this (doubling, plus jitter)"
    )
    p.add_argument("--backoff-cap", type=float, default=30.0, help="storm: longest wait between attempts")
    p.add_argument(
        "--attempt-timeout", type=float, default=30.0, help="storm: a connection attempt is abandoned after"
    )
    p.add_argument("--give-up", type=float, default=120.0, help="storm: a charger stops retrying after")
    p.add_argument("--poll-interval", type=float, default=0.05, help="storm: seconds between GraphQL polls")
    p.add_argument("--settle", type=float, default=3.0, help="seconds to let writes settle between phases")
    p.add_argument("--gen-loop", choices=("asyncio", "uvloop"), default="uvloop", help="load event loop")
    p.add_argument("--py-spy", metavar="DIR", help="record gateway A with py-spy while measuring")
    p.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    return p


def main() -> None:
    args = build_parser().parse_args()
    modes = bl.parse_modes(args.modes, MODES)
    bl.raise_nofile()
    report = bl.Report(
        f"scale_out (postgresql + redis, 2 gateways + 1 API as processes, {args.chargers} chargers"
        + (", kill -9" if args.kill else "")
        + ")"
    )
    tmp = Path(tempfile.mkdtemp(prefix="chargenet-bench-scale-"))
    run = ScaleRun(args, tmp, report)
    try:
        run.start()
        run.connect()
        if "traffic" in modes:
            run.traffic()
        if "storm" in modes:
            run.storm()
        run.log_notes()
    finally:
        run.close()
        shutil.rmtree(tmp, ignore_errors=True)
    report.emit(args.write)


if __name__ == "__main__":
    main()
