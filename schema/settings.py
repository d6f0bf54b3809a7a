"""Runtime settings, read from flags and the environment (prefix-free names, `.env` allowed).

Secrets and deployment choices come from here, never from the repository.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./chargenet.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_prefix="")

    database_url: str = Field(default=DEFAULT_SQLITE_URL, alias="DATABASE_URL")
    api_host: str = Field(default="127.0.0.1", alias="CHARGENET_API_HOST")
    api_port: int = Field(default=8000, alias="CHARGENET_API_PORT")
    gateway_host: str = Field(default="127.0.0.1", alias="CHARGENET_GATEWAY_HOST")
    gateway_port: int = Field(default=9000, alias="CHARGENET_GATEWAY_PORT")
    demo: bool = Field(default=True, alias="CHARGENET_DEMO")
    simulated_chargers: int = Field(default=10, alias="CHARGENET_SIMULATED_CHARGERS")
    # Unknown charge point ids are refused unless this is on; the demo turns it on so the
    # simulator can add stations beyond the seeded ten.
    auto_register: bool = Field(default=False, alias="CHARGENET_AUTO_REGISTER")
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
