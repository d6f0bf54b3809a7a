"""The published contract: the GraphQL schema file, the migrations, and the layering."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from api.graphql_schema import SCHEMA_PATH, export_sdl
from schema.migrations_filter import include_name
from tests.conftest import _pg_admin

ROOT = Path(__file__).resolve().parent.parent
# The composition root wires gateway and API together; nothing else in api/ may import gateway/.
COMPOSITION_ROOT = {"api/runtime.py", "api/cli.py"}


def test_schema_file_matches_the_code() -> None:
    assert SCHEMA_PATH.read_text() == export_sdl(), (
        "schema/schema.graphql drifted from the code: run `make schema` and commit it"
    )


async def test_migrations_build_exactly_the_models(engine: AsyncEngine) -> None:
    def diff(sync_conn: object) -> list[object]:
        opts = {"compare_type": False, "include_name": include_name}
        ctx = MigrationContext.configure(sync_conn, opts=opts)  # type: ignore[arg-type]
        return list(compare_metadata(ctx, SQLModel.metadata))

    async with engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("api", "gateway"), ("gateway", "api"), ("schema", "api"), ("schema", "gateway")],
)
def test_packages_only_share_schema(package: str, forbidden: str) -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / package).rglob("*.py")
        if forbidden in _imports(p) and str(p.relative_to(ROOT)) not in COMPOSITION_ROOT
    ]
    assert offenders == []


def test_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    """Five processes upgrading the same fresh PostgreSQL database at once all succeed."""
    name = f"chargenet_race_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "api.cli", "migrate", "--database-url", url],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(5)
        ]
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
