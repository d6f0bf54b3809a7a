"""GraphQL documents and small helpers shared by the account tests."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from api.notify.email import OutboxMailer
from tests.conftest import ApiServer
from tests.graphql_client import gql

PAIR = "accessToken accessTokenExpiresAt refreshToken sessionId"
SIGN_UP = """
mutation ($input: SignUpInput!) { signUp(input: $input) { message } }
"""
VERIFY_EMAIL = f"""
mutation ($token: String!, $device: DeviceInput) {{
  verifyEmail(token: $token, device: $device) {{ {PAIR} }}
}}
"""
RESEND = """
mutation ($email: String!) { resendVerificationEmail(email: $email) { message } }
"""
LOG_IN = f"""
mutation ($input: LogInInput!) {{ logIn(input: $input) {{ {PAIR} }} }}
"""
REFRESH = f"""
mutation ($token: String!) {{ refreshToken(refreshToken: $token) {{ {PAIR} }} }}
"""
LOG_OUT = "mutation { logOut }"
LOG_OUT_EVERYWHERE = "mutation { logOutEverywhere }"
REQUEST_RESET = """
mutation ($email: String!) { requestPasswordReset(email: $email) { message } }
"""
RESET = """
mutation ($token: String!, $password: String!) { resetPassword(token: $token, newPassword: $password) }
"""
CHANGE = """
mutation ($current: String!, $new: String!) { changePassword(currentPassword: $current, newPassword: $new) }
"""
SESSIONS = """
{ authSessions { id deviceName userAgent ipAddress method createdAt lastUsedAt expiresAt current } }
"""
REVOKE_SESSION = "mutation ($id: ID!) { revokeAuthSession(id: $id) }"
# A cheap public read: what a driver app asks most.
CHEAP_QUERY = "{ locations(first: 1) { totalCount } }"

NEW_PASSWORD = "violet-tram-lantern-42"


def unique_email(name: str) -> str:
    """The PostgreSQL database is shared by the run's tests: addresses must not collide."""
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


def outbox(server: ApiServer) -> OutboxMailer:
    mailer = server.app.state.auth.mailer
    assert isinstance(mailer, OutboxMailer)
    return mailer


def mails(server: ApiServer, to: str, kind: str | None = None) -> list[Any]:
    return [m for m in outbox(server).outbox if m.to == to and (kind is None or m.kind == kind)]


def link_token(body: str, path: str) -> str:
    found = re.search(rf"/{path}\?token=([A-Za-z0-9_-]+)", body)
    assert found, body
    return found.group(1)


def latest_token(server: ApiServer, to: str, kind: str, path: str) -> str:
    mail = outbox(server).latest(to, kind)
    assert mail is not None, f"no {kind} mail to {to}"
    return link_token(mail.body, path)


def error_code(result: dict[str, Any]) -> str:
    assert result.get("errors"), result
    return str(result["errors"][0]["extensions"]["code"])


async def log_in(
    http: httpx.AsyncClient, email: str, password: str, *, device: str | None = None
) -> dict[str, Any]:
    return await gql(
        http, LOG_IN, {"input": {"email": email, "password": password, "device": {"name": device}}}
    )


async def sign_up(http: httpx.AsyncClient, email: str, password: str, **extra: Any) -> dict[str, Any]:
    return await gql(http, SIGN_UP, {"input": {"email": email, "password": password, **extra}})
