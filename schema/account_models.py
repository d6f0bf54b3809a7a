"""Tables for people, organisations' members, integrations and the audit trail.

Secrets (passwords, refresh tokens, one-time tokens, API keys) are stored only as hashes:
Argon2 for passwords people choose, SHA-256 for the random 256-bit tokens ChargeNet issues
(they cannot be guessed, so a slow hash would only cost latency on every request).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from schema.columns import bigint_pk, utc_column
from schema.timeutil import utcnow


class UserAccount(SQLModel, table=True):
    """A person: a driver, an operator's staff member, or both (memberships say which)."""

    __tablename__ = "user_account"

    id: int | None = Field(default=None, primary_key=True)
    # Lower-cased; NULL once the account is deleted (the row stays for financial records).
    email: str | None = Field(default=None, max_length=254, unique=True)
    email_verified_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # NULL for accounts that only ever signed in with Google or Apple.
    password_hash: str | None = Field(default=None, max_length=200)
    password_changed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    display_name: str | None = Field(default=None, max_length=120)
    phone: str | None = Field(default=None, max_length=32)
    # Printed as the buyer's address on their membership invoices; lines separated by newlines.
    billing_address: str | None = Field(default=None, max_length=500)
    locale: str = Field(default="en", max_length=16)
    # Platform staff of the ChargeNet deployment itself: every organisation, every permission.
    is_platform_admin: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    deleted_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class ExternalIdentity(SQLModel, table=True):
    """A Google or Apple account linked to a user, keyed by the provider's stable `sub`."""

    __tablename__ = "external_identity"
    __table_args__ = (UniqueConstraint("provider", "subject", name="uq_external_identity_subject"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    provider: str = Field(max_length=16)
    subject: str = Field(max_length=255)
    email: str | None = Field(default=None, max_length=254)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class AuthSession(SQLModel, table=True):
    """One signed-in device. Its refresh tokens form one family: reuse of an old one kills it."""

    __tablename__ = "auth_session"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    device_name: str | None = Field(default=None, max_length=120)
    user_agent: str | None = Field(default=None, max_length=300)
    ip_address: str | None = Field(default=None, max_length=45)
    # How the session was opened: password, google, apple.
    method: str = Field(default="password", max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    last_used_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    expires_at: datetime = Field(sa_column=utc_column())
    revoked_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    revoke_reason: str | None = Field(default=None, max_length=40)


class RefreshToken(SQLModel, table=True):
    __tablename__ = "refresh_token"

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="auth_session.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    # Set when exchanged for a new token; presenting it again is reuse (RFC 9700 §4.14.2).
    rotated_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class OneTimeToken(SQLModel, table=True):
    """Email verification and password reset links: single use, short-lived, hashed."""

    __tablename__ = "one_time_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    purpose: str = Field(max_length=24)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    expires_at: datetime = Field(sa_column=utc_column())
    used_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class Membership(SQLModel, table=True):
    __tablename__ = "membership"
    __table_args__ = (UniqueConstraint("organization_id", "user_id", name="uq_membership_org_user"),)

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    role: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class Invitation(SQLModel, table=True):
    __tablename__ = "invitation"

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    email: str = Field(max_length=254)
    role: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    invited_by_user_id: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    expires_at: datetime = Field(sa_column=utc_column())
    accepted_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    accepted_by_user_id: int | None = Field(default=None, foreign_key="user_account.id")
    revoked_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class ApiKey(SQLModel, table=True):
    """An integration's credential: `cnk_<public id>_<secret>`; only the secret's hash is kept."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    name: str = Field(max_length=120)
    public_id: str = Field(max_length=24, unique=True)
    secret_hash: str = Field(max_length=64)
    # Space-separated permission names, a subset of what its creator held.
    permissions: str = Field(sa_column=Column(Text(), nullable=False))
    created_by_user_id: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    expires_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    last_used_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class AuditEntry(SQLModel, table=True):
    """Who did what, when, from where, with what result. Append-only."""

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_org_time", "organization_id", "created_at"),)

    id: int | None = Field(
        default=None,
        sa_column=bigint_pk(),
    )
    organization_id: int | None = Field(default=None, foreign_key="organization.id")
    actor_kind: str = Field(max_length=16)
    actor_user_id: int | None = Field(default=None, foreign_key="user_account.id")
    actor_api_key_id: int | None = Field(default=None, foreign_key="api_key.id")
    # A label that survives account deletion ("user:12", "api_key:cnk_ab12…", "platform").
    actor_label: str = Field(max_length=120)
    action: str = Field(max_length=60)
    target_type: str | None = Field(default=None, max_length=40)
    target_id: str | None = Field(default=None, max_length=64)
    ip_address: str | None = Field(default=None, max_length=45)
    result: str = Field(max_length=40)
    detail: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class Vehicle(SQLModel, table=True):
    __tablename__ = "vehicle"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    make: str = Field(max_length=60)
    model: str = Field(max_length=60)
    battery_wh: int | None = None
    # Space-separated connector types (Type2, CCS2, CHAdeMO, …).
    connector_types: str = Field(default="", max_length=120)
    nickname: str | None = Field(default=None, max_length=60)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
