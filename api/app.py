"""The Starlette application: GraphQL (HTTP + graphql-transport-ws), JWKS, health, readiness,
uploads, document downloads and exports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import strawberry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from api.auth.authenticator import Authenticator
from api.auth.deps import AuthDeps
from api.auth.keys import KeyRing
from api.auth.oidc import OidcVerifier
from api.auth.principal import ANONYMOUS, Principal
from api.auth.ratelimit import RateLimiter
from api.billing.payment_types import PaymentGateway
from api.billing.stripe_gateway import build_gateway
from api.billing.webhooks import stripe_webhook_route
from api.context import Context
from api.files.routes import upload_route
from api.graphql_schema import build_schema
from api.invoicing.routes import invoicing_routes
from api.loaders import Loaders
from api.notify.email import Mailer, OutboxMailer
from api.notify.smtp import SmtpMailer
from api.service.uptime_routes import uptime_routes
from schema.bus import Bus
from schema.db import session_factory
from schema.errors import Unauthenticated
from schema.settings import Settings

_PRINCIPAL = "chargenet.principal"
_EXPIRY_TIMERS = "chargenet.expiry_timers"
# graphql-transport-ws: 4403 Forbidden is what a server sends when it refuses the connection.
WS_CLOSE_FORBIDDEN = 4403
# JWKS may be cached by verifiers; short enough that a rotated-in key is seen before it signs.
JWKS_MAX_AGE_S = 300


def client_ip(conn: HTTPConnection, settings: Settings) -> str | None:
    """The caller's address; behind a trusted proxy, the address it appended last."""
    if settings.trust_proxy_headers:
        forwarded = conn.headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[-1].strip()[:45] or None
    return conn.client.host if conn.client else None


def _unauthenticated(message: str) -> Response:
    """RFC 6750 §3: an invalid or expired token is a 401 the app answers by refreshing."""
    body = {"errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]}
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class ChargeNetGraphQL(GraphQL[Context, None]):
    def __init__(
        self,
        schema: strawberry.Schema,
        *,
        engine: AsyncEngine,
        bus: Bus,
        settings: Settings,
        auth: AuthDeps,
        payments: PaymentGateway,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
        )
        self.db = session_factory(engine)
        self.bus = bus
        self.settings = settings
        self.auth = auth
        self.payments = payments

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """HTTP requests are authenticated before GraphQL runs, so a bad token is a 401."""
        if scope["type"] == "http":
            try:
                scope[_PRINCIPAL] = await self.auth.authenticator.principal_for(
                    HTTPConnection(scope).headers.get("authorization")
                )
            except Unauthenticated as exc:
                await _unauthenticated(exc.message)(scope, receive, send)
                return
            await super().__call__(scope, receive, send)
            return
        # A socket's expiry timer (see _close_at_expiry) ends with the socket, not at expiry.
        timers: list[asyncio.Task[None]] = []
        scope[_EXPIRY_TIMERS] = timers
        try:
            await super().__call__(scope, receive, send)
        finally:
            for timer in timers:
                timer.cancel()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        is_ws = isinstance(request, WebSocket)
        principal: Principal = ANONYMOUS if is_ws else request.scope.get(_PRINCIPAL, ANONYMOUS)
        return Context(
            request=request,
            response=response if isinstance(response, Response) else None,
            principal=principal,
            db=self.db,
            bus=self.bus,
            settings=self.settings,
            loaders=Loaders(self.db, principal, cache=not is_ws),
            auth=self.auth,
            payments=self.payments,
            client_ip=client_ip(request, self.settings),
        )

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        """Subscriptions authenticate with `connection_init` {"Authorization": "Bearer …"};
        the socket is closed (4403) when the access token expires, so the app reconnects with
        a fresh one instead of listening on a credential that is no longer valid."""
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        header = params.get("Authorization") or params.get("authorization")
        if header is None:
            return None
        try:
            principal, expires_at = await self.auth.authenticator.authenticate(str(header))
        except Unauthenticated as exc:
            raise ConnectionRejectionError({"reason": exc.message, "code": exc.code}) from None
        context.use_principal(principal)
        if expires_at is not None and isinstance(context.request, WebSocket):
            _close_at_expiry(context.request, expires_at)
        return None


def _close_at_expiry(ws: WebSocket, expires_at: int) -> None:
    async def close() -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        try:
            await ws.close(code=WS_CLOSE_FORBIDDEN, reason="access token expired")
        except RuntimeError:
            pass  # already closed by the client

    # Cancelled by ChargeNetGraphQL.__call__ when the socket ends first.
    ws.scope[_EXPIRY_TIMERS].append(asyncio.get_running_loop().create_task(close()))


def build_auth(engine: AsyncEngine, settings: Settings) -> AuthDeps:
    keys = KeyRing.from_settings(settings)
    mailer: Mailer = SmtpMailer.from_settings(settings) if settings.email_sender == "smtp" else OutboxMailer()
    return AuthDeps(
        authenticator=Authenticator(engine, keys, admin_token=settings.admin_token),
        keys=keys,
        mailer=mailer,
        limiter=RateLimiter(),
        identity=OidcVerifier.from_settings(settings),
    )


def create_app(
    *,
    engine: AsyncEngine,
    bus: Bus,
    settings: Settings,
    ready: Any = None,
    auth: AuthDeps | None = None,
    payments: PaymentGateway | None = None,
) -> Starlette:
    """`ready` is a callable telling whether the process may take traffic (serve sets it).
    `payments` defaults to Stripe as the settings configure it (disabled without a key)."""
    auth = auth or build_auth(engine, settings)
    gateway = payments or build_gateway(settings)
    graphql = ChargeNetGraphQL(
        build_schema(), engine=engine, bus=bus, settings=settings, auth=auth, payments=gateway
    )
    jwks_body = json.dumps(auth.keys.public_jwks()).encode()

    async def jwks(_request: Request) -> Response:
        return Response(
            jwks_body,
            media_type="application/jwk-set+json",
            headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE_S}"},
        )

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

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await gateway.aclose()

    app = Starlette(
        lifespan=lifespan,
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/.well-known/jwks.json", jwks),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            upload_route(session_factory(engine)),
            stripe_webhook_route(engine, settings),
            *invoicing_routes(engine, settings, auth.authenticator),
            *uptime_routes(engine, settings, auth.authenticator),
        ],
    )
    app.state.auth = auth
    app.state.payments = gateway
    return app
