"""Files stations upload when asked (OCPP GetDiagnostics / GetLog): a one-time URL per
request, the upload stored and linked to the station.

Chargers upload with whatever their firmware has — usually FTP or a plain HTTP PUT/POST of
the file to `<location>/<fileName>`, without any credentials — so the URL itself is the
credential: a random token whose hash is kept, valid for one upload within a day.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit.service import Actor
from api.auth.roles import Permission
from api.network import repository as network
from schema.errors import Forbidden, InvalidInput, NotFound
from schema.models import ChargingStation
from schema.request_models import StationFile
from schema.timeutil import utcnow

# Diagnostics archives are kilobytes to a few megabytes; beyond this an upload is refused
# (a station cannot fill the database by accident or on purpose).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
UPLOAD_VALID_FOR = timedelta(days=1)
UPLOAD_PATH = "/uploads"
MAX_FILE_NAME = 255
STATION_FILE = StationFile.__table__  # type: ignore[attr-defined]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def upload_for(
    db: async_sessionmaker[AsyncSession], actor: Actor, station_id: int, *, base_url: str, kind: str
) -> tuple[int, str]:
    """An upload URL for a station the caller may diagnose (checked before any row exists)."""
    async with db() as s:
        station = (await network.stations_by_ids(s, actor.principal, [station_id])).get(station_id)
    if station is None:
        raise NotFound("no such station")
    if not actor.principal.can(Permission.STATIONS_DIAGNOSE, station.organization_id):
        raise Forbidden("requires stations:diagnose at this station's organisation")
    return await create_upload(db, station, base_url=base_url, kind=kind)


async def create_upload(
    db: async_sessionmaker[AsyncSession],
    station: ChargingStation,
    *,
    base_url: str,
    kind: str = "diagnostics",
) -> tuple[int, str]:
    """The file's id and the location URL to send to the station."""
    token = secrets.token_urlsafe(24)
    async with db() as s:
        row = StationFile(
            station_id=station.id or 0,
            organization_id=station.organization_id,
            kind=kind,
            token_hash=_hash(token),
        )
        s.add(row)
        await s.commit()
        file_id = row.id or 0
    return file_id, f"{base_url.rstrip('/')}{UPLOAD_PATH}/{token}"


async def store_upload(
    db: async_sessionmaker[AsyncSession], token: str, file_name: str, content_type: str | None, body: bytes
) -> bool:
    """Fill the file the token was issued for; False when the token is unknown, used or stale."""
    if len(body) > MAX_UPLOAD_BYTES:
        return False
    async with db() as s:
        result = await s.exec(
            update(StationFile)  # type: ignore[call-overload]
            .where(
                col(StationFile.token_hash) == _hash(token),
                col(StationFile.status) == "requested",
                col(StationFile.requested_at) > utcnow() - UPLOAD_VALID_FOR,
            )
            .values(
                status="uploaded",
                file_name=file_name[:MAX_FILE_NAME] or "upload",
                content_type=(content_type or "application/octet-stream")[:100],
                size_bytes=len(body),
                content=body,
                uploaded_at=utcnow(),
            )
        )
        await s.commit()
    return bool(result.rowcount)


async def store_file(
    conn: AsyncConnection,
    *,
    station_id: int,
    organization_id: int | None,
    kind: str,
    file_name: str,
    content_type: str | None,
    body: bytes,
) -> int:
    """Keep a file people send about a station (a photo) next to the ones stations upload;
    it is complete at once, so its token is random and never handed out."""
    if not body:
        raise InvalidInput("the file is empty")
    if len(body) > MAX_UPLOAD_BYTES:
        raise InvalidInput(f"a file is at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    now = utcnow()
    inserted = await conn.execute(
        STATION_FILE.insert()
        .values(
            station_id=station_id,
            organization_id=organization_id,
            kind=kind,
            token_hash=_hash(secrets.token_urlsafe(24)),
            status="uploaded",
            file_name=file_name[:MAX_FILE_NAME] or "upload",
            content_type=(content_type or "application/octet-stream")[:100],
            size_bytes=len(body),
            content=body,
            requested_at=now,
            uploaded_at=now,
        )
        .returning(STATION_FILE.c.id)
    )
    return int(inserted.scalar_one())
