"""Reading rows for GraphQL: plain rows instead of ORM instances, counts on demand."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

T = TypeVar("T")


async def read_rows(session: AsyncSession, stmt: SelectOfScalar[T]) -> list[T]:
    """Read-only rows with the model's attribute names, without ORM instances.

    Pages of a hundred stations are read on every app refresh; building identity-mapped ORM
    objects for them cost more than the query. Resolvers only read attributes, which a Row
    offers under the same names (cast: the rows are views, not entities to modify).
    """
    conn = await session.connection()
    return cast(list[T], list((await conn.execute(stmt)).all()))


async def count_rows(session: AsyncSession, stmt: SelectOfScalar[Any]) -> int:
    """Matching rows across pages; only run when the client asked for totalCount."""
    return int((await session.exec(select(func.count()).select_from(stmt.subquery()))).one())
