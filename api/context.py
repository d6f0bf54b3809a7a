"""The per-request GraphQL context: caller, database, bus and request-scoped DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from api.audit.service import Actor
from api.auth.deps import AuthDeps
from api.auth.principal import Principal
from api.billing.payment_types import PaymentGateway
from api.loaders import Loaders
from schema.bus import Bus
from schema.settings import Settings


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | None
    principal: Principal
    db: async_sessionmaker[AsyncSession]
    bus: Bus
    settings: Settings
    loaders: Loaders
    auth: AuthDeps
    # Stripe (or the disabled gateway when no key is set): one per process, shared.
    payments: PaymentGateway
    client_ip: str | None = None
    connection_params: dict[str, Any] | None = field(default=None)

    @property
    def actor(self) -> Actor:
        return Actor(self.principal, self.client_ip)

    @property
    def user_agent(self) -> str | None:
        return self.request.headers.get("user-agent")

    def use_principal(self, principal: Principal) -> None:
        """Switch caller (subscriptions authenticate after the socket opens); loaders follow."""
        self.principal = principal
        self.loaders = Loaders(self.db, principal, cache=self.loaders.cache)
