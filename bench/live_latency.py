"""How long a meter reading takes to reach a live GraphQL subscriber.

Why: the console and driver apps show a session's energy as it climbs. The path is the whole
product: charger → gateway (validation, group commit) → bus → strawberry subscription →
graphql-transport-ws frame. The targets (p50 ≤ 10 ms, p99 ≤ 50 ms with 1000 sessions and
1000 subscribers) are what makes the number on screen feel live.

What it does: starts the composed server (api/runtime.py: gateway + InProcessBus + API on
uvicorn, demo off) in a child process on a fresh database. A load process connects N
chargers (BootNotification, StartTransaction) and opens N real subscriptions over WebSocket
(`transactionUpdated`, graphql-transport-ws, operator token in connection_init), one socket
per subscription. Each charger then sends MeterValues every --interval seconds, staggered.
Every reading is matched to the `next` frame carrying its energyWh; latency is send →
receive on the shared monotonic clock, so it also works with --load-procs 2 (chargers and
subscribers in separate processes).

With --bus redis the reading crosses processes as deployed at scale: `chargenet gateway` and
`chargenet api` run as separate OS processes (tests/cluster.py starts them) on the PostgreSQL
database with BUS_URL = a Redis of the run's own (benchlib.BenchRedis; --redis-url for another),
so every event goes gateway → Redis pub/sub → API → subscriber. Target there: p99 < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import multiprocessing.connection
import os
import secrets
import shutil
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib as bl

Sink = tuple["array[int]", "array[int]", "array[float]"]
SUBSCRIPTION = 'subscription { transactionUpdated(transactionId: "%s") { energyWh lastSampleAt } }'


def transaction_gid(pk: int) -> str:
    """strawberry relay GlobalID: base64 of "Transaction:<id>"."""
    return base64.b64encode(f"Transaction:{pk}".encode()).decode()


class GqlSub:
    """One graphql-transport-ws socket with one subscription, on the lean WS client."""

    def __init__(
        self, ws: bl.OcppConn, index: int, sink: tuple[array[int], array[int], array[float]]
    ) -> None:
        self.ws = ws
        self.index = index
        self.sink = sink
        loop = asyncio.get_running_loop()
        self.acked: asyncio.Future[None] = loop.create_future()
        self.snapshot: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.errors: list[str] = []
        self.recording = False
        ws.on_text = self.on_text

    def on_text(self, text: str) -> None:
        now = time.perf_counter()
        msg = json.loads(text)
        kind = msg.get("type")
        if kind == "next":
            payload = msg["payload"]
            if payload.get("errors"):
                self._fail(json.dumps(payload["errors"])[:300])
                return
            data = payload["data"]["transactionUpdated"]
            if not self.snapshot.done():
                self.snapshot.set_result(data)
            elif self.recording:
                tx, energy, at = self.sink
                tx.append(self.index)
                energy.append(int(data["energyWh"]))
                at.append(now)
        elif kind == "connection_ack":
            if not self.acked.done():
                self.acked.set_result(None)
        elif kind == "ping":
            self.ws.send_text('{"type":"pong"}')
        elif kind in ("error", "complete"):
            self._fail(text[:300])

    def _fail(self, why: str) -> None:
        self.errors.append(why)
        for fut in (self.acked, self.snapshot):
            if not fut.done():
                fut.set_exception(RuntimeError(why))


def load_child(conn: multiprocessing.connection.Connection, loop_name: str) -> None:
    bl.run_load_worker(conn, loop_name, LiveWorker)


class LiveWorker:
    """Chargers, subscribers or both, as the orchestrator asks."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self.conn = conn
        self.chargers: list[bl.OcppConn] = []
        self.subs: list[GqlSub] = []
        self.received: tuple[array[int], array[int], array[float]] = (array("q"), array("q"), array("d"))

    async def main(self) -> None:
        self.conn.send(("ready", {"pid": os.getpid()}))
        while True:
            msg = await bl.recv_async(self.conn)
            kind, params = msg[0], (msg[1] if len(msg) > 1 else {})
            if kind == "close":
                for c in self.chargers:
                    c.abort()
                for s in self.subs:
                    s.ws.abort()
                self.conn.send(("ok", {}))
                return
            handler = {"chargers": self.open_chargers, "subscribe": self.subscribe, "run": self.run}[kind]
            self.conn.send(("ok", await handler(**params)))

    async def open_chargers(self, port: int, count: int, concurrency: int) -> dict[str, Any]:
        t0 = time.perf_counter()

        async def one(i: int) -> bl.OcppConn:
            c = await bl.open_charger("127.0.0.1", port, f"LIVE-{i:06d}")
            await c.call("BootNotification", bl.BOOT_PAYLOAD)
            await bl.start_transaction(c, i)
            return c

        results = await bl.gather_limited((one(i) for i in range(count)), concurrency)
        self.chargers = [r for r in results if isinstance(r, bl.OcppConn)]
        errors = [repr(r) for r in results if not isinstance(r, bl.OcppConn)]
        gc.collect()
        gc.freeze()
        return {
            "tx_ids": [c.state["tx"] for c in self.chargers],
            "failed": len(errors),
            "first_errors": errors[:3],
            "elapsed": time.perf_counter() - t0,
        }

    async def subscribe(self, port: int, token: str, tx_ids: list[int], concurrency: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        loop = asyncio.get_running_loop()

        async def one(index: int, tx: int) -> GqlSub:
            _t, ws = await asyncio.wait_for(
                loop.create_connection(
                    lambda: bl.OcppConn("127.0.0.1", port, "/graphql", "graphql-transport-ws"),
                    "127.0.0.1",
                    port,
                ),
                60,
            )
            await asyncio.wait_for(ws.opened, 60)
            sub = GqlSub(ws, index, self.received)
            ws.send_text(
                json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
            )
            await asyncio.wait_for(sub.acked, 60)
            ws.send_text(
                json.dumps(
                    {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION % transaction_gid(tx)}}
                )
            )
            await asyncio.wait_for(sub.snapshot, 60)
            return sub

        results = await bl.gather_limited((one(i, tx) for i, tx in enumerate(tx_ids)), concurrency)
        self.subs = [r for r in results if isinstance(r, GqlSub)]
        errors = [repr(r) for r in results if not isinstance(r, GqlSub)]
        gc.collect()
        gc.freeze()
        return {
            "subscribed": len(self.subs),
            "failed": len(errors),
            "first_errors": errors[:3],
            "elapsed": time.perf_counter() - t0,
        }

    async def run(self, t_start: float, seconds: float, interval: float, grace: float) -> dict[str, Any]:
        """Chargers send from t_start for `seconds`; subscribers record until `grace` later."""
        loop = asyncio.get_running_loop()
        sent_tx, sent_energy, sent_at = array("q"), array("q"), array("d")
        ack = array("d")
        errors = {"n": 0, "first": ""}
        for s in self.subs:
            s.recording = True
        t_end = t_start + seconds

        def on_reply(c: bl.OcppConn, frame: list[Any], sent: float, now: float) -> None:
            if frame[0] == 3:
                ack.append(now - sent)
            else:
                errors["n"] += 1
                errors["first"] = errors["first"] or json.dumps(frame)[:300]

        def fire(index: int, c: bl.OcppConn, due: float) -> None:
            if time.perf_counter() >= t_end or c.closed:
                return
            mid = c.new_id()
            text = bl.meter_values_frame(c, mid, step_wh=31)
            sent_tx.append(index)
            sent_energy.append(c.state["register"] - c.state["meter_start"])
            sent_at.append(time.perf_counter())
            c.send_call(mid, text)
            loop.call_at(due + interval, fire, index, c, due + interval)

        n = len(self.chargers)
        lt0 = loop.time() + (t_start - time.perf_counter())
        for i, c in enumerate(self.chargers):
            c.on_reply = on_reply
            due = lt0 + interval * i / max(1, n)
            loop.call_at(due, fire, i, c, due)
        await asyncio.sleep(max(0.0, t_end + grace - time.perf_counter()))
        for s in self.subs:
            s.recording = False
        rtx, renergy, rat = self.received
        out = {
            "sent_tx": sent_tx.tobytes(),
            "sent_energy": sent_energy.tobytes(),
            "sent_at": sent_at.tobytes(),
            "recv_tx": rtx.tobytes(),
            "recv_energy": renergy.tobytes(),
            "recv_at": rat.tobytes(),
            "ack": ack.tobytes(),
            "errors": errors["n"],
            "first_error": errors["first"],
            "sub_errors": sum(len(s.errors) for s in self.subs),
        }
        self.received = (array("q"), array("q"), array("d"))
        for s in self.subs:
            s.sink = self.received
        return out


