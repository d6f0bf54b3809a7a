"""`GET /exports/uptime.csv`: the quarterly uptime report, by bearer token with network:read
(`?organizationId=…&year=…&quarter=…`) or by a signed link from `uptimeExportUrl`.

Status codes as for the revenue export: 401 for a bad or missing bearer token, 403 for a link
we did not sign or a caller without network:read there, 410 for an expired link, 400 for bad
parameters.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from api.auth.authenticator import Authenticator
from api.invoicing import links
from api.network.types import parse_global_id
from api.service import uptime_export
from schema.errors import Forbidden, InvalidInput, Unauthenticated
from schema.settings import Settings

EXPORT_PURPOSE = "uptime-export"
EXPORT_PATH = "/exports/uptime.csv"
BEARER = {"WWW-Authenticate": "Bearer"}


def _int(value: str | None, name: str) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise InvalidInput(f"{name} must be a number") from None


def uptime_routes(engine: AsyncEngine, settings: Settings, authenticator: Authenticator) -> list[Route]:
    async def uptime_csv(request: Request) -> Response:
        params = request.query_params
        try:
            if "token" in params:
                try:
                    payload = links.verify(links.secret(settings), EXPORT_PURPOSE, params["token"])
                except (links.BadLink, links.ExpiredLink) as exc:
                    status = 410 if isinstance(exc, links.ExpiredLink) else 403
                    return PlainTextResponse(f"{exc.message}\n", status)
                export = uptime_export.QuarterRequest.from_link(payload)
            else:
                try:
                    principal = await authenticator.principal_for(request.headers.get("authorization"))
                except Unauthenticated as exc:
                    return PlainTextResponse(f"{exc.message}\n", 401, headers={"WWW-Authenticate": "Bearer"})
                if not principal.is_authenticated:
                    return PlainTextResponse(
                        "sign in required\n", 401, headers={"WWW-Authenticate": "Bearer"}
                    )
                export = uptime_export.quarter_request(
                    principal,
                    parse_global_id(params.get("organizationId", ""), "Organization"),
                    _int(params.get("year"), "year"),
                    _int(params.get("quarter"), "quarter"),
                )
        except InvalidInput as exc:
            return PlainTextResponse(f"{exc.message}\n", 400)
        except Forbidden as exc:
            return PlainTextResponse(f"{exc.message}\n", 403)
        return StreamingResponse(
            uptime_export.csv_chunks(engine, export),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{export.filename()}"',
                "Cache-Control": "private, no-store",
            },
        )

    return [Route(EXPORT_PATH, uptime_csv, methods=["GET"])]


def export_token(settings: Settings, export: uptime_export.QuarterRequest, minutes: int | None) -> str:
    return links.sign(links.secret(settings), EXPORT_PURPOSE, export.link_payload(), links.expiry(minutes))
