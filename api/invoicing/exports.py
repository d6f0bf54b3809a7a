"""The revenue export: CSV rows of every charged session of a period, or of a grouped report.

Amounts are in major units with the currency's decimals ("12.34"), as spreadsheets expect;
the GraphQL report keeps minor units like the rest of the API.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from api.billing.tariffs import ZERO_DECIMAL_CURRENCIES
from api.invoicing import repository as repo
from api.invoicing.repository import RevenueGrouping
from schema.errors import InvalidInput

# Rows per chunk written to the socket: a few tens of kilobytes, so memory stays flat however
# long the period while the response still streams steadily.
ROWS_PER_CHUNK = 500

SESSION_COLUMNS = (
    "transaction_id",
    "receipt_number",
    "started_at",
    "stopped_at",
    "station",
    "location",
    "energy_kwh",
    "currency",
    "net",
    "tax",
    "total",
    "sponsor_amount",
    "driver_amount",
    "payment_method",
)
REPORT_COLUMNS = (
    "key",
    "label",
    "currency",
    "sessions",
    "energy_kwh",
    "net",
    "tax",
    "total",
    "sponsor_amount",
    "driver_amount",
)


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What to export, for which organisations (None: every one, a platform administrator)."""

    organizations: frozenset[int] | None
    since: datetime
    until: datetime
    group_by: RevenueGrouping | None

    def link_payload(self) -> dict[str, Any]:
        return {
            "o": None if self.organizations is None else sorted(self.organizations),
            "f": self.since.isoformat(),
            "t": self.until.isoformat(),
            "g": None if self.group_by is None else self.group_by.name,
        }

    @classmethod
    def from_link(cls, payload: dict[str, Any]) -> ExportRequest:
        orgs = payload.get("o")
        return cls(
            organizations=None if orgs is None else frozenset(int(o) for o in orgs),
            since=datetime.fromisoformat(payload["f"]),
            until=datetime.fromisoformat(payload["t"]),
            group_by=None if payload.get("g") is None else RevenueGrouping[payload["g"]],
        )


def period(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidInput("from and to need a time zone offset")
    if until <= since:
        raise InvalidInput("to must be after from")
    return since, until


def parse_grouping(value: str | None) -> RevenueGrouping | None:
    if value is None or value == "":
        return None
    try:
        return RevenueGrouping[value.upper()]
    except KeyError:
        raise InvalidInput(f"groupBy must be one of {', '.join(g.name for g in RevenueGrouping)}") from None


def major(amount: int | None, currency: str) -> str:
    value = int(amount or 0)
    if currency in ZERO_DECIMAL_CURRENCIES:
        return str(value)
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value) // 100}.{abs(value) % 100:02d}"


def _kwh(wh: int | None) -> str:
    value = int(wh or 0)
    return f"{value // 1000}.{value % 1000:03d}"


def filename(request: ExportRequest) -> str:
    suffix = "" if request.group_by is None else f"-by-{request.group_by.value}"
    return f"revenue-{request.since:%Y%m%d}-{request.until:%Y%m%d}{suffix}.csv"


async def csv_chunks(engine: AsyncEngine, request: ExportRequest) -> AsyncIterator[str]:
    """The CSV text, header first, in chunks of ROWS_PER_CHUNK rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    async with engine.connect() as conn:
        if request.group_by is not None:
            writer.writerow(REPORT_COLUMNS)
            for r in await repo.revenue(
                conn,
                request.organizations,
                since=request.since,
                until=request.until,
                group_by=request.group_by,
            ):
                writer.writerow(
                    (
                        r.key,
                        r.label,
                        r.currency,
                        r.sessions,
                        _kwh(r.energy_wh),
                        *(major(getattr(r, f), r.currency) for f in REPORT_COLUMNS[5:]),
                    )
                )
            yield flush()
            return
        writer.writerow(SESSION_COLUMNS)
        n = 0
        async for r in repo.revenue_sessions(
            conn, request.organizations, since=request.since, until=request.until
        ):
            writer.writerow(
                (
                    r.transaction_id,
                    r.receipt_number or "",
                    r.started_at.isoformat(),
                    r.stopped_at.isoformat(),
                    r.charge_point_id,
                    r.location_name or "",
                    _kwh(r.energy_wh),
                    r.currency,
                    major(r.net, r.currency),
                    major(r.tax, r.currency),
                    major(r.total, r.currency),
                    major(r.sponsor_amount, r.currency),
                    major(r.driver_amount, r.currency),
                    r.payment_method,
                )
            )
            n += 1
            if n % ROWS_PER_CHUNK == 0:
                yield flush()
    yield flush()
