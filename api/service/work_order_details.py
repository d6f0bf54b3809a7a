"""What a technician records on a work order: checklist ticks, notes, parts and labour (money
in minor units of the order's currency), photos — and what maintenance cost a station per
year, which NEVI reporting asks for.

Like the lifecycle functions these take the caller's connection and never commit.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from api.files import service as files
from api.service import work_orders as wo
from schema.errors import InvalidInput, NotFound
from schema.maintenance_models import WorkOrderAttachment, WorkOrderPart, WorkOrderState
from schema.request_models import StationFile

PART = WorkOrderPart.__table__  # type: ignore[attr-defined]
ATTACHMENT = WorkOrderAttachment.__table__  # type: ignore[attr-defined]
STATION_FILE = StationFile.__table__  # type: ignore[attr-defined]
MAX_NOTE = 2000
MAX_PARTS_PER_ORDER = 200
MAX_QUANTITY = 10_000
# A single part or a visit's labour above this is a typo, not maintenance (minor units).
MAX_AMOUNT = 100_000_000
# Phones take 3–8 MB photos; larger is a video or a mistake.
MAX_PHOTO_BYTES = 10 * 1024 * 1024
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/heic", "image/webp"})


async def add_note(
    conn: AsyncConnection, order: Any, text: str, *, at: datetime, user_id: int | None
) -> list[Any]:
    body = text.strip()
    if not body or len(body) > MAX_NOTE:
        raise InvalidInput(f"a note is 1–{MAX_NOTE} characters")
    await wo.add_entry(conn, order.id, "note", at=at, user_id=user_id, text=body)
    return await wo.touch(conn, order.id, "updated", at)


async def add_checklist_item(
    conn: AsyncConnection, order: Any, text: str, *, at: datetime, user_id: int | None
) -> list[Any]:
    wo.require_open(order)
    body = text.strip()
    if not body or len(body) > wo.MAX_CHECKLIST_TEXT:
        raise InvalidInput(f"a checklist item is 1–{wo.MAX_CHECKLIST_TEXT} characters")
    count = (
        await conn.execute(select(func.count()).where(wo.CHECKLIST.c.work_order_id == order.id))
    ).scalar_one()
    if count >= wo.MAX_CHECKLIST_ITEMS:
        raise InvalidInput(f"at most {wo.MAX_CHECKLIST_ITEMS} checklist items")
    await conn.execute(wo.CHECKLIST.insert().values(work_order_id=order.id, position=count, text=body))
    return await wo.touch(conn, order.id, "updated", at)


async def check_item(
    conn: AsyncConnection, order: Any, item_id: int, done: bool, *, at: datetime, user_id: int | None
) -> list[Any]:
    wo.require_open(order)
    changed = await conn.execute(
        update(wo.CHECKLIST)
        .where(wo.CHECKLIST.c.id == item_id, wo.CHECKLIST.c.work_order_id == order.id)
        .values(done=done, done_by=user_id if done else None, done_at=at if done else None)
    )
    if changed.rowcount == 0:
        raise NotFound("no such checklist item on this work order")
    await wo.add_entry(
        conn, order.id, "checklist", at=at, user_id=user_id, detail={"item_id": item_id, "done": done}
    )
    return await wo.touch(conn, order.id, "updated", at)


@dataclass(frozen=True, slots=True)
class NewPart:
    name: str
    part_number: str | None
    quantity: int
    unit_cost: int


async def add_part(
    conn: AsyncConnection, order: Any, part: NewPart, *, at: datetime, user_id: int | None
) -> list[Any]:
    wo.require_open(order)
    if not part.name.strip() or len(part.name) > 200:
        raise InvalidInput("a part name is 1–200 characters")
    if part.part_number is not None and len(part.part_number) > 100:
        raise InvalidInput("a part number is at most 100 characters")
    if not 1 <= part.quantity <= MAX_QUANTITY:
        raise InvalidInput(f"quantity is 1–{MAX_QUANTITY}")
    if not 0 <= part.unit_cost <= MAX_AMOUNT:
        raise InvalidInput(f"unitCost is 0–{MAX_AMOUNT} minor units")
    count = (await conn.execute(select(func.count()).where(PART.c.work_order_id == order.id))).scalar_one()
    if count >= MAX_PARTS_PER_ORDER:
        raise InvalidInput(f"at most {MAX_PARTS_PER_ORDER} parts per work order")
    await conn.execute(
        PART.insert().values(
            work_order_id=order.id,
            name=part.name.strip(),
            part_number=part.part_number,
            quantity=part.quantity,
            unit_cost=part.unit_cost,
            added_by=user_id,
            added_at=at,
        )
    )
    await wo.add_entry(
        conn,
        order.id,
        "part",
        at=at,
        user_id=user_id,
        text=part.name.strip(),
        detail={"quantity": part.quantity},
    )
    return await wo.touch(conn, order.id, "updated", at)


async def set_labour_cost(
    conn: AsyncConnection, order: Any, amount: int, *, at: datetime, user_id: int | None
) -> list[Any]:
    wo.require_open(order)
    if not 0 <= amount <= MAX_AMOUNT:
        raise InvalidInput(f"labourCost is 0–{MAX_AMOUNT} minor units")
    await conn.execute(update(wo.WORK_ORDER).where(wo.WORK_ORDER.c.id == order.id).values(labour_cost=amount))
    await wo.add_entry(conn, order.id, "labour", at=at, user_id=user_id, detail={"labour_cost": amount})
    return await wo.touch(conn, order.id, "updated", at)


def decode_photo(data_base64: str, content_type: str) -> bytes:
    if content_type not in PHOTO_TYPES:
        raise InvalidInput(f"a photo is one of {sorted(PHOTO_TYPES)}")
    if len(data_base64) > MAX_PHOTO_BYTES * 4 // 3 + 4:
        raise InvalidInput(f"a photo is at most {MAX_PHOTO_BYTES // (1024 * 1024)} MB")
    try:
        return base64.b64decode(data_base64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("the photo is not valid base64") from None


async def attach_file(
    conn: AsyncConnection, order: Any, file_id: int, kind: str, *, at: datetime, user_id: int | None
) -> None:
    await conn.execute(
        ATTACHMENT.insert().values(
            work_order_id=order.id, station_file_id=file_id, kind=kind, added_by=user_id, added_at=at
        )
    )
    await wo.add_entry(
        conn, order.id, "attachment", at=at, user_id=user_id, detail={"file_id": file_id, "kind": kind}
    )


async def add_photo(
    conn: AsyncConnection,
    order: Any,
    *,
    file_name: str,
    content_type: str,
    data_base64: str,
    at: datetime,
    user_id: int | None,
) -> list[Any]:
    wo.require_open(order)
    body = decode_photo(data_base64, content_type)
    file_id = await files.store_file(
        conn,
        station_id=order.station_id,
        organization_id=order.organization_id,
        kind="photo",
        file_name=file_name,
        content_type=content_type,
        body=body,
    )
    await attach_file(conn, order, file_id, "photo", at=at, user_id=user_id)
    return await wo.touch(conn, order.id, "updated", at)


async def _grouped(
    conn: AsyncConnection, stmt: Any, key: Any, work_order_ids: Sequence[int]
) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {i: [] for i in work_order_ids}
    for row in (await conn.execute(stmt.where(key.in_(list(work_order_ids))))).all():
        out[row.work_order_id].append(row)
    return out


async def parts_of(conn: AsyncConnection, work_order_ids: Sequence[int]) -> dict[int, list[Any]]:
    return await _grouped(conn, select(PART).order_by(PART.c.id), PART.c.work_order_id, work_order_ids)


async def checklists_of(conn: AsyncConnection, work_order_ids: Sequence[int]) -> dict[int, list[Any]]:
    stmt = select(wo.CHECKLIST).order_by(wo.CHECKLIST.c.position, wo.CHECKLIST.c.id)
    return await _grouped(conn, stmt, wo.CHECKLIST.c.work_order_id, work_order_ids)


async def timelines_of(conn: AsyncConnection, work_order_ids: Sequence[int]) -> dict[int, list[Any]]:
    stmt = select(wo.ENTRY).order_by(wo.ENTRY.c.at, wo.ENTRY.c.id)
    return await _grouped(conn, stmt, wo.ENTRY.c.work_order_id, work_order_ids)


async def attachments_of(conn: AsyncConnection, work_order_ids: Sequence[int]) -> dict[int, list[Any]]:
    stmt = (
        select(STATION_FILE, ATTACHMENT.c.kind.label("attachment_kind"), ATTACHMENT.c.work_order_id)
        .join(ATTACHMENT, ATTACHMENT.c.station_file_id == STATION_FILE.c.id)
        .order_by(ATTACHMENT.c.id)
    )
    return await _grouped(conn, stmt, ATTACHMENT.c.work_order_id, work_order_ids)


@dataclass(frozen=True, slots=True)
class StationCost:
    station_id: int
    currency: str
    orders: int
    parts_cost: int
    labour_cost: int

    @property
    def total(self) -> int:
        return self.parts_cost + self.labour_cost


async def annual_costs(conn: AsyncConnection, organization_id: int, year: int) -> list[StationCost]:
    """Maintenance cost per station for a calendar year (UTC), counted by when each order's
    work was done (resolved); cancelled orders cost nothing."""
    if not 2000 <= year <= 2100:
        raise InvalidInput("year is 2000–2100")
    start, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    w = wo.WORK_ORDER
    part_sums = (
        select(PART.c.work_order_id, func.sum(PART.c.quantity * PART.c.unit_cost).label("parts"))
        .group_by(PART.c.work_order_id)
        .subquery()
    )
    stmt = (
        select(
            w.c.station_id,
            w.c.currency,
            func.count().label("orders"),
            func.coalesce(func.sum(part_sums.c.parts), 0).label("parts"),
            func.coalesce(func.sum(w.c.labour_cost), 0).label("labour"),
        )
        .select_from(w.outerjoin(part_sums, part_sums.c.work_order_id == w.c.id))
        .where(
            w.c.organization_id == organization_id,
            w.c.state.in_([WorkOrderState.RESOLVED.value, WorkOrderState.VERIFIED.value]),
            w.c.resolved_at >= start,
            w.c.resolved_at < end,
        )
        .group_by(w.c.station_id, w.c.currency)
        .order_by(w.c.station_id)
    )
    return [
        StationCost(int(r.station_id), r.currency, int(r.orders), int(r.parts), int(r.labour))
        for r in (await conn.execute(stmt)).all()
    ]
