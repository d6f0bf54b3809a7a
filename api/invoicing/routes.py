"""HTTP downloads: `GET /documents/{token}` (a receipt's or invoice's PDF through a signed link)
and `GET /exports/revenue.csv` (bearer token with reports:read, or a signed link).

Status codes: 403 for a link we did not sign (or a caller without reports:read), 410 for one
that expired, 404 for a document that no longer exists, 400 for bad parameters, 401 for a bad
bearer token.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from api import http_exports
from api.auth.authenticator import Authenticator
from api.auth.roles import Permission
from api.invoicing import exports, links, pdf
from api.invoicing import repository as repo
from schema.errors import InvalidInput
from schema.settings import Settings


def invoicing_routes(engine: AsyncEngine, settings: Settings, authenticator: Authenticator) -> list[Route]:
    async def download(request: Request) -> Response:
        try:
            payload = links.verify(
                links.secret(settings), links.DOCUMENT_PURPOSE, request.path_params["token"]
            )
        except (links.BadLink, links.ExpiredLink) as exc:
            return http_exports.link_error(exc)
        async with engine.connect() as conn:
            doc = await repo.document(conn, int(payload.get("d", 0)))
        if doc is None:
            return PlainTextResponse("not found\n", 404)
        body = pdf.render(doc)
        return Response(
            body,
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'attachment; filename="{doc.number}.pdf"',
                # A personal document: never kept by shared caches.
                "Cache-Control": "private, no-store",
            },
        )

    async def revenue_csv(request: Request) -> Response:
        params = request.query_params
        try:
            caller = await http_exports.link_or_principal(
                request, settings, authenticator, links.EXPORT_PURPOSE
            )
            if isinstance(caller, dict):
                export = exports.ExportRequest.from_link(caller)
            else:
                if not caller.has(Permission.REPORTS_READ):
                    return PlainTextResponse("requires reports:read\n", 403)
                since, until = exports.period(
                    _timestamp(params.get("from"), "from"), _timestamp(params.get("to"), "to")
                )
                export = exports.ExportRequest(
                    organizations=caller.organizations_with(Permission.REPORTS_READ),
                    since=since,
                    until=until,
                    group_by=exports.parse_grouping(params.get("groupBy")),
                )
        except http_exports.Refused as refused:
            return refused.response
        except InvalidInput as exc:
            return PlainTextResponse(f"{exc.message}\n", 400)
        return http_exports.csv_download(exports.csv_chunks(engine, export), exports.filename(export))

    return [
        Route(f"{links.DOCUMENT_PATH}/{{token}}", download, methods=["GET"]),
        Route(links.EXPORT_PATH, revenue_csv, methods=["GET"]),
    ]


def _timestamp(value: str | None, name: str) -> datetime:
    if not value:
        raise InvalidInput(f"{name} is required (ISO 8601 with offset)")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise InvalidInput(f"{name} is not an ISO 8601 timestamp") from None
