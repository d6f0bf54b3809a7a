"""Settings of the station health score and its job (environment or `.env`,
CHARGENET_HEALTH_*), turned into the pure `HealthPolicy`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.service.health import FactorKind, HealthPolicy


class HealthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_prefix="CHARGENET_HEALTH_")

    # A week has every weekday's traffic in it; the score moves over hours, not minutes, so an
    # hourly run is early enough and costs one grouped query per input.
    interval_s: float = Field(default=3_600.0, gt=0)
    window_days: int = Field(default=7, ge=1, le=14)  # the message log keeps 14 days of boots
    threshold: int = Field(default=60, ge=0, le=100)
    hysteresis: int = Field(default=10, ge=0, le=100)
    weight_faults: int = Field(default=30, ge=0)
    weight_failed_sessions: int = Field(default=30, ge=0)
    weight_reboots: int = Field(default=15, ge=0)
    weight_heartbeat_gaps: int = Field(default=15, ge=0)
    weight_low_power: int = Field(default=10, ge=0)
    # Read when each session ends (its power at low SoC is kept then), not by the job.
    low_soc_percent: float = Field(default=50.0, gt=0, le=100)
    low_power_fraction: float = Field(default=0.25, gt=0, le=1)

    def policy(self) -> HealthPolicy:
        return HealthPolicy(
            window_days=self.window_days,
            threshold=self.threshold,
            hysteresis=self.hysteresis,
            weights={
                FactorKind.FAULTS: self.weight_faults,
                FactorKind.FAILED_SESSIONS: self.weight_failed_sessions,
                FactorKind.REBOOTS: self.weight_reboots,
                FactorKind.HEARTBEAT_GAPS: self.weight_heartbeat_gaps,
                FactorKind.LOW_POWER: self.weight_low_power,
            },
            low_power_fraction=self.low_power_fraction,
        )