def _arr(kind: str, data: bytes) -> array[Any]:
    a: array[Any] = array(kind)
    a.frombytes(data)
    return a


class Servers:
    """What is measured: the composed process (gateway + API + in-process bus), or with
    `bus == "redis"` a `chargenet gateway` and a `chargenet api` process sharing a Redis."""

    def __init__(self, args: argparse.Namespace, db: bl.BenchDatabase, tmp: Path) -> None:
        self.bus = args.bus
        self.child: bl.Child | None = None
        self.cluster: Any = None
        self.redis: bl.BenchRedis | None = None
        if self.bus == "memory":
            self.token = secrets.token_urlsafe(16)
            profile = str(tmp / "server.prof") if args.cprofile else None
            self.child = bl.spawn(
                "server", bl.runtime_child, db.url, args.loop, True, True, self.token, profile
            )
            self.gateway_port = int(self.child.info["gateway_port"])
            self.api_port = int(self.child.info["api_port"])
            self.pids: dict[str, bl.PidGroup] = {"server": self.child.pid}
            self.spy_pid = self.child.pid
            return
        self.redis = bl.BenchRedis.start(args.redis_url, tmp)
        self.cluster = bl.chargenet_cluster(db.url, self.redis.url, CHARGENET_AUTO_REGISTER="true")
        self.token = self.cluster.env["CHARGENET_ADMIN_TOKEN"]
        gateway = asyncio.run(self.cluster.gateway("gateway"))
        api = asyncio.run(self.cluster.api("api"))
        self.gateway_port, self.api_port = int(gateway.port), int(api.port)
        self.pids = {
            "gateway": gateway.popen.pid,
            "api": api.popen.pid,
            "redis": self.redis.pid,
            "postgres": bl.postgres_cpu_seconds,
        }
        self.spy_pid = api.popen.pid

    def ask(self, message: tuple[Any, ...]) -> dict[str, Any] | None:
        """Questions only the composed child answers (GC, subscriber count)."""
        return None if self.child is None else dict(self.child.request(message))

    def close(self) -> None:
        if self.child is not None:
            self.child.stop()
        if self.cluster is not None:
            asyncio.run(self.cluster.aclose())
        if self.redis is not None:
            self.redis.stop()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=1000, help="chargers in a session = subscriptions")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between a charger's MeterValues")
    p.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    p.add_argument("--grace", type=float, default=3.0, help="seconds to wait for late deliveries")
    p.add_argument(
        "--load-procs",
        type=int,
        choices=(1, 2),
        default=1,
        help="1: chargers and subscribers in one load process; 2: one process each",
    )
    p.add_argument("--connect-concurrency", type=int, default=100)
    p.add_argument(
        "--bus",
        choices=("memory", "redis"),
        default="memory",
        help="memory: one composed process; redis: `chargenet gateway` and `chargenet api` processes "
        "on PostgreSQL (--database-url required) and Redis",
    )
    p.add_argument(
        "--redis-url",
        help="--bus redis: use this Redis (its database is flushed first) instead of a redis-server of "
        "the run's own; pub/sub is server-wide, so do not share it with other ChargeNet processes",
    )
    bl.add_server_args(p, pg_name="chargenet_bench_live", subject="server (the API with --bus redis)")
    p.add_argument("--gen-loop", choices=("asyncio", "uvloop"), default="uvloop", help="load event loop")
    p.add_argument(
        "--gc-freeze",
        action="store_true",
        help="experiment: gc.freeze() in the server once sessions and subscriptions are set up",
    )
    return p


