"""Signed, expiring download links: `/documents/{token}` and `/exports/revenue.csv?token=…`.

A link is a capability: whoever holds it may download what it names until it expires, with no
bearer token — what a mail client, a browser tab or a spreadsheet import needs. So it is short
lived, names exactly one document (or one export with its scope), and is signed with
HMAC-SHA256 under CHARGENET_DOCUMENT_SECRET. The purpose is signed along with the payload, so a
document link can never be replayed as an export link or the other way round.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from schema.errors import ChargeNetError, InvalidInput
from schema.settings import Settings
from schema.timeutil import utcnow

log = logging.getLogger(__name__)

DOCUMENT_PURPOSE = "document"
EXPORT_PURPOSE = "revenue-export"
DOCUMENT_PATH = "/documents"
EXPORT_PATH = "/exports/revenue.csv"
DEFAULT_LINK_MINUTES = 60
# A week: long enough to open a mailed receipt later that week, short enough that a leaked
# link stops working on its own.
MAX_LINK_MINUTES = 7 * 24 * 60

_ephemeral: bytes | None = None


class BadLink(ChargeNetError):
    code = "BAD_LINK"


class ExpiredLink(ChargeNetError):
    code = "LINK_EXPIRED"


def secret(settings: Settings) -> bytes:
    """The configured key, or one random key for the life of this process (with a warning)."""
    global _ephemeral
    if settings.document_secret:
        return settings.document_secret.encode()
    if _ephemeral is None:
        log.warning(
            "CHARGENET_DOCUMENT_SECRET is not set: download links are signed with a per-process "
            "key; they stop working on restart and on other replicas"
        )
        _ephemeral = secrets.token_bytes(32)
    return _ephemeral


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, purpose: str, body: str) -> bytes:
    return hmac.new(key, f"{purpose}.{body}".encode(), hashlib.sha256).digest()


def sign(key: bytes, purpose: str, payload: dict[str, Any], expires_at: datetime) -> str:
    body = _b64(json.dumps({**payload, "exp": int(expires_at.timestamp())}, separators=(",", ":")).encode())
    return f"{body}.{_b64(_mac(key, purpose, body))}"


def verify(key: bytes, purpose: str, token: str, *, now: datetime | None = None) -> dict[str, Any]:
    """The payload of a valid link. BadLink when it was not signed by us for this purpose
    (checked first, so an expired forgery says nothing), ExpiredLink when it was but is over."""
    body, _, mac = token.partition(".")
    try:
        given = _unb64(mac)
        if not body or not hmac.compare_digest(given, _mac(key, purpose, body)):
            raise BadLink("invalid link")
        payload = json.loads(_unb64(body))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadLink("invalid link") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int):
        raise BadLink("invalid link")
    if payload["exp"] <= int((now or utcnow()).timestamp()):
        raise ExpiredLink("this link has expired; ask for a new one")
    return payload


def expiry(minutes: int | None, *, now: datetime | None = None) -> datetime:
    minutes = DEFAULT_LINK_MINUTES if minutes is None else minutes
    if not 1 <= minutes <= MAX_LINK_MINUTES:
        raise InvalidInput(f"expiresInMinutes must be between 1 and {MAX_LINK_MINUTES}")
    return (now or utcnow()) + timedelta(minutes=minutes)


def document_token(settings: Settings, document_id: int, expires_at: datetime) -> str:
    return sign(secret(settings), DOCUMENT_PURPOSE, {"d": document_id}, expires_at)
