"""Load the OCPP 1.6J gateway the way a charging network does, and report what it costs.

Why these figures:
  connections  A network's chargers stay connected all day: memory per idle socket decides how
               many chargers one gateway process can hold, and the connect storm after a
               restart decides how long the network is dark.
  heartbeat    The cheapest round trip (no database): the gateway's own per-message overhead,
               shown against a bare `websockets` server answering the same frames, so that a
               regression in framing/validation/logging shows up as a falling ratio.
  meter        The hot path that writes: MeterValues of active sessions, group-committed. A
               closed loop gives sustained msg/s, and every acknowledged message must be in
               `meter_sample` afterwards (an ack means durable). An open loop at a fixed rate
               over a realistic 10 000 connected chargers gives CALL→CALLRESULT latency.

Everything measured is started here: the gateway in a child process on a fresh database
(SQLite file in a temp dir, or a new PostgreSQL database with --database-url), the load in
separate child processes using a lean sans-I/O WebSocket client (bench/benchlib.py).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import multiprocessing.connection
import os
import shutil
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib as bl

MODES = ("connections", "heartbeat", "meter", "open")
CANNED_TIME = "2025-01-01T00:00:00.000Z"

# -- the gateway child ---------------------------------------------------------------------


def gateway_child(
    conn: multiprocessing.connection.Connection,
    db_url: str,
    host: str,
    loop_name: str,
    message_log: bool,
    profile_out: str | None,
) -> None:
    def body() -> None:
        bl.raise_nofile()
        logging.basicConfig(level=logging.WARNING, format="gateway %(levelname)s %(name)s: %(message)s")
        bl.install_loop(loop_name)
        asyncio.run(_gateway_main(conn, db_url, host, message_log, profile_out))

    bl.report_errors(conn, body)


async def _gateway_main(
    conn: multiprocessing.connection.Connection,
    db_url: str,
    host: str,
    message_log: bool,
    profile_out: str | None,
) -> None:
    from gateway.server import Gateway
    from schema import heap
    from schema.bus import InProcessBus
    from schema.db import create_engine

    stop = bl.stop_event_on_sigterm()
    gc_watch = bl.GcWatch()
    engine = create_engine(db_url)
    gw = Gateway(engine, InProcessBus(), host=host, port=0, auto_register=True, message_log=message_log)
    await gw.start()
    heap.install()  # as `chargenet gateway` does (api/runtime.py)
    profiler = bl.Profiler(profile_out)
    conn.send(("ready", {"port": gw.bound_port, "pid": os.getpid()}))
    stopping = asyncio.create_task(stop.wait())
    while not stop.is_set():
        reading = asyncio.create_task(bl.recv_async(conn))
        done, _ = await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if reading not in done:
            reading.cancel()
            break
        msg = reading.result()
        if msg[0] == "gc_freeze":
            # An experiment, not what the gateway does: move the long-lived objects of the
            # connected chargers out of the collector's reach.
            gc.collect()
            gc.freeze()
            conn.send(("ok", {"frozen": gc.get_freeze_count()}))
        elif msg[0] == "gc_reset":
            gc_watch.reset()
            conn.send(("ok", {}))
        elif msg[0] == "stats":
            conn.send(
                (
                    "ok",
                    {
                        "connections": len(gw.connections),
                        "batches": gw.writer.batches,
                        "units": gw.writer.units,
                        "log_dropped": gw.message_log.dropped,
                        "gc": gc_watch.summary(),
                    },
                )
            )
    profiler.dump()
    await gw.stop()
    await engine.dispose()


# -- the bare websockets server the gateway is compared with -------------------------------


def echo_child(conn: multiprocessing.connection.Connection, host: str, loop_name: str) -> None:
    def body() -> None:
        bl.raise_nofile()
        bl.install_loop(loop_name)
        asyncio.run(_echo_main(conn, host))

    bl.report_errors(conn, body)


async def _echo_main(conn: multiprocessing.connection.Connection, host: str) -> None:
    """Same socket options as the gateway; every CALL gets a canned CALLRESULT."""
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    from gateway.server import MAX_FRAME_BYTES, PING_INTERVAL_S

    stop = bl.stop_event_on_sigterm()
    canned = {"currentTime": CANNED_TIME}

    async def handler(ws: ServerConnection) -> None:
        try:
            async for message in ws:
                frame = json.loads(message)
                await ws.send(json.dumps([3, frame[1], canned], separators=(",", ":")))
        except ConnectionClosed:
            pass

    async with serve(
        handler,
        host,
        0,
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        compression=None,
        max_size=MAX_FRAME_BYTES,
        ping_interval=PING_INTERVAL_S,
        max_queue=4,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        conn.send(("ready", {"port": port, "pid": os.getpid()}))
        await stop.wait()


# -- the load generator child --------------------------------------------------------------


def load_child(conn: multiprocessing.connection.Connection, loop_name: str) -> None:
    bl.run_load_worker(conn, loop_name, LoadWorker)


class LoadWorker:
    """Holds a slice of the chargers and runs the modes the orchestrator asks for."""

    # Requests the orchestrator may send (method names); subclasses add their own.
    HANDLERS: tuple[str, ...] = ("connect", "start_tx", "run")

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self.conn = conn
        self.chargers: list[bl.OcppConn] = []

    async def main(self) -> None:
        self.conn.send(("ready", {"pid": os.getpid()}))
        while True:
            msg = await bl.recv_async(self.conn)
            kind, params = msg[0], (msg[1] if len(msg) > 1 else {})
            if kind == "close":
                for c in self.chargers:
                    c.abort()
                self.conn.send(("ok", {}))
                return
            if kind not in self.HANDLERS:
                raise ValueError(f"unknown request {kind!r}")
            self.conn.send(("ok", await getattr(self, kind)(**params)))

    async def connect(
        self,
        host: str,
        port: int,
        prefix: str,
        start: int,
        count: int,
        concurrency: int,
        require_accepted: bool = True,
    ) -> dict[str, Any]:
        t0 = time.perf_counter()

        async def one(i: int) -> bl.OcppConn:
            c = await bl.open_charger(host, port, f"{prefix}{i:06d}")
            result = await c.call("BootNotification", bl.BOOT_PAYLOAD)
            if require_accepted and result.get("status") != "Accepted":
                raise RuntimeError(f"boot {result}")
            return c

        results = await bl.gather_limited((one(i) for i in range(start, start + count)), concurrency)
        self.chargers = [r for r in results if isinstance(r, bl.OcppConn)]
        errors = [repr(r) for r in results if not isinstance(r, bl.OcppConn)]
        # The generator's own long-lived objects must not cost it collector pauses.
        gc.collect()
        gc.freeze()
        return {
            "connected": len(self.chargers),
            "failed": len(errors),
            "first_errors": errors[:3],
            "elapsed": time.perf_counter() - t0,
        }

    async def start_tx(self, offset: int, concurrency: int, limit: int | None = None) -> dict[str, Any]:
        """StartTransaction on the first `limit` chargers (default: all)."""
        t0 = time.perf_counter()
        chargers = self.chargers[:limit]
        results = await bl.gather_limited(
            (bl.start_transaction(c, offset + i) for i, c in enumerate(chargers)), concurrency
        )
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        gc.collect()
        gc.freeze()
        return {
            "started": len(results) - len(errors),
            "failed": len(errors),
            "first_errors": errors[:3],
            "elapsed": time.perf_counter() - t0,
        }

    async def run(
        self, mode: str, chargers: int, warmup: float, duration: float, rate: float = 0.0
    ) -> dict[str, Any]:
        conns = [c for c in self.chargers if not c.closed][:chargers]
        loop = asyncio.get_running_loop()
        lat = array("d")
        sent_at = array("d")
        stats = {"acked": 0, "errors": 0, "in_window": 0, "sent": 0, "outstanding": 0, "late": 0}
        first_error: list[str] = []
        t_start = time.perf_counter() + 0.2
        m0, m1 = t_start + warmup, t_start + warmup + duration
        running = True
        drained = loop.create_future()
        max_lag = 0.0

        if mode == "heartbeat":

            def frame(c: bl.OcppConn) -> tuple[str, str]:
                mid = c.new_id()
                return mid, f'[2,"{mid}","Heartbeat",{{}}]'
        else:

            def frame(c: bl.OcppConn) -> tuple[str, str]:
                mid = c.new_id()
                return mid, bl.meter_values_frame(c, mid)

        def send(c: bl.OcppConn) -> None:
            mid, text = frame(c)
            stats["sent"] += 1
            stats["outstanding"] += 1
            c.send_call(mid, text)

        def on_reply(c: bl.OcppConn, reply: list[Any], sent: float, now: float) -> None:
            stats["outstanding"] -= 1
            if reply[0] == 3:
                stats["acked"] += 1
            else:
                stats["errors"] += 1
                if not first_error:
                    first_error.append(json.dumps(reply)[:300])
            if m0 <= sent and now <= m1:
                lat.append(now - sent)
                sent_at.append(sent - m0)
            if m0 <= now <= m1:
                stats["in_window"] += 1
            if running and mode != "open":
                send(c)
            elif not running and stats["outstanding"] == 0 and not drained.done():
                drained.set_result(None)

        for c in conns:
            c.on_reply = on_reply

        if mode == "open":
            # Charger j fires at t0 + j/rate and then every len(conns)/rate seconds: a fixed
            # aggregate rate, each charger with at most one message in flight in practice.
            period = len(conns) / rate
            lt0 = loop.time() + 0.2

            def fire(c: bl.OcppConn, due: float) -> None:
                nonlocal max_lag
                if not running or c.closed:
                    return
                lag = loop.time() - due
                max_lag = max(max_lag, lag)
                if c.pending:
                    stats["late"] += 1
                send(c)
                loop.call_at(due + period, fire, c, due + period)

            for j, c in enumerate(conns):
                loop.call_at(lt0 + j / rate, fire, c, lt0 + j / rate)
        else:
            await asyncio.sleep(max(0.0, t_start - time.perf_counter()))
            for c in conns:
                send(c)

        await asyncio.sleep(max(0.0, m1 - time.perf_counter()))
        running = False
        if stats["outstanding"] > 0:
            try:
                await asyncio.wait_for(drained, 60)
            except TimeoutError:
                pass
        for c in conns:
            c.on_reply = None
        return {
            **stats,
            "latencies": bl.to_bytes(lat),
            "sent_at": bl.to_bytes(sent_at),
            "max_lag": max_lag,
            "first_error": first_error[0] if first_error else "",
            "chargers": len(conns),
        }


# -- orchestration -------------------------------------------------------------------------


class Fleet:
    """The load processes; chargers are split between them."""

    def __init__(self, procs: int, loop_name: str, target: Callable[..., None] | None = None) -> None:
        """`target(conn, loop_name)` runs a load process (default: a `LoadWorker`)."""
        self.workers = [bl.spawn(f"load{k}", target or load_child, loop_name) for k in range(procs)]

    @property
    def pids(self) -> dict[str, int]:
        return {w.name: w.pid for w in self.workers}

    def broadcast(self, kind: str, per_worker: list[dict[str, Any]], timeout: float = 900) -> list[Any]:
        for w, params in zip(self.workers, per_worker, strict=True):
            w.conn.send((kind, params))
        return [w.answer(timeout) for w in self.workers]

    def split(self, n: int) -> list[tuple[int, int]]:
        k = len(self.workers)
        sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
        starts = [sum(sizes[:i]) for i in range(k)]
        return list(zip(starts, sizes, strict=True))

    def connect(
        self, host: str, port: int, n: int, prefix: str, concurrency: int, require_accepted: bool = True
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        params = [
            {
                "host": host,
                "port": port,
                "prefix": prefix,
                "start": s,
                "count": c,
                "concurrency": max(1, concurrency // len(self.workers)),
                "require_accepted": require_accepted,
            }
            for s, c in self.split(n)
        ]
        answers = self.broadcast("connect", params)
        return {
            "elapsed": time.perf_counter() - t0,
            "connected": sum(a["connected"] for a in answers),
            "failed": sum(a["failed"] for a in answers),
            "first_errors": [e for a in answers for e in a["first_errors"]][:3],
        }

    def start_tx(self, n: int, concurrency: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        params = [
            {"offset": s, "concurrency": max(1, concurrency // len(self.workers))} for s, _ in self.split(n)
        ]
        answers = self.broadcast("start_tx", params)
        return {
            "elapsed": time.perf_counter() - t0,
            "started": sum(a["started"] for a in answers),
            "failed": sum(a["failed"] for a in answers),
            "first_errors": [e for a in answers for e in a["first_errors"]][:3],
        }

    def run(
        self,
        mode: str,
        chargers: int,
        warmup: float,
        duration: float,
        *,
        rate: float = 0.0,
        watch: dict[str, int],
        py_spy_out: Path | None = None,
    ) -> dict[str, Any]:
        k = len(self.workers)
        params = [
            {
                "mode": mode,
                "chargers": size,
                "warmup": warmup,
                "duration": duration,
                "rate": rate / k,
            }
            for _, size in self.split(chargers)
        ]
        for w, p in zip(self.workers, params, strict=True):
            w.conn.send(("run", p))
        time.sleep(0.2 + warmup)
        spy = bl.py_spy(watch["gateway"], duration, py_spy_out) if py_spy_out and "gateway" in watch else None
        cpu = bl.CpuMeter({**watch, **self.pids})
        time.sleep(duration)
        usage = cpu.stop()
        answers = [w.answer(180) for w in self.workers]
        if spy is not None:
            spy.wait(60)
        lat = array("d")
        sent_at = array("d")
        for a in answers:
            lat.extend(bl.from_bytes(a["latencies"]))
            sent_at.extend(bl.from_bytes(a["sent_at"]))
        out: dict[str, Any] = {
            key: sum(a[key] for a in answers)
            for key in ("acked", "errors", "in_window", "sent", "outstanding", "late", "chargers")
        }
        out["max_lag"] = max(a["max_lag"] for a in answers)
        out["first_error"] = next((a["first_error"] for a in answers if a["first_error"]), "")
        out["latency"] = bl.latency_summary(lat)
        out["worst_seconds"] = bl.worst_seconds(sent_at, lat)
        out["rate"] = out["in_window"] / duration
        out["cpu"] = usage
        return out

    def close(self) -> None:
        for w in self.workers:
            try:
                w.request(("close",), timeout=60)
            except Exception as exc:
                print(f"{w.name}: {exc}", file=sys.stderr)
            w.stop(10)


def _ms(x: float) -> str:
    return f"{x:.2f} ms"


def _spy_path(args: argparse.Namespace, db_kind: str, mode: str) -> Path | None:
    if not args.py_spy:
        return None
    out = Path(args.py_spy)
    out.mkdir(parents=True, exist_ok=True)
    return out / f"gateway_{db_kind}_{mode}.txt"


def _print_spy(path: Path | None) -> None:
    if path is not None:
        summary = bl.summarize_collapsed(path)
        path.with_suffix(".summary.txt").write_text(summary)
        print(f"py-spy profile of the gateway: {path} (summary: {path.with_suffix('.summary.txt')})")
        print("\n".join(summary.splitlines()[:30]))


def run_network(
    args: argparse.Namespace, tmp: Path, report: bl.Report, modes: set[str], suffix: str = ""
) -> None:
    """Figures a (connections, memory) and c-open-loop: N chargers on one gateway."""
    db = bl.fresh_database(args.database_url, tmp, args.pg_name + suffix)
    asyncio.run(bl.seed_id_tag(db.url))
    profile = str(tmp / "gateway_network.prof") if args.cprofile else None
    gw = bl.spawn("gateway", gateway_child, db.url, args.host, args.loop, not args.no_message_log, profile)
    fleet: Fleet | None = None
    n = args.chargers
    try:
        time.sleep(args.settle)
        base = bl.rss_kb(gw.pid)
        fleet = Fleet(args.load_procs, args.gen_loop)
        print(f"[{db.kind}] connecting {n} chargers (BootNotification each)…", flush=True)
        res = fleet.connect(args.host, gw.info["port"], n, "BENCH-", args.connect_concurrency)
        held = gw.request(("stats",))["connections"]
        if res["failed"]:
            report.note(f"connect failures: {res['failed']} e.g. {res['first_errors']}")
        if "connections" in modes:
            time.sleep(args.idle_wait)
            after = bl.rss_kb(gw.pid)
            per = (after - base) / max(1, res["connected"])
            report.add(
                f"[{db.kind}] connect + boot {n} chargers",
                f"{res['elapsed']:.1f} s",
                "",
                None,
                f"{res['connected'] / res['elapsed']:.0f} chargers/s; {res['connected']} ok, "
                f"{res['failed']} failed; gateway holds {held}",
            )
            report.add(f"[{db.kind}] gateway RSS baseline (started, idle)", f"{base / 1024:.1f} MiB")
            report.add(
                f"[{db.kind}] gateway RSS with {res['connected']} idle chargers", f"{after / 1024:.1f} MiB"
            )
            report.add(
                f"[{db.kind}] RSS per idle connection",
                f"{per:.1f} KB",
                "",
                None,
                f"(after - baseline) / {res['connected']}",
            )
        if "open" in modes:
            print(f"[{db.kind}] StartTransaction on {n} chargers…", flush=True)
            st = fleet.start_tx(n, args.connect_concurrency)
            if st["failed"]:
                report.note(f"StartTransaction failures: {st['failed']} e.g. {st['first_errors']}")
            report.note(
                f"[{db.kind}] StartTransaction for {st['started']} chargers took {st['elapsed']:.1f} s"
            )
            if args.gateway_gc_freeze:
                frozen = gw.request(("gc_freeze",))["frozen"]
                report.note(
                    f"[{db.kind}] EXPERIMENT: gc.freeze() in the gateway after setup ({frozen} objects)"
                )
            gw.request(("gc_reset",))
            w0 = gw.request(("stats",))
            spy = _spy_path(args, db.kind, "open")
            print(f"[{db.kind}] open loop: {args.rate:.0f} MeterValues/s over {n} chargers…", flush=True)
            r = fleet.run(
                "open",
                n,
                args.open_warmup,
                args.open_duration,
                rate=args.rate,
                watch={"gateway": gw.pid},
                py_spy_out=spy,
            )
            lat = r["latency"]
            report.add(
                f"[{db.kind}] open loop {args.rate:.0f} msg/s over {r['chargers']} chargers: p50",
                _ms(lat["p50"]),
            )
            report.add(
                f"[{db.kind}] open loop {args.rate:.0f} msg/s over {r['chargers']} chargers: p99",
                _ms(lat["p99"]),
                "≤ 25 ms",
                lat["p99"] <= 25.0 and r["errors"] == 0,
                f"p90 {lat['p90']:.2f} ms, max {lat['max']:.1f} ms, {int(lat['n'])} samples, "
                f"achieved {r['rate']:.0f} msg/s, errors {r['errors']}, generator lag max "
                f"{1000 * r['max_lag']:.1f} ms; CPU {bl.fmt_cpu(r['cpu'])}",
            )
            report.note(f"[{db.kind}] open loop timeline: {r['worst_seconds']}")
            w1 = gw.request(("stats",))
            batches = w1["batches"] - w0["batches"]
            units = w1["units"] - w0["units"]
            report.note(
                f"[{db.kind}] open loop, gateway writer: {batches} commits for {units} units "
                f"({units / max(1, batches):.1f} units per commit)"
            )
            report.note(f"[{db.kind}] open loop, gateway GC pauses: {w1['gc']}")
            if r["first_error"]:
                report.note(f"first CALLERROR: {r['first_error']}")
            _print_spy(spy)
    finally:
        if fleet is not None:
            fleet.close()
        gw.stop()
        db.drop()


def run_small(
    args: argparse.Namespace, tmp: Path, report: bl.Report, modes: set[str], suffix: str = ""
) -> None:
    """Figures b (heartbeat vs bare websockets) and c-closed-loop (MeterValues, persistence)."""
    db = bl.fresh_database(args.database_url, tmp, args.pg_name + suffix)
    asyncio.run(bl.seed_id_tag(db.url))
    n = max(args.concurrency if "heartbeat" in modes else 0, args.meter_chargers if "meter" in modes else 0)
    profile = str(tmp / "gateway_small.prof") if args.cprofile else None
    gw = bl.spawn("gateway", gateway_child, db.url, args.host, args.loop, not args.no_message_log, profile)
    fleet: Fleet | None = None
    hb: dict[str, Any] | None = None
    try:
        fleet = Fleet(args.load_procs, args.gen_loop)
        res = fleet.connect(args.host, gw.info["port"], n, "LOOP-", args.connect_concurrency)
        if res["failed"]:
            report.note(f"connect failures: {res['failed']} e.g. {res['first_errors']}")
        st = fleet.start_tx(n, args.connect_concurrency)
        if st["failed"]:
            report.note(f"StartTransaction failures: {st['failed']} e.g. {st['first_errors']}")
        if "heartbeat" in modes:
            print(f"[{db.kind}] heartbeat closed loop, {args.concurrency} chargers…", flush=True)
            hb = fleet.run(
                "heartbeat",
                args.concurrency,
                args.warmup,
                args.duration,
                watch={"gateway": gw.pid},
                py_spy_out=_spy_path(args, db.kind, "heartbeat"),
            )
            _print_spy(_spy_path(args, db.kind, "heartbeat"))
        if "meter" in modes:
            gw.request(("gc_reset",))
            print(f"[{db.kind}] MeterValues closed loop, {args.meter_chargers} chargers…", flush=True)
            before = asyncio.run(bl.count_rows(db.url, "meter_sample"))
            spy = _spy_path(args, db.kind, "meter")
            r = fleet.run(
                "meter",
                args.meter_chargers,
                args.warmup,
                args.duration,
                watch={"gateway": gw.pid},
                py_spy_out=spy,
            )
            persisted = asyncio.run(bl.count_rows(db.url, "meter_sample")) - before
            expected = r["acked"] * bl.SAMPLES_PER_METER_VALUES
            stats = gw.request(("stats",))
            lat = r["latency"]
            report.add(
                f"[{db.kind}] MeterValues closed loop, {r['chargers']} chargers",
                f"{r['rate']:.0f} msg/s",
                "≥ 3000 msg/s",
                r["rate"] >= 3000 and r["errors"] == 0,
                f"p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, errors {r['errors']}; "
                f"CPU {bl.fmt_cpu(r['cpu'])}; writer avg batch "
                f"{stats['units'] / max(1, stats['batches']):.0f} units",
            )
            report.add(
                f"[{db.kind}] MeterValues persisted (meter_sample rows)",
                f"{persisted} / {expected}",
                "= acked × 3",
                persisted == expected and r["outstanding"] == 0,
                f"{r['acked']} acked, {r['sent']} sent, {r['outstanding']} unanswered at end",
            )
            report.note(f"[{db.kind}] MeterValues closed loop, gateway GC pauses: {stats['gc']}")
            if r["first_error"]:
                report.note(f"first CALLERROR: {r['first_error']}")
            _print_spy(spy)
    finally:
        if fleet is not None:
            fleet.close()
        gw.stop()
        db.drop()

    if hb is None:
        return
    echo = bl.spawn("echo", echo_child, args.host, args.loop)
    fleet = None
    try:
        fleet = Fleet(args.load_procs, args.gen_loop)
        res = fleet.connect(
            args.host, echo.info["port"], args.concurrency, "ECHO-", args.connect_concurrency, False
        )
        if res["failed"]:
            report.note(f"bare server connect failures: {res['failed']} e.g. {res['first_errors']}")
        print(f"[bare websockets] heartbeat closed loop, {args.concurrency} chargers…", flush=True)
        bare = fleet.run("heartbeat", args.concurrency, args.warmup, args.duration, watch={"echo": echo.pid})
    finally:
        if fleet is not None:
            fleet.close()
        echo.stop()
    ratio = hb["rate"] / bare["rate"] if bare["rate"] else 0.0
    lat, blat = hb["latency"], bare["latency"]
    report.add(
        f"[{db.kind}] heartbeat round trips/s, {hb['chargers']} chargers",
        f"{hb['rate']:.0f} /s",
        "",
        None,
        f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, errors {hb['errors']}; "
        f"CPU {bl.fmt_cpu(hb['cpu'])}",
    )
    report.add(
        "bare websockets server, same load",
        f"{bare['rate']:.0f} /s",
        "",
        None,
        f"p50 {blat['p50']:.2f} ms, p99 {blat['p99']:.2f} ms; CPU {bl.fmt_cpu(bare['cpu'])}",
    )
    report.add(f"[{db.kind}] heartbeat throughput / bare websockets", f"{ratio:.2f}", "≥ 0.5", ratio >= 0.5)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"comma-separated subset of {','.join(MODES)} (default: all)",
    )
    bl.add_server_args(p, pg_name="chargenet_bench", subject="gateway")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--chargers", type=int, default=10_000, help="connected chargers (connections, open)")
    p.add_argument("--connect-concurrency", type=int, default=200, help="handshakes in flight")
    p.add_argument("--idle-wait", type=float, default=6.0, help="seconds idle before reading RSS")
    p.add_argument("--settle", type=float, default=1.0, help="seconds after start before the baseline RSS")
    p.add_argument("--concurrency", type=int, default=200, help="chargers in the heartbeat closed loop")
    p.add_argument("--meter-chargers", type=int, default=500, help="chargers in the MeterValues closed loop")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds of each closed loop")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each closed loop")
    p.add_argument("--rate", type=float, default=1000.0, help="open loop: aggregate MeterValues/s")
    p.add_argument("--open-duration", type=float, default=30.0, help="open loop: measured seconds")
    p.add_argument("--open-warmup", type=float, default=5.0, help="open loop: unmeasured seconds")
    p.add_argument("--load-procs", type=int, default=1, help="load generator processes")
    p.add_argument("--gen-loop", choices=("asyncio", "uvloop"), default="uvloop", help="generator loop")
    p.add_argument(
        "--gateway-gc-freeze",
        action="store_true",
        help="experiment: gc.freeze() in the gateway once the open-loop chargers are set up",
    )
    p.add_argument("--no-message-log", action="store_true", help="run the gateway without the OCPP log")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (SQLite files, profiles)")
    return p


def main() -> None:
    args = build_parser().parse_args()
    modes = bl.parse_modes(args.modes, MODES)
    bl.raise_nofile()
    kind = "postgresql" if args.database_url and not args.database_url.startswith("sqlite") else "sqlite"
    extra = (" loop=" + args.loop) + (", EXPERIMENT no message log" if args.no_message_log else "")
    extra += ", EXPERIMENT gc.freeze" if args.gateway_gc_freeze else ""
    report = bl.Report(f"gateway_load ({kind}{extra})")
    tmp = Path(tempfile.mkdtemp(prefix="chargenet-bench-"))
    try:
        if modes & {"heartbeat", "meter"}:
            run_small(args, tmp, report, modes, "_loop")
        if modes & {"connections", "open"}:
            run_network(args, tmp, report, modes, "_net")
        if args.cprofile:
            print(f"cProfile output in {tmp} (*.prof, *.prof.txt)")
    finally:
        if args.keep_tmp or args.cprofile:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    report.emit(args.write)


if __name__ == "__main__":
    main()