def main() -> None:
    args = build_parser().parse_args()
    if args.bus == "redis" and (args.database_url is None or args.database_url.startswith("sqlite")):
        raise SystemExit("--bus redis runs separate processes: give a PostgreSQL --database-url")
    if args.bus == "redis" and (args.cprofile or args.gc_freeze or args.loop != "uvloop"):
        raise SystemExit("--cprofile, --gc-freeze and --loop apply to the composed process only")
    bl.raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="chargenet-bench-live-"))
    db = bl.fresh_database(args.database_url, tmp, args.pg_name)
    asyncio.run(bl.seed_id_tag(db.url))
    split = (
        "split: chargers and subscribers in 2 load processes" if args.load_procs == 2 else "1 load process"
    )
    freeze = ", EXPERIMENT gc.freeze" if args.gc_freeze else ""
    where = "bus=redis, gateway and API as separate processes" if args.bus == "redis" else f"loop={args.loop}"
    report = bl.Report(f"live_latency ({db.kind}, {where}, {split}{freeze})")
    server: Servers | None = None
    workers: list[bl.Child] = []
    try:
        server = Servers(args, db, tmp)
        token = server.token
        workers = [bl.spawn(f"load{k}", load_child, args.gen_loop) for k in range(args.load_procs)]
        chargers_w, subs_w = workers[0], workers[-1]
        print(f"[{db.kind}] {args.sessions} chargers: boot + StartTransaction…", flush=True)
        ch = chargers_w.request(
            (
                "chargers",
                {
                    "port": server.gateway_port,
                    "count": args.sessions,
                    "concurrency": args.connect_concurrency,
                },
            )
        )
        if ch["failed"]:
            report.note(f"charger failures: {ch['failed']} e.g. {ch['first_errors']}")
        print(f"[{db.kind}] {len(ch['tx_ids'])} GraphQL subscriptions…", flush=True)
        sb = subs_w.request(
            (
                "subscribe",
                {
                    "port": server.api_port,
                    "token": token,
                    "tx_ids": ch["tx_ids"],
                    "concurrency": args.connect_concurrency,
                },
            )
        )
        if sb["failed"]:
            report.note(f"subscription failures: {sb['failed']} e.g. {sb['first_errors']}")
        stats = server.ask(("stats",))
        report.note(
            f"[{db.kind}] setup: {len(ch['tx_ids'])} sessions in {ch['elapsed']:.1f} s, "
            f"{sb['subscribed']} subscriptions in {sb['elapsed']:.1f} s"
            + (f"; bus holds {stats['subscribers']} subscribers" if stats else "")
        )
        if args.gc_freeze:
            frozen = server.ask(("gc_freeze",)) or {}
            report.note(
                f"[{db.kind}] EXPERIMENT: gc.freeze() in the server after setup ({frozen['frozen']} obj.)"
            )
        server.ask(("gc_reset",))
        t_start = time.perf_counter() + 1.0
        seconds = args.warmup + args.duration
        params = {"t_start": t_start, "seconds": seconds, "interval": args.interval, "grace": args.grace}
        for w in workers:
            w.conn.send(("run", params))
        print(f"[{db.kind}] MeterValues every {args.interval} s per charger for {seconds:.0f} s…", flush=True)
        time.sleep(max(0.0, t_start + args.warmup - time.perf_counter()))
        spy_out = None
        spy = None
        if args.py_spy:
            Path(args.py_spy).mkdir(parents=True, exist_ok=True)
            spy_out = Path(args.py_spy) / f"server_{db.kind}_live.txt"
            spy = bl.py_spy(server.spy_pid, args.duration, spy_out)
        cpu = bl.CpuMeter({**server.pids, **{w.name: w.pid for w in workers}})
        time.sleep(args.duration)
        usage = cpu.stop()
        answers = [w.answer(120 + args.grace) for w in workers]
        gc_note = (server.ask(("stats",)) or {}).get("gc")
        if spy is not None:
            spy.wait(60)
            if spy_out is not None:
                print(bl.summarize_collapsed(spy_out))

        # Join sends and receipts on (session, energyWh).
        sent: dict[tuple[int, int], float] = {}
        ack: array[float] = array("d")
        errors = 0
        for a in answers:
            for tx, energy, at in zip(
                _arr("q", a["sent_tx"]), _arr("q", a["sent_energy"]), _arr("d", a["sent_at"]), strict=True
            ):
                if t_start + args.warmup <= at <= t_start + seconds:
                    sent[(tx, energy)] = at
            ack.extend(_arr("d", a["ack"]))
            errors += a["errors"] + a["sub_errors"]
        lat: list[float] = []
        for a in answers:
            for tx, energy, at in zip(
                _arr("q", a["recv_tx"]), _arr("q", a["recv_energy"]), _arr("d", a["recv_at"]), strict=True
            ):
                t_sent = sent.get((tx, energy))
                if t_sent is not None:
                    lat.append(at - t_sent)
        summary = bl.latency_summary(lat)
        acks = bl.latency_summary(ack)
        missing = len(sent) - len(lat)
        detail = (
            f"{len(lat)} of {len(sent)} readings delivered ({missing} missing), "
            f"{len(sent) / args.duration:.0f} readings/s, errors {errors}; CPU {bl.fmt_cpu(usage)}"
        )
        # One process: what makes a number on screen feel live; across processes the bound.
        p50_target, p99_target = (None, 100.0) if args.bus == "redis" else (10.0, 50.0)
        path = " across processes via Redis" if args.bus == "redis" else ""
        report.add(
            f"[{db.kind}] MeterValues → subscriber `next`{path}: p50",
            f"{summary['p50']:.1f} ms",
            f"≤ {p50_target:g} ms" if p50_target else "",
            None if p50_target is None else summary["p50"] <= p50_target and missing == 0,
            detail,
        )
        report.add(
            f"[{db.kind}] MeterValues → subscriber `next`{path}: p99",
            f"{summary['p99']:.1f} ms",
            f"< {p99_target:g} ms" if args.bus == "redis" else f"≤ {p99_target:g} ms",
            summary["p99"] <= p99_target and missing == 0,
            f"p90 {summary['p90']:.1f} ms, max {summary['max']:.1f} ms; {args.sessions} sessions × "
            f"1 reading / {args.interval:g} s, {sb['subscribed']} subscriptions",
        )
        report.add(
            f"[{db.kind}] MeterValues CALL → CALLRESULT (same run)",
            f"p50 {acks['p50']:.1f} ms / p99 {acks['p99']:.1f} ms",
        )
        if gc_note:
            report.note(f"[{db.kind}] server GC pauses during the run: {gc_note}")
        if any(a["first_error"] for a in answers):
            report.note(f"first CALLERROR: {next(a['first_error'] for a in answers if a['first_error'])}")
        load_cpu = max(v for k, v in usage.items() if k.startswith("load"))
        if load_cpu > 0.8:
            report.note(
                f"a load process used {100 * load_cpu:.0f}% of a core: it may be a bottleneck; "
                "try --load-procs 2"
            )
    finally:
        for w in workers:
            try:
                w.request(("close",), timeout=30)
            except Exception as exc:
                print(f"{w.name}: {exc}", file=sys.stderr)
            w.stop(10)
        if server is not None:
            server.close()
        db.drop()
        if args.cprofile:
            print(f"cProfile output kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    report.emit(args.write)


if __name__ == "__main__":
    main()
