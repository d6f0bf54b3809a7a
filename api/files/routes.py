"""The upload endpoint stations send requested files to: PUT (or POST) `/uploads/{token}/{name}`."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from api.files import service


def upload_route(db: async_sessionmaker[AsyncSession]) -> Route:
    async def upload(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > service.MAX_UPLOAD_BYTES:
            return PlainTextResponse("file too large\n", 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > service.MAX_UPLOAD_BYTES:
                return PlainTextResponse("file too large\n", 413)
        stored = await service.store_upload(
            db,
            request.path_params["token"],
            request.path_params.get("name", ""),
            request.headers.get("content-type"),
            bytes(body),
        )
        # Unknown, used and expired tokens look alike: nothing to learn by probing.
        return PlainTextResponse("stored\n", 201) if stored else PlainTextResponse("not found\n", 404)

    return Route(f"{service.UPLOAD_PATH}/{{token}}/{{name:path}}", upload, methods=["PUT", "POST"])
