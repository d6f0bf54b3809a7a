"""Runtime settings, read from flags and the environment (prefix-free names, `.env` allowed).

Secrets and deployment choices come from here, never from the repository.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./chargenet.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_prefix="")

    database_url: str = Field(default=DEFAULT_SQLITE_URL, alias="DATABASE_URL")
    # "memory": events and commands stay inside one process (the embedded default);
    # "redis://host:6379/0": many gateway, API and worker processes share one bus.
    bus_url: str = Field(default="memory", alias="BUS_URL")
    # Every Redis key and channel of the bus starts with this, so two ChargeNet networks (or
    # staging next to production) can share one Redis; the worker's stream and job locks have
    # their own names (CHARGENET_DURABLE_STREAM, CHARGENET_JOB_LOCK_PREFIX).
    bus_prefix: str = Field(default="chargenet", min_length=1, alias="CHARGENET_BUS_PREFIX")
    api_host: str = Field(default="127.0.0.1", alias="CHARGENET_API_HOST")
    api_port: int = Field(default=8000, alias="CHARGENET_API_PORT")
    gateway_host: str = Field(default="127.0.0.1", alias="CHARGENET_GATEWAY_HOST")
    gateway_port: int = Field(default=9000, alias="CHARGENET_GATEWAY_PORT")
    demo: bool = Field(default=True, alias="CHARGENET_DEMO")
    simulated_chargers: int = Field(default=10, alias="CHARGENET_SIMULATED_CHARGERS")
    # Unknown charge point ids are refused unless this is on; the demo turns it on so the
    # simulator can add stations beyond the seeded ten.
    auto_register: bool = Field(default=False, alias="CHARGENET_AUTO_REGISTER")
    # What an unknown charge point id gets at the handshake: "refuse" (404), "pending"
    # (registered, BootNotification answered Pending until an operator approves it) or
    # "accept". Unset: "accept" with CHARGENET_AUTO_REGISTER (or the demo), else "refuse".
    unknown_stations: Literal["refuse", "pending", "accept"] | None = Field(
        default=None, alias="CHARGENET_UNKNOWN_STATIONS"
    )
    # OCPP security profiles 2 and 3: the gateway listens with TLS when a certificate and key
    # are given (PEM files), and asks stations for client certificates signed by the CA file.
    gateway_tls_cert: str | None = Field(default=None, alias="CHARGENET_GATEWAY_TLS_CERT")
    gateway_tls_key: str | None = Field(default=None, alias="CHARGENET_GATEWAY_TLS_KEY")
    gateway_tls_client_ca: str | None = Field(default=None, alias="CHARGENET_GATEWAY_TLS_CLIENT_CA")
    heartbeat_interval_s: int = Field(default=300, alias="CHARGENET_HEARTBEAT_INTERVAL")
    # A station that answered BootNotification with Pending retries after this many seconds.
    pending_retry_interval_s: int = Field(default=60, alias="CHARGENET_PENDING_INTERVAL")
    command_timeout_s: float = Field(default=30.0, alias="CHARGENET_COMMAND_TIMEOUT")
    message_log_retention_days: int = Field(default=14, alias="CHARGENET_MESSAGE_LOG_RETENTION_DAYS")
    # Bootstrap operator credential until accounts exist; `serve` generates one if unset.
    admin_token: str | None = Field(default=None, alias="CHARGENET_ADMIN_TOKEN")
    # How long startCharging waits for the station to actually start a transaction.
    start_wait_s: float = Field(default=20.0, alias="CHARGENET_START_WAIT")
    log_level: str = Field(default="INFO", alias="CHARGENET_LOG_LEVEL")

    # --- accounts and tokens ---
    # Private signing keys as a JSON Web Key Set (or a file holding one). The newest key (last
    # in the set) signs; every key in the set verifies, so rotation is: append a key, deploy,
    # drop the old one after the access-token lifetime. Unset: an ephemeral key per process.
    jwt_keys: str | None = Field(default=None, alias="CHARGENET_JWT_KEYS")
    jwt_keys_file: str | None = Field(default=None, alias="CHARGENET_JWT_KEYS_FILE")
    # HMAC key of download links (receipts, invoices, report exports). Unset: a random key per
    # process, so links die with it and do not work across replicas; set it in production.
    document_secret: str | None = Field(default=None, alias="CHARGENET_DOCUMENT_SECRET")
    jwt_issuer: str = Field(default="chargenet", alias="CHARGENET_JWT_ISSUER")
    jwt_audience: str = Field(default="chargenet-api", alias="CHARGENET_JWT_AUDIENCE")
    access_token_ttl_s: int = Field(default=600, ge=30, le=900, alias="CHARGENET_ACCESS_TOKEN_TTL")
    # A device that does not come back for this long must sign in again.
    session_ttl_days: int = Field(default=60, ge=1, le=365, alias="CHARGENET_SESSION_TTL_DAYS")
    # Links in emails (verification, reset, invitations) point here; the app handles the token.
    app_url: str = Field(default="http://127.0.0.1:8000", alias="CHARGENET_APP_URL")
    # Where stations reach the API to upload diagnostics and logs (the URL sent in GetDiagnostics
    # / GetLog). Unset: this API's own host and port, right for a single machine only.
    upload_base_url: str | None = Field(default=None, alias="CHARGENET_UPLOAD_BASE_URL")
    # Email: "log" keeps messages in memory and logs them (development); "smtp" sends them.
    email_sender: str = Field(default="log", pattern="^(log|smtp)$", alias="CHARGENET_EMAIL_SENDER")
    email_from: str = Field(default="ChargeNet <no-reply@chargenet.local>", alias="CHARGENET_EMAIL_FROM")
    smtp_host: str = Field(default="127.0.0.1", alias="CHARGENET_SMTP_HOST")
    smtp_port: int = Field(default=587, alias="CHARGENET_SMTP_PORT")
    smtp_username: str | None = Field(default=None, alias="CHARGENET_SMTP_USERNAME")
    smtp_password: str | None = Field(default=None, alias="CHARGENET_SMTP_PASSWORD")
    smtp_starttls: bool = Field(default=True, alias="CHARGENET_SMTP_STARTTLS")
    # Sign in with Google / Apple: the app's OAuth client ids (comma-separated) are the
    # accepted `aud` values; empty disables the provider.
    google_client_ids: str = Field(default="", alias="CHARGENET_GOOGLE_CLIENT_IDS")
    google_jwks_url: str = Field(
        default="https://www.googleapis.com/oauth2/v3/certs", alias="CHARGENET_GOOGLE_JWKS_URL"
    )
    apple_client_ids: str = Field(default="", alias="CHARGENET_APPLE_CLIENT_IDS")
    apple_jwks_url: str = Field(
        default="https://appleid.apple.com/auth/keys", alias="CHARGENET_APPLE_JWKS_URL"
    )
    # Behind a reverse proxy, the client address comes from X-Forwarded-For (rate limits, audit).
    trust_proxy_headers: bool = Field(default=False, alias="CHARGENET_TRUST_PROXY_HEADERS")
    # Production turns these off: no schema discovery, no in-browser IDE.
    graphql_introspection: bool = Field(default=True, alias="CHARGENET_GRAPHQL_INTROSPECTION")
    graphiql: bool = Field(default=True, alias="CHARGENET_GRAPHIQL")

    # --- payments (Stripe) ---
    # Without an API key billing is disabled: everything else runs, and payment calls fail with
    # BILLING_DISABLED. Secrets come from the environment or a secret store, never the repo.
    stripe_api_key: str | None = Field(default=None, alias="CHARGENET_STRIPE_API_KEY")
    # Signing secret of the webhook endpoint (whsec_…); unset: /webhooks/stripe answers 503.
    stripe_webhook_secret: str | None = Field(default=None, alias="CHARGENET_STRIPE_WEBHOOK_SECRET")
    # Another API host (tests point the SDK at a local server that speaks Stripe's format).
    stripe_api_base: str | None = Field(default=None, alias="CHARGENET_STRIPE_API_BASE")
    # Per attempt; a hold sits between the driver's tap and the charger starting, so seconds.
    stripe_timeout_s: float = Field(default=10.0, gt=0, le=80, alias="CHARGENET_STRIPE_TIMEOUT")
    stripe_connect_timeout_s: float = Field(
        default=3.0, gt=0, le=30, alias="CHARGENET_STRIPE_CONNECT_TIMEOUT"
    )
    # The SDK retries connection errors, 409 and 5xx with the same idempotency key.
    stripe_max_network_retries: int = Field(default=2, ge=0, le=5, alias="CHARGENET_STRIPE_MAX_RETRIES")
    # Signed webhooks older than this are refused (replay protection); Stripe's own default.
    stripe_webhook_tolerance_s: int = Field(
        default=300, ge=30, le=3600, alias="CHARGENET_STRIPE_WEBHOOK_TOLERANCE"
    )
    # Idempotency keys start with this: two deployments (staging and production, or a dev
    # database that was reset) sharing one Stripe account must set different values, or
    # "session:1:hold" of one would replay the other's.
    stripe_idempotency_prefix: str = Field(
        default="chargenet", min_length=1, max_length=40, alias="CHARGENET_STRIPE_IDEMPOTENCY_PREFIX"
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
