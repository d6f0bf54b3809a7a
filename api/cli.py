"""`chargenet`: serve (all in one), api, gateway, worker, migrate, simulate, backfill-outages,
export-schema."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schema.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    """Flags override the environment, which overrides defaults."""
    overrides: dict[str, Any] = {}
    mapping = {
        "database_url": "database_url",
        "api_host": "api_host",
        "api_port": "api_port",
        "gateway_host": "gateway_host",
        "gateway_port": "gateway_port",
        "chargers": "simulated_chargers",
        "demo": "demo",
        "auto_register": "auto_register",
    }
    for arg, field in mapping.items():
        value = getattr(args, arg, None)
        if value is not None:
            overrides[field] = value
    return Settings().model_copy(update=overrides)


def _add_common(p: argparse.ArgumentParser, *, api: bool, gateway: bool) -> None:
    p.add_argument("--database-url", help="SQLite (default ./chargenet.db) or PostgreSQL URL")
    if api:
        p.add_argument("--api-host")
        p.add_argument("--api-port", type=int)
    if gateway:
        p.add_argument("--gateway-host")
        p.add_argument("--gateway-port", type=int)
        p.add_argument(
            "--auto-register",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="accept unknown charge point ids and register them",
        )


def _aware(value: str) -> datetime:
    """An ISO 8601 instant; without an offset it is read as UTC, the database's zone."""
    at = datetime.fromisoformat(value)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def _backfill_outages(args: argparse.Namespace, settings: Settings) -> None:
    from api.service.outage_backfill import backfill_outages
    from schema.db import create_engine

    engine = create_engine(settings.database_url)
    try:
        result = await backfill_outages(engine, since=args.since, organization_id=args.organization)
    finally:
        await engine.dispose()
    added = ", ".join(f"{cause.value} +{n}" for cause, n in result.added.items())
    print(f"backfilled outages over {result.stations} stations: {added}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chargenet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="API + gateway (+ demo chargers) in one process")
    _add_common(serve, api=True, gateway=True)
    serve.add_argument(
        "--demo",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="seed the demo network and run simulated chargers (default on)",
    )
    serve.add_argument("--chargers", type=int, help="number of simulated chargers (demo)")

    api = sub.add_parser("api", help="GraphQL API only")
    _add_common(api, api=True, gateway=False)
    gw = sub.add_parser("gateway", help="OCPP gateway only")
    _add_common(gw, api=False, gateway=True)
    wk = sub.add_parser(
        "worker",
        help="durable jobs: session bookkeeping, stuck-session checks (run several replicas)",
        description="With BUS_URL=redis://… consumes the durable event stream in a consumer group; "
        "with the in-process bus relays the database outbox to its own handlers.",
    )
    wk.add_argument("--database-url", help="SQLite (default ./chargenet.db) or PostgreSQL URL")

    mig = sub.add_parser("migrate", help="upgrade the database to the latest schema")
    mig.add_argument("--database-url")

    sim = sub.add_parser("simulate", help="run N simulated OCPP 1.6 chargers against a gateway")
    sim.add_argument("--url", default="ws://127.0.0.1:9000/ocpp")
    sim.add_argument("-n", "--count", type=int, default=10)
    sim.add_argument("--prefix", default="SIM-")
    sim.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second")
    sim.add_argument("--id-tag", action="append", dest="id_tags")
    sim.add_argument("--password", help="Basic-auth password (security profile 1)")
    sim.add_argument(
        "--firmware-failure-every",
        type=int,
        default=0,
        metavar="N",
        help="every Nth charger fails its firmware updates (to try a firmware campaign's threshold)",
    )
    sim.add_argument(
        "--firmware-failure",
        choices=["DownloadFailed", "InstallationFailed"],
        default="InstallationFailed",
        help="the step those chargers fail at",
    )

    bf = sub.add_parser(
        "backfill-outages",
        help="rebuild faulted/unavailable port outages from the connector status history",
        description="Adds only intervals no existing outage of the same cause overlaps, so it "
        "is safe to run again (a second run adds nothing).",
    )
    bf.add_argument("--database-url")
    bf.add_argument("--since", type=_aware, metavar="ISO", help="replay history from this instant on")
    bf.add_argument("--organization", type=int, metavar="ID", help="only this organisation's stations")

    exp = sub.add_parser("export-schema", help="write the GraphQL SDL")
    exp.add_argument("--output", default=None, help="file (default schema/schema.graphql)")

    keys = sub.add_parser(
        "jwt-keys",
        help="print a private JWK set for CHARGENET_JWT_KEYS (a new ES256 signing key)",
        description="Rotation: `chargenet jwt-keys --append current.json > next.json`, deploy "
        "next.json (the new key signs, both verify), and after the access-token lifetime drop "
        "the old key from the set.",
    )
    keys.add_argument("--append", metavar="FILE", help="existing key set to append the new key to")
    return parser


async def _simulate(args: argparse.Namespace) -> None:
    from gateway.simulator import SimCharger, SimConfig

    chargers = [
        SimCharger(
            SimConfig(
                charge_point_id=f"{args.prefix}{i:05d}",
                url=args.url,
                speed=args.speed,
                id_tags=args.id_tags or ["DEMO-RFID-0001"],
                password=args.password,
                auto_sessions=True,
                meter_interval_s=30.0,
                firmware_failure=args.firmware_failure
                if args.firmware_failure_every > 0 and i % args.firmware_failure_every == 0
                else None,
            )
        )
        for i in range(1, args.count + 1)
    ]
    tasks = [asyncio.create_task(c.run()) for c in chargers]
    print(f"{len(chargers)} simulated chargers → {args.url} (Ctrl-C stops)", flush=True)
    try:
        await asyncio.gather(*tasks)
    finally:
        for c in chargers:
            await c.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = _settings(args)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The websockets and ocpp loggers print whole frames (id tags) at INFO.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if args.command == "migrate":
        from schema.migrate import upgrade

        upgrade(settings.database_url)
        print("database is at the latest revision")
        return 0
    if args.command == "backfill-outages":
        asyncio.run(_backfill_outages(args, settings))
        return 0
    if args.command == "export-schema":
        from api.graphql_schema import SCHEMA_PATH, export_sdl

        out = Path(args.output) if args.output else SCHEMA_PATH
        out.write_text(export_sdl())
        print(f"wrote {out}")
        return 0
    if args.command == "jwt-keys":
        from api.auth.keys import generate_key_set_json

        existing = Path(args.append).read_text() if args.append else None
        print(generate_key_set_json(existing))
        return 0
    if args.command == "simulate":
        from api.runtime import use_fast_event_loop

        use_fast_event_loop()
        try:
            asyncio.run(_simulate(args))
        except KeyboardInterrupt:
            pass
        return 0
    from api.runtime import run

    if args.command == "serve":
        run(settings)
    elif args.command == "api":
        run(settings.model_copy(update={"demo": False}), gateway=False, worker=False)
    elif args.command == "gateway":
        run(settings.model_copy(update={"demo": False}), api=False, worker=False)
    elif args.command == "worker":
        run(settings.model_copy(update={"demo": False}), api=False, gateway=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
