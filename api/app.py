"""The Starlette application: GraphQL (HTTP + graphql-transport-ws), health and readiness."""

from __future__ import annotations

from typing import Any

import strawberry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from api.auth.principal import ANONYMOUS, TokenVerifier
from api.context import Context
from api.graphql_schema import build_schema
from api.loaders import Loaders
from schema.bus import Bus
from schema.db import session_factory
from schema.settings import Settings


class ChargeNetGraphQL(GraphQL[Context, None]):
    def __init__(
        self, schema: strawberry.Schema, *, engine: AsyncEngine, bus: Bus, settings: Settings
    ) -> None:
        super().__init__(
            schema, graphql_ide="graphiql", subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL]
        )
        self.db = session_factory(engine)
        self.bus = bus
        self.settings = settings
        self.tokens = TokenVerifier(settings.admin_token)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        is_ws = isinstance(request, WebSocket)
        principal = ANONYMOUS if is_ws else self.tokens.principal_for(request.headers.get("authorization"))
        return Context(
            request=request,
            response=response if isinstance(response, Response) else None,
            principal=principal,
            db=self.db,
            bus=self.bus,
            settings=self.settings,
            loaders=Loaders(self.db, principal, cache=not is_ws),
        )

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        """Subscriptions authenticate with `connection_init` {"Authorization": "Bearer …"}."""
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        header = params.get("Authorization") or params.get("authorization")
        if header is None:
            return None
        principal = self.tokens.principal_for(str(header))
        if principal is ANONYMOUS:
            raise ConnectionRejectionError({"reason": "invalid credentials"})
        context.use_principal(principal)
        return None


def create_app(*, engine: AsyncEngine, bus: Bus, settings: Settings, ready: Any = None) -> Starlette:
    """`ready` is a callable telling whether the process may take traffic (serve sets it)."""
    graphql = ChargeNetGraphQL(build_schema(), engine=engine, bus=bus, settings=settings)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "database": str(exc)[:200]}, 503)
        if ready is not None and not ready():
            return JSONResponse({"status": "starting"}, 503)
        return JSONResponse({"status": "ready"})

    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ]
    )
