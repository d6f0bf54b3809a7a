"""What a gateway keeps in memory about a connected station, to answer without a read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from schema.events import ConnectorState, StationStatusChanged


@dataclass(slots=True)
class ConnectorView:
    connector_id: int
    status: str = "Unknown"
    error_code: str = "NoError"
    status_since: datetime | None = None


@dataclass(slots=True)
class ActiveTransaction:
    transaction_id: int
    connector_id: int
    id_tag: str | None
    started_at: datetime
    meter_start_wh: int
    energy_wh: int = 0
    power_w: int | None = None
    soc_percent: int | None = None
    last_sample_at: datetime | None = None
    # OCPP 2.0.1: the id the station chose for it (1.6 stations use `transaction_id` itself).
    station_transaction_id: str | None = None


@dataclass(slots=True)
class StationContext:
    """A connected station: identity from the database plus the live view the gateway keeps."""

    station_id: int
    charge_point_id: str
    location_id: int | None
    registration_status: str
    heartbeat_interval_s: int
    status: str = "Unknown"
    error_code: str = "NoError"
    online: bool = True
    # time.monotonic() of the database read this view started from (0: built without one).
    loaded_at: float = 0.0
    firmware_version: str | None = None
    # OCPP 1.6 SupportedFeatureProfiles; None until the station's configuration has been read.
    feature_profiles: frozenset[str] | None = None
    configuration_read_at: datetime | None = None
    configuration_firmware: str | None = None
    connectors: dict[int, ConnectorView] = field(default_factory=dict)
    transactions: dict[int, ActiveTransaction] = field(default_factory=dict)

    def status_event(
        self, at: datetime, *, changed_connector_id: int | None = None, reason: str = "status"
    ) -> StationStatusChanged:
        return StationStatusChanged(
            station_id=self.station_id,
            charge_point_id=self.charge_point_id,
            location_id=self.location_id,
            at=at,
            online=self.online,
            station_status=self.status,
            station_error_code=self.error_code,
            connectors=tuple(
                ConnectorState(c.connector_id, c.status, c.error_code, c.status_since)
                for c in sorted(self.connectors.values(), key=lambda c: c.connector_id)
            ),
            changed_connector_id=changed_connector_id,
            reason=reason,
        )
