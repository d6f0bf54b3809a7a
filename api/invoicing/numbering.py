"""Gap-free document numbers: one counter row per (organisation, series, year).

Numbers are taken under the counter row's lock, in the transaction that inserts the documents
they number: a rollback gives them back, and two issuers of the same organisation queue on the
row instead of both reading the same last number. A database sequence would be faster and is
wrong here — sequences never roll back, so every failed issue would leave a hole that tax
auditors ask about.

PostgreSQL: `SELECT … FOR UPDATE` holds the row until commit. SQLite has no row locks but one
writer at a time; the issuing transaction has written before it reads the counter (the
counter row's upsert, and in the worker the processed-event ledger), so no other writer can
interleave.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schema.db import insert_on_conflict
from schema.document_models import DocumentCounter, DocumentKind

COUNTER = DocumentCounter.__table__  # type: ignore[attr-defined]

# One series per kind: receipts and invoices count separately, each from 1 every year.
SERIES: dict[DocumentKind, str] = {DocumentKind.RECEIPT: "R", DocumentKind.INVOICE: "I"}
# Six digits keep numbers sortable as text up to a million documents a year per series.
NUMBER_DIGITS = 6


def document_number(series: str, year: int, sequence: int) -> str:
    return f"{series}-{year}-{sequence:0{NUMBER_DIGITS}d}"


async def lock_counter(conn: AsyncConnection, organization_id: int, series: str, year: int) -> int:
    """The last number issued in the series, with the counter locked until the transaction ends.

    Call `advance` before committing with the new last number; the documents numbered between
    the two calls must be inserted in the same transaction.
    """
    await conn.execute(
        insert_on_conflict(conn, COUNTER)
        .values(organization_id=organization_id, series=series, year=year, last_number=0)
        .on_conflict_do_nothing(index_elements=["organization_id", "series", "year"])
    )
    found = await conn.execute(
        select(COUNTER.c.last_number)
        .where(
            COUNTER.c.organization_id == organization_id,
            COUNTER.c.series == series,
            COUNTER.c.year == year,
        )
        .with_for_update()
    )
    return int(found.scalar_one())


async def advance(conn: AsyncConnection, organization_id: int, series: str, year: int, last: int) -> None:
    await conn.execute(
        update(COUNTER)
        .where(
            COUNTER.c.organization_id == organization_id,
            COUNTER.c.series == series,
            COUNTER.c.year == year,
        )
        .values(last_number=last)
    )
