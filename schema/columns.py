"""Column shapes every table module shares: aware-UTC timestamps and 64-bit row ids."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Integer

from schema.timeutil import UTCDateTime


def utc_column(*, nullable: bool = False, index: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable, index=index)


def bigint_pk() -> Column[int]:
    """BIGINT on PostgreSQL for tables that grow by the billion; INTEGER on SQLite, whose
    rowid alias (and so autoincrement) needs exactly that type."""
    return Column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
