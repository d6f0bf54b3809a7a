"""Billing months: UTC calendar months named "YYYY-MM" (sponsor statements, invoice lists)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schema.errors import InvalidInput


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """ "2026-11" → [2026-11-01T00:00Z, 2026-12-01T00:00Z)."""
    try:
        year, number = (int(p) for p in month.split("-"))
        since = datetime(year, number, 1, tzinfo=UTC)
    except ValueError:
        raise InvalidInput(f"not a month (YYYY-MM): {month!r}") from None
    until = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=UTC)
    return since, until


def month_containing(at: datetime) -> str:
    at = at.astimezone(UTC)
    return f"{at.year:04d}-{at.month:02d}"


def previous_month(now: datetime) -> str:
    return month_containing(now.astimezone(UTC).replace(day=1) - timedelta(days=1))
