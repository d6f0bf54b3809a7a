"""`GET /exports/uptime.csv`: the quarterly uptime report, by bearer token with network:read
(`?organizationId=…&year=…&quarter=…`) or by a signed link from `uptimeExportUrl`.

Status codes as for the revenue export: 401 for a bad or missing bearer token, 403 for a link
we did not sign or a caller without network:read there, 410 for an expired link, 400 for bad
parameters.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from api import http_exports
from api.auth.authenticator import Authenticator
from api.invoicing import links
from api.network.types import parse_global_id
from api.service import uptime_export
from schema.errors import Forbidden, InvalidInput
from schema.settings import Settings

EXPORT_PURPOSE = "uptime-export"
EXPORT_PATH = "/exports/uptime.csv"


def _int(value: str | None, name: str) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise InvalidInput(f"{name} must be a number") from None


def uptime_routes(engine: AsyncEngine, settings: Settings, authenticator: Authenticator) -> list[Route]:
    async def uptime_csv(request: Request) -> Response:
        params = request.query_params
        try:
            caller = await http_exports.link_or_principal(request, settings, authenticator, EXPORT_PURPOSE)
            if isinstance(caller, dict):
                export = uptime_export.QuarterRequest.from_link(caller)
            else:
                export = uptime_export.quarter_request(
                    caller,
                    parse_global_id(params.get("organizationId", ""), "Organization"),
                    _int(params.get("year"), "year"),
                    _int(params.get("quarter"), "quarter"),
                )
        except http_exports.Refused as refused:
            return refused.response
        except InvalidInput as exc:
            return PlainTextResponse(f"{exc.message}\n", 400)
        except Forbidden as exc:
            return PlainTextResponse(f"{exc.message}\n", 403)
        return http_exports.csv_download(uptime_export.csv_chunks(engine, export), export.filename())

    return [Route(EXPORT_PATH, uptime_csv, methods=["GET"])]


def export_token(settings: Settings, export: uptime_export.QuarterRequest, minutes: int | None) -> str:
    return links.sign(links.secret(settings), EXPORT_PURPOSE, export.link_payload(), links.expiry(minutes))
