"""Cost of identifying the caller, and of password hashing, on this machine.

Why: every API request is authenticated, so verification sits on the hot path of every query
and subscription; the target is ≤ 0.2 ms added per request. Password hashing is the opposite:
it must be slow (≥ 50 ms per hash, so a stolen hash table is expensive to attack) without
slowing anyone else's request, which holds only if hashing runs off the event loop.

What it does:
1. Seeds a migrated database (SQLite in a temp dir, or a fresh PostgreSQL database) with a
   driver who is a member of an organisation, one device session and one API key, then calls
   `Authenticator.principal_for` in a loop for each kind of credential (no credential, access
   JWT, API key, bootstrap token) and reports microseconds per call (median of 5 rounds). The
   JWT figure is the steady state (session cached for CACHE_TTL_S); the first call of a
   session pays one database round trip, reported separately.
2. Hashes and verifies a password with the configured Argon2 parameters (median of 7).
3. Runs 8 logins' worth of hashing concurrently the way the API does (off the loop), while a
   ticker measures how late the event loop wakes: the lag the other requests would see.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib as bl
import httpx
import uvicorn

from api.accounts import passwords
from api.accounts.tokens import Device, open_session
from api.app import build_auth, create_app
from api.auth.authenticator import Authenticator
from api.auth.keys import KeyRing, generate_key_set_json
from api.auth.opaque import new_token
from api.auth.roles import Permission, Role, format_permissions
from schema.account_models import ApiKey, Membership, UserAccount
from schema.bus import InProcessBus
from schema.db import create_engine, session_factory
from schema.models import Organization
from schema.secrets import hash_secret, verify_secret
from schema.settings import Settings

VERIFY_BUDGET_MS = 0.2
HASH_FLOOR_MS = 50.0
ADMIN_TOKEN = "bench-admin-token-0123456789"


async def _seed(url: str, keys: KeyRing) -> tuple[str, str]:
    """(access token, API key) of a seeded member."""
    db = session_factory(create_engine(url))
    async with db() as s:
        org = Organization(name="Bench", slug="bench")
        user = UserAccount(email="bench@example.com")
        s.add_all([org, user])
        await s.flush()
        s.add(Membership(organization_id=org.id or 0, user_id=user.id or 0, role=Role.OPERATOR.value))
        secret, secret_hash = new_token()
        s.add(
            ApiKey(
                organization_id=org.id or 0,
                name="bench",
                public_id="benchkey0001",
                secret_hash=secret_hash,
                permissions=format_permissions(frozenset({Permission.SESSIONS_READ})),
            )
        )
        pair = await open_session(
            s, keys, user_id=user.id or 0, method="password", device=Device(name="bench"), ttl_days=1
        )
        await s.commit()
    return pair.access_token, f"cnk_benchkey0001_{secret}"


async def _per_call_us(auth: Authenticator, header: str | None, n: int) -> float:
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            await auth.principal_for(header)
        rounds.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(rounds)


async def _first_use_us(auth: Authenticator, keys: KeyRing, access: str, n: int) -> float:
    """A token seen for the first time: its ES256 signature and claims are checked (the
    session is already cached, as it is for a device's next token)."""
    claims = keys.verify(access)
    # ECDSA signatures are randomised: the same claims signed n times are n distinct tokens.
    tokens = [keys.issue(user_id=claims.user_id, session_id=claims.session_id)[0] for _ in range(n)]
    assert len(set(tokens)) == n
    t0 = time.perf_counter()
    for token in tokens:
        await auth.principal_for(f"Bearer {token}")
    return (time.perf_counter() - t0) / n * 1e6


async def _http_ab(engine: Any, keys: KeyRing, access: str, requests: int) -> tuple[float, float]:
    """p50 ms of the same cheap request without and with an access token, interleaved so both
    see the same machine state."""
    settings = Settings(CHARGENET_ADMIN_TOKEN=ADMIN_TOKEN, CHARGENET_JWT_ISSUER="chargenet")
    auth = build_auth(engine, settings)
    auth = replace(auth, keys=keys, authenticator=Authenticator(engine, keys, admin_token=ADMIN_TOKEN))
    app = create_app(engine=engine, bus=InProcessBus(), settings=settings, auth=auth)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # the server failed to start: raise its error
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    body = {"query": "{ __typename }"}
    timings: dict[bool, list[float]] = {False: [], True: []}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for i in range(requests * 2 + 200):
            signed = i % 2 == 1
            headers = {"Authorization": f"Bearer {access}"} if signed else {}
            t0 = time.perf_counter()
            response = await client.post("/graphql", json=body, headers=headers)
            elapsed = (time.perf_counter() - t0) * 1000
            assert response.status_code == 200, response.text
            if i >= 200:  # warm-up done
                timings[signed].append(elapsed)
    server.should_exit = True
    await task
    return statistics.median(timings[False]), statistics.median(timings[True])


async def _loop_lag_during_hashing(concurrent: int) -> tuple[float, float, float]:
    """(max lag ms, p99 lag ms, wall s) of a 1 ms ticker while `concurrent` hashes run."""
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append((time.perf_counter() - t - 0.001) * 1000)

    tick = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    await asyncio.gather(*(passwords.hash_password(f"password-{i}-bench") for i in range(concurrent)))
    wall = time.perf_counter() - t0
    done.set()
    await tick
    lags.sort()
    return lags[-1], lags[int(len(lags) * 0.99) - 1], wall


async def run(args: argparse.Namespace, report: bl.Report, db: bl.BenchDatabase) -> None:
    keys = KeyRing(
        json.loads(generate_key_set_json()), issuer="chargenet", audience="chargenet-api", ttl_s=600
    )
    access, api_key = await _seed(db.url, keys)
    engine = create_engine(db.url)
    auth = Authenticator(engine, keys, admin_token=ADMIN_TOKEN)
    t0 = time.perf_counter()
    await auth.principal_for(f"Bearer {access}")
    cold_ms = (time.perf_counter() - t0) * 1000
    n = args.calls
    first_use = await _first_use_us(auth, keys, access, n)
    anon = await _per_call_us(auth, None, n)
    jwt_us = await _per_call_us(auth, f"Bearer {access}", n)
    key_us = await _per_call_us(auth, f"Bearer {api_key}", n)
    admin_us = await _per_call_us(auth, f"Bearer {ADMIN_TOKEN}", n)
    http_anon, http_jwt = await _http_ab(engine, keys, access, args.requests)
    await engine.dispose()

    budget_us = VERIFY_BUDGET_MS * 1000
    report.add(
        f"access JWT, each further request (remembered signature, session/roles cache) ({db.kind})",
        f"{jwt_us:.0f} µs",
        f"≤ {budget_us:.0f} µs",
        jwt_us <= budget_us,
        f"anonymous {anon:.1f} µs; median of 5 × {n} calls",
    )
    report.add(
        f"access JWT seen for the first time (ES256 signature + claims), per request ({db.kind})",
        f"{first_use:.0f} µs",
        f"≤ {budget_us:.0f} µs",
        first_use <= budget_us,
        "once per token, i.e. once per device every access-token lifetime",
    )
    report.add(
        f"same GraphQL request over HTTP, anonymous vs signed in, p50 ({db.kind})",
        f"+{(http_jwt - http_anon) * 1000:.0f} µs",
        f"≤ {budget_us:.0f} µs",
        http_jwt - http_anon <= VERIFY_BUDGET_MS,
        f"p50 {http_anon:.2f} vs {http_jwt:.2f} ms; `{{ __typename }}`, {args.requests} requests each, "
        "interleaved, one keep-alive connection, server in this process",
    )
    report.add(
        f"API key, per request ({db.kind})",
        f"{key_us:.0f} µs",
        f"≤ {budget_us:.0f} µs",
        key_us <= budget_us,
        f"bootstrap token {admin_us:.1f} µs",
    )
    report.add(
        f"first request of a session (signature + one DB read of session and roles) ({db.kind})",
        f"{cold_ms:.2f} ms",
        "",
        None,
        f"then cached for {Authenticator.__module__.split('.')[-1]}.CACHE_TTL_S",
    )

    hashes, verifies = [], []
    stored = ""
    for i in range(7):
        t0 = time.perf_counter()
        stored = hash_secret(f"a-long-bench-password-{i}")
        hashes.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        assert verify_secret(f"a-long-bench-password-{i}", stored)
        verifies.append((time.perf_counter() - t0) * 1000)
    params = stored.split("$")[3]
    h, v = statistics.median(hashes), statistics.median(verifies)
    report.add(
        "Argon2id hash / verify, one password",
        f"{h:.0f} / {v:.0f} ms",
        f"≥ {HASH_FLOOR_MS:.0f} ms",
        min(h, v) >= HASH_FLOOR_MS,
        f"parameters {params} (pwdlib recommended)",
    )
    lag_max, lag_p99, wall = await _loop_lag_during_hashing(args.concurrent_hashes)
    report.add(
        f"event-loop lag while {args.concurrent_hashes} sign-ins hash at once "
        f"(api.accounts.passwords, {passwords.HASH_WORKERS} hashing thread(s)), max / p99",
        f"{lag_max:.1f} / {lag_p99:.1f} ms",
        "≪ one hash",
        lag_max < h / 2,
        f"{args.concurrent_hashes} hashes took {wall:.2f} s on 2 cores",
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", help="postgresql+asyncpg://…/<db> to seed a fresh PostgreSQL database")
    p.add_argument("--pg-name", default="chargenet_bench_auth")
    p.add_argument("--calls", type=int, default=5_000, help="calls per round and credential kind")
    p.add_argument("--concurrent-hashes", type=int, default=8)
    p.add_argument("--requests", type=int, default=2_000, help="HTTP requests per variant")
    p.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    args = p.parse_args()
    report = bl.Report("Authentication cost")
    bl.install_loop("uvloop")
    with tempfile.TemporaryDirectory() as tmp:
        db = bl.fresh_database(args.database_url, Path(tmp), args.pg_name)
        try:
            asyncio.run(run(args, report, db))
        finally:
            db.drop()
    report.emit(args.write)


if __name__ == "__main__":
    main()
