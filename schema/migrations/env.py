"""Alembic environment: runs migrations over the async engine ChargeNet uses."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from schema import models  # noqa: F401  (registers the tables on the metadata)
from schema.db import create_engine
from schema.migrations_filter import include_name

target_metadata = SQLModel.metadata
# Replicas that start together (two gateways, two APIs, a worker) all call upgrade: on
# PostgreSQL they queue on this transaction-scoped advisory lock, and each later one finds the
# schema current. Any constant works; this one reads "CHRG".
MIGRATION_LOCK_KEY = 0x43485247


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


def run_migrations_online() -> None:
    asyncio.run(_run_async())


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `chargenet migrate`")
run_migrations_online()
