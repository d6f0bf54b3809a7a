"""Every message an OCPP 1.6J charge point sends, answered through version-neutral services.

Handlers parse and map; the rules live in gateway/stations.py, status.py and transactions.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.meter import BadSample
from gateway.ocppj import Handler, OcppError, OcppJSession
from gateway.state import StationContext
from gateway.station_setup import configuration_is_stale, record_configuration, record_configuration_change
from gateway.stations import BootInfo, record_boot, record_station_report
from gateway.status import StatusReport, record_status
from gateway.transactions import (
    StartRequest,
    StopRequest,
    authorize,
    record_meter_values,
    start_transaction,
    stop_transaction,
)
from gateway.v16 import commands
from gateway.writer import Writer
from schema.commands import ChangeConfiguration, Command, CommandReply, GetConfiguration
from schema.enums import OcppVersion
from schema.errors import CommandFailed
from schema.timeutil import parse_ocpp_datetime, to_ocpp, utcnow

# Charger-initiated actions of the 1.6 security whitepaper that this gateway does not take yet:
# they get NotSupported (recognised) rather than NotImplemented (unknown).
NOT_SUPPORTED = frozenset(
    {
        "SecurityEventNotification",
        "SignCertificate",
        "LogStatusNotification",
        "SignedFirmwareStatusNotification",
    }
)

# A configuration read after boot may be long (a hundred keys); it must not hold the station.
CONFIGURATION_READ_TIMEOUT_S = 30.0

ACTIONS = (
    "BootNotification",
    "Heartbeat",
    "StatusNotification",
    "Authorize",
    "StartTransaction",
    "MeterValues",
    "StopTransaction",
    "DataTransfer",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
)


def _ts(value: str) -> datetime:
    try:
        return parse_ocpp_datetime(value)
    except ValueError:
        raise OcppError("PropertyConstraintViolation", f"bad timestamp {value[:40]!r}") from None


def _connector(ctx: StationContext, connector_id: int, *, allow_zero: bool) -> int:
    if connector_id < 0 or (connector_id == 0 and not allow_zero):
        raise OcppError("PropertyConstraintViolation", f"connectorId {connector_id} out of range")
    return connector_id


class ChargePoint16:
    """The 1.6 side of one connected station."""

    version = OcppVersion.V16
    schema_package = "v16"

    def __init__(
        self, ctx: StationContext, engine: AsyncEngine, writer: Writer, *, boot_retry_interval_s: int = 60
    ) -> None:
        self.ctx = ctx
        self.boot_retry_interval_s = boot_retry_interval_s
        self.engine = engine
        self.writer = writer
        # Set by the server once the session exists (commands and post-boot reads use it).
        self.session: OcppJSession | None = None

    async def execute(self, command: Command, timeout: float) -> CommandReply:
        """A command from the bus: refused at once when the station lacks its feature profile."""
        assert self.session is not None
        action, payload = commands.to_call(command)
        profile = commands.PROFILE_OF_ACTION.get(action)
        features = self.ctx.feature_profiles
        if features is not None and profile is not None and profile not in features:
            raise CommandFailed(
                f"{self.ctx.charge_point_id} does not support {profile} ({action})",
                station_code="NotSupported",
            )
        reply = commands.to_reply(command, await self.session.call(action, payload, timeout=timeout))
        if isinstance(command, ChangeConfiguration) and reply.status in ("Accepted", "RebootRequired"):
            await record_configuration_change(self.writer, self.ctx, command.key, command.value)
        elif isinstance(command, GetConfiguration) and not command.keys:
            await record_configuration(self.writer, self.ctx, reply.detail["configuration"])
        return reply

    async def read_configuration(self) -> None:
        """After boot: the whole configuration, stored, and the feature profiles kept."""
        assert self.session is not None
        result = await self.session.call("GetConfiguration", {}, timeout=CONFIGURATION_READ_TIMEOUT_S)
        reply = commands.to_reply(GetConfiguration(), result)
        await record_configuration(self.writer, self.ctx, reply.detail["configuration"])

    def handlers(self) -> dict[str, Handler]:
        return {
            "BootNotification": self.boot_notification,
            "Heartbeat": self.heartbeat,
            "StatusNotification": self.status_notification,
            "Authorize": self.authorize,
            "StartTransaction": self.start_transaction,
            "MeterValues": self.meter_values,
            "StopTransaction": self.stop_transaction,
            "DataTransfer": self.data_transfer,
            "DiagnosticsStatusNotification": self.diagnostics_status,
            "FirmwareStatusNotification": self.firmware_status,
        }

    async def boot_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        status, interval = await record_boot(
            self.writer,
            self.ctx,
            BootInfo(
                vendor=p["chargePointVendor"],
                model=p["chargePointModel"],
                serial_number=p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber"),
                firmware_version=p.get("firmwareVersion"),
                ocpp_version=self.version.value,
            ),
            retry_interval_s=self.boot_retry_interval_s,
        )
        if status == "Accepted" and self.session is not None and configuration_is_stale(self.ctx, utcnow()):
            self.session.after_reply(self.read_configuration)
        return {"status": status, "currentTime": to_ocpp(utcnow()), "interval": interval}

    async def heartbeat(self, _p: dict[str, Any]) -> dict[str, Any]:
        return {"currentTime": to_ocpp(utcnow())}

    async def status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        await record_status(
            self.writer,
            self.ctx,
            StatusReport(
                connector_id=_connector(self.ctx, p["connectorId"], allow_zero=True),
                status=p["status"],
                error_code=p["errorCode"],
                info=p.get("info"),
                vendor_error_code=p.get("vendorErrorCode"),
                timestamp=_ts(p["timestamp"]) if "timestamp" in p else None,
            ),
        )
        return {}

    async def authorize(self, p: dict[str, Any]) -> dict[str, Any]:
        info = await authorize(self.engine, p["idTag"])
        return {"idTagInfo": info.to_ocpp()}

    async def start_transaction(self, p: dict[str, Any]) -> dict[str, Any]:
        tx_id, info = await start_transaction(
            self.engine,
            self.writer,
            self.ctx,
            StartRequest(
                connector_id=_connector(self.ctx, p["connectorId"], allow_zero=False),
                id_tag=p["idTag"],
                meter_start_wh=p["meterStart"],
                timestamp=_ts(p["timestamp"]),
                reservation_id=p.get("reservationId"),
            ),
        )
        return {"transactionId": tx_id, "idTagInfo": info.to_ocpp()}

    async def meter_values(self, p: dict[str, Any]) -> dict[str, Any]:
        try:
            await record_meter_values(
                self.writer,
                self.ctx,
                _connector(self.ctx, p["connectorId"], allow_zero=True),
                p.get("transactionId"),
                p["meterValue"],
            )
        except BadSample as exc:
            raise OcppError("PropertyConstraintViolation", str(exc)) from None
        return {}

    async def stop_transaction(self, p: dict[str, Any]) -> dict[str, Any]:
        try:
            info = await stop_transaction(
                self.engine,
                self.writer,
                self.ctx,
                StopRequest(
                    transaction_id=p["transactionId"],
                    meter_stop_wh=p["meterStop"],
                    timestamp=_ts(p["timestamp"]),
                    id_tag=p.get("idTag"),
                    reason=p.get("reason"),
                    transaction_data=p.get("transactionData"),
                ),
            )
        except BadSample as exc:
            raise OcppError("PropertyConstraintViolation", str(exc)) from None
        return {"idTagInfo": info.to_ocpp()} if info is not None else {}

    async def data_transfer(self, p: dict[str, Any]) -> dict[str, Any]:
        # No vendor extension is registered yet: the spec's answer is UnknownVendorId. The
        # message is logged and announced so an integration can still see it.
        await record_station_report(
            self.writer,
            self.ctx,
            "DataTransfer",
            {
                "vendorId": p["vendorId"],
                "messageId": p.get("messageId"),
            },
        )
        return {"status": "UnknownVendorId"}

    async def diagnostics_status(self, p: dict[str, Any]) -> dict[str, Any]:
        await record_station_report(
            self.writer,
            self.ctx,
            "DiagnosticsStatusNotification",
            {"status": p["status"]},
            diagnostics_status=p["status"],
        )
        return {}

    async def firmware_status(self, p: dict[str, Any]) -> dict[str, Any]:
        await record_station_report(
            self.writer,
            self.ctx,
            "FirmwareStatusNotification",
            {"status": p["status"]},
            firmware_status=p["status"],
        )
        return {}
