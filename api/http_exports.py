"""What every CSV export route does before and after its own work: accept either a signed link
(for a browser download or a spreadsheet's "import from URL") or a bearer token, and stream
the file so nobody's cache keeps it.

The status codes are the same for every export: 401 for a bad or missing bearer token, 403 for
a link we did not sign, 410 for an expired one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from api.auth.authenticator import Authenticator
from api.auth.principal import Principal
from api.invoicing import links
from schema.errors import Unauthenticated
from schema.settings import Settings

BEARER = {"WWW-Authenticate": "Bearer"}


class Refused(Exception):
    """The request may not have the export; `response` says why."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def link_error(exc: links.BadLink | links.ExpiredLink) -> Response:
    status = 410 if isinstance(exc, links.ExpiredLink) else 403
    return PlainTextResponse(f"{exc.message}\n", status)


async def link_or_principal(
    request: Request, settings: Settings, authenticator: Authenticator, purpose: str
) -> dict[str, Any] | Principal:
    """The signed link's payload when the request carries `?token=`, else the signed-in caller.
    Raises `Refused` for a bad link or a missing/bad bearer token."""
    token = request.query_params.get("token")
    if token is not None:
        try:
            return links.verify(links.secret(settings), purpose, token)
        except (links.BadLink, links.ExpiredLink) as exc:
            raise Refused(link_error(exc)) from None
    try:
        principal = await authenticator.principal_for(request.headers.get("authorization"))
    except Unauthenticated as exc:
        raise Refused(PlainTextResponse(f"{exc.message}\n", 401, headers=BEARER)) from None
    if not principal.is_authenticated:
        raise Refused(PlainTextResponse("sign in required\n", 401, headers=BEARER))
    return principal


def csv_download(chunks: AsyncIterator[str] | AsyncIterator[bytes], filename: str) -> StreamingResponse:
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            # Reports of an organisation's money or service: never kept by shared caches.
            "Cache-Control": "private, no-store",
        },
    )
