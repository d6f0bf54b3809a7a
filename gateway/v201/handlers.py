"""Every message an OCPP 2.0.1 charging station sends, answered through version-neutral services.

Handlers parse and map; the rules live in gateway/stations.py, status.py, transactions.py and
device_model.py, the 2.0.1 mappings in gateway/v201/ (evse.py: EVSE and connector numbers;
transaction_events.py: TransactionEvent; variables.py: configuration keys; commands.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.device_model import (
    finish_report,
    read_only,
    record_report_part,
    record_variable_change,
    report_rows,
)
from gateway.meter import BadSample
from gateway.ocppj import Handler, OcppError, OcppJSession
from gateway.state import StationContext
from gateway.station_setup import configuration_is_stale
from gateway.station_transactions import station_transaction_id
from gateway.stations import BootInfo, record_boot, record_station_report
from gateway.status import StatusReport, record_status
from gateway.transactions import authorize, record_meter_values, token_types
from gateway.v201 import commands, evse
from gateway.v201.transaction_events import TransactionEvents, id_token, id_token_info, timestamp
from gateway.v201.variables import address_of
from gateway.writer import Writer
from schema.commands import (
    ChangeConfiguration,
    Command,
    CommandReply,
    GetBaseReport,
    GetConfiguration,
    GetTransactionStatus,
    RemoteStart,
    RemoteStop,
    ReserveNow,
    SendLocalList,
    SetChargingProfile,
)
from schema.enums import OcppVersion
from schema.errors import CommandTimeout
from schema.timeutil import to_ocpp, utcnow

log = logging.getLogger(__name__)

# Charger-initiated 2.0.1 messages this gateway does not take yet (ISO 15118 certificates,
# display messages, monitoring, charging limits from other sources): NotSupported, not
# NotImplemented, since they are real 2.0.1 messages.
NOT_SUPPORTED = frozenset(
    {
        "ClearedChargingLimit",
        "Get15118EVCertificate",
        "GetCertificateStatus",
        "NotifyChargingLimit",
        "NotifyCustomerInformation",
        "NotifyDisplayMessages",
        "NotifyEVChargingNeeds",
        "NotifyEVChargingSchedule",
        "NotifyMonitoringReport",
        "PublishFirmwareStatusNotification",
        "ReportChargingProfiles",
        "SignCertificate",
    }
)

ACTIONS = (
    "BootNotification",
    "Heartbeat",
    "StatusNotification",
    "Authorize",
    "TransactionEvent",
    "MeterValues",
    "NotifyReport",
    "NotifyEvent",
    "SecurityEventNotification",
    "FirmwareStatusNotification",
    "LogStatusNotification",
    "ReservationStatusUpdate",
    "DataTransfer",
)

# A full inventory can be hundreds of variables in many parts; the read after boot must not
# hold the station, and an operator's full read waits this long at most for the last part.
REPORT_REQUEST_TIMEOUT_S = 30.0
FULL_INVENTORY = "FullInventory"
# 2.0.1 LogStatus words that 1.6's DiagnosticsStatus spells differently (the rest are the same
# or have no 1.6 word and are kept).
LOG_STATUSES = {"UploadFailure": "UploadFailed"}
# ChargeNet's IdToken.token_type → 2.0.1 IdTokenEnumType (RFID cards are ISO 14443 cards).
TOKEN_TYPES = {"RFID": "ISO14443"}
ID_TOKEN_TYPES_201 = frozenset(
    {"Central", "eMAID", "ISO14443", "ISO15693", "KeyCode", "Local", "MacAddress", "NoAuthorization"}
)
# requestId / remoteStartId: unique per process and, starting from the clock, across restarts.
_REQUEST_IDS = itertools.count(int(time.time()) % 1_000_000_000)


def _token_type(issued_as: str | None) -> str:
    if issued_as in ID_TOKEN_TYPES_201:
        return issued_as
    return TOKEN_TYPES.get(issued_as or "", commands.DEFAULT_TOKEN_TYPE)


@dataclass(slots=True)
class Report:
    """A GetBaseReport ChargeNet sent, while its NotifyReport parts come in."""

    base: str
    started_at: datetime
    next_seq: int = 0
    complete: bool = True  # no part missing so far
    done: asyncio.Future[list[dict[str, Any]]] | None = field(default=None)


class ChargePoint201:
    """The 2.0.1 side of one connected station."""

    version = OcppVersion.V201
    schema_package = "v201"

    def __init__(
        self, ctx: StationContext, engine: AsyncEngine, writer: Writer, *, boot_retry_interval_s: int = 60
    ) -> None:
        self.ctx = ctx
        self.boot_retry_interval_s = boot_retry_interval_s
        self.engine = engine
        self.writer = writer
        # Set by the server once the session exists (commands and post-boot reads use it).
        self.session: OcppJSession | None = None
        self.evses = evse.EvseStatuses()
        self.transactions = TransactionEvents(ctx, engine, writer)
        self._reports: dict[int, Report] = {}

    def handlers(self) -> dict[str, Handler]:
        return {
            "BootNotification": self.boot_notification,
            "Heartbeat": self.heartbeat,
            "StatusNotification": self.status_notification,
            "Authorize": self.authorize,
            "TransactionEvent": self.transactions.handle,
            "MeterValues": self.meter_values,
            "NotifyReport": self.notify_report,
            "NotifyEvent": self.notify_event,
            "SecurityEventNotification": self.security_event,
            "FirmwareStatusNotification": self.firmware_status,
            "LogStatusNotification": self.log_status,
            "ReservationStatusUpdate": self.reservation_status,
            "DataTransfer": self.data_transfer,
        }

    # -- commands ---------------------------------------------------------------------------

    async def execute(self, command: Command, timeout: float) -> CommandReply:
        """A command from the bus, in 2.0.1 words; the answer in neutral ones."""
        assert self.session is not None
        if isinstance(command, GetConfiguration) and not command.keys:
            return await self._full_configuration(timeout)
        refs = await self._refs(command)
        if isinstance(command, RemoteStop) and refs.transaction is None:
            # 2.0.1 stops by the station's own id: a session it never reported has none.
            return CommandReply("Rejected", {"status": "Rejected", "reason": "UnknownTransaction"})
        call = commands.to_call(command, refs)
        result: dict[str, Any] = {}
        if call.action is not None:
            if isinstance(command, GetBaseReport):
                self._expect_report(refs.request_id, command.report)
            try:
                result = await self.session.call(call.action, call.payload, timeout=timeout)
            finally:
                if isinstance(command, GetBaseReport) and result.get("status") != "Accepted":
                    self._reports.pop(refs.request_id, None)
        reply = commands.to_reply(command, call, refs, result)
        if isinstance(command, ChangeConfiguration) and reply.status in ("Accepted", "RebootRequired"):
            [address] = call.keys
            await record_variable_change(self.writer, self.ctx, address, command.value)
        elif isinstance(command, GetConfiguration) and reply.detail["configuration"]:
            fixed = await read_only(self.engine, self.ctx)
            asked = {key: address for address, key in call.keys.items()}
            for entry in reply.detail["configuration"]:
                entry["readonly"] = asked.get(entry["key"]) in fixed
        return reply

    async def _refs(self, command: Command) -> commands.Refs:
        transaction_id: int | None = None
        if isinstance(command, RemoteStop | GetTransactionStatus):
            transaction_id = command.transaction_id
        elif isinstance(command, SetChargingProfile):
            transaction_id = command.profile.transaction_id
        tokens: list[str] = []
        if isinstance(command, RemoteStart):
            tokens = [command.id_tag]
        elif isinstance(command, ReserveNow):
            tokens = [command.id_tag, *filter(None, [command.parent_id_tag])]
        elif isinstance(command, SendLocalList):
            tokens = [t for e in command.entries for t in (e.id_tag, e.parent_id_tag) if t]
        issued = await token_types(self.engine, tokens)
        return commands.Refs(
            request_id=next(_REQUEST_IDS),
            transaction=None
            if transaction_id is None
            else await station_transaction_id(self.engine, self.ctx, transaction_id),
            token_types={t: _token_type(issued.get(t)) for t in tokens},
        )

    def _expect_report(self, request_id: int, base: str, *, wait: bool = False) -> Report:
        done = asyncio.get_running_loop().create_future() if wait else None
        report = Report(base=base, started_at=utcnow(), done=done)
        self._reports[request_id] = report
        return report

    async def _full_configuration(self, timeout: float) -> CommandReply:
        """GetConfiguration of everything: a full device-model report, awaited to its last part."""
        assert self.session is not None
        request_id = next(_REQUEST_IDS)
        report = self._expect_report(request_id, FULL_INVENTORY, wait=True)
        assert report.done is not None
        deadline = time.monotonic() + timeout
        try:
            result = await self.session.call(
                "GetBaseReport", {"requestId": request_id, "reportBase": FULL_INVENTORY}, timeout=timeout
            )
            if result["status"] != "Accepted":
                return CommandReply(result["status"], {"configuration": [], "unknown": []})
            try:
                entries = await asyncio.wait_for(report.done, max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise CommandTimeout(
                    f"GetBaseReport to {self.ctx.charge_point_id}: the report did not end in {timeout}s"
                ) from None
        finally:
            self._reports.pop(request_id, None)
        return CommandReply("Accepted", {"configuration": entries, "unknown": []})

    async def read_device_model(self) -> None:
        """After boot: the whole device model, stored as its parts arrive."""
        assert self.session is not None
        request_id = next(_REQUEST_IDS)
        self._expect_report(request_id, FULL_INVENTORY)
        try:
            result = await self.session.call(
                "GetBaseReport",
                {"requestId": request_id, "reportBase": FULL_INVENTORY},
                timeout=REPORT_REQUEST_TIMEOUT_S,
            )
        except BaseException:
            self._reports.pop(request_id, None)
            raise
        if result["status"] != "Accepted":
            self._reports.pop(request_id, None)
            log.info("%s declined its device-model report: %s", self.ctx.charge_point_id, result["status"])

    # -- charger → CSMS ---------------------------------------------------------------------

    async def boot_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        station = p["chargingStation"]
        status, interval = await record_boot(
            self.writer,
            self.ctx,
            BootInfo(
                vendor=station["vendorName"],
                model=station["model"],
                serial_number=station.get("serialNumber"),
                firmware_version=station.get("firmwareVersion"),
                ocpp_version=self.version.value,
                reason=p["reason"],
            ),
            retry_interval_s=self.boot_retry_interval_s,
        )
        if status == "Accepted" and self.session is not None and configuration_is_stale(self.ctx, utcnow()):
            self.session.after_reply(self.read_device_model)
        return {"status": status, "currentTime": to_ocpp(utcnow()), "interval": interval}

    async def heartbeat(self, _p: dict[str, Any]) -> dict[str, Any]:
        return {"currentTime": to_ocpp(utcnow())}

    async def status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        evse_id, connector_id = p["evseId"], p["connectorId"]
        if evse_id < 0 or connector_id < 0:
            raise OcppError(
                "PropertyConstraintViolation", f"evse {evse_id} connector {connector_id} out of range"
            )
        folded = self.evses.report(evse_id, connector_id, p["connectorStatus"])
        status = evse.chargenet_status(self.ctx, evse_id, folded)
        await record_status(
            self.writer,
            self.ctx,
            StatusReport(
                connector_id=evse_id,
                status=status,
                error_code=evse.error_code(status),
                timestamp=timestamp(p["timestamp"]),
            ),
        )
        return {}

    async def authorize(self, p: dict[str, Any]) -> dict[str, Any]:
        token = id_token(p["idToken"])
        if token is None:  # NoAuthorization: the station charges without a token
            return {"idTokenInfo": {"status": "Accepted"}}
        return {"idTokenInfo": id_token_info(await authorize(self.engine, token))}

    async def meter_values(self, p: dict[str, Any]) -> dict[str, Any]:
        """Readings outside a session (those of a session come in TransactionEvent)."""
        if p["evseId"] < 0:
            raise OcppError("PropertyConstraintViolation", f"evseId {p['evseId']} out of range")
        try:
            await record_meter_values(self.writer, self.ctx, p["evseId"], None, p["meterValue"])
        except BadSample as exc:
            raise OcppError("PropertyConstraintViolation", str(exc)) from None
        return {}

    async def notify_report(self, p: dict[str, Any]) -> dict[str, Any]:
        request_id, seq_no = p["requestId"], p["seqNo"]
        rows = report_rows(self.ctx.station_id, p.get("reportData") or [], utcnow())
        await record_report_part(self.writer, rows)
        report = self._reports.get(request_id)
        if report is not None:
            if seq_no != report.next_seq:
                log.warning(
                    "%s: report %d part %d after %d",
                    self.ctx.charge_point_id,
                    request_id,
                    seq_no,
                    report.next_seq,
                )
                report.complete = report.complete and seq_no < report.next_seq  # a resend is harmless
            report.next_seq = max(report.next_seq, seq_no + 1)
        if not p.get("tbc", False):
            full = report is not None and report.base == FULL_INVENTORY and report.complete
            entries = await finish_report(
                self.writer, self.ctx, complete_since=report.started_at if full and report else None
            )
            self._reports.pop(request_id, None)
            if report is not None and report.done is not None and not report.done.done():
                report.done.set_result(entries)
        return {}

    async def notify_event(self, p: dict[str, Any]) -> dict[str, Any]:
        events = [
            {
                "event_id": e["eventId"],
                "timestamp": e["timestamp"],
                "trigger": e["trigger"],
                "key": address_of(e["component"], e["variable"], None).key,
                # Detection reads these rather than parsing the key.
                "component": e["component"]["name"],
                "variable": e["variable"]["name"],
                "evse_id": (e["component"].get("evse") or {}).get("id"),
                "actual_value": e["actualValue"],
                "notification_type": e["eventNotificationType"],
                **{
                    name: e[k]
                    for k, name in (
                        ("cleared", "cleared"),
                        ("techCode", "tech_code"),
                        ("techInfo", "tech_info"),
                        ("transactionId", "station_transaction_id"),
                    )
                    if k in e
                },
            }
            for e in p["eventData"]
        ]
        detail = {"seq_no": p["seqNo"], "tbc": p.get("tbc", False), "events": events}
        await record_station_report(self.writer, self.ctx, "NotifyEvent", detail)
        return {}

    async def security_event(self, p: dict[str, Any]) -> dict[str, Any]:
        detail = {"type": p["type"], "timestamp": p["timestamp"]}
        if "techInfo" in p:
            detail["tech_info"] = p["techInfo"]
        await record_station_report(self.writer, self.ctx, "SecurityEventNotification", detail)
        return {}

    async def firmware_status(self, p: dict[str, Any]) -> dict[str, Any]:
        await record_station_report(
            self.writer,
            self.ctx,
            "FirmwareStatusNotification",
            {"status": p["status"], "request_id": p.get("requestId")},
            firmware_status=p["status"],
        )
        return {}

    async def log_status(self, p: dict[str, Any]) -> dict[str, Any]:
        """2.0.1's log upload progress is 1.6's diagnostics status."""
        await record_station_report(
            self.writer,
            self.ctx,
            "LogStatusNotification",
            {"status": p["status"], "request_id": p.get("requestId")},
            diagnostics_status=LOG_STATUSES.get(p["status"], p["status"]),
        )
        return {}

    async def reservation_status(self, p: dict[str, Any]) -> dict[str, Any]:
        await record_station_report(
            self.writer,
            self.ctx,
            "ReservationStatusUpdate",
            {"reservation_id": p["reservationId"], "status": p["reservationUpdateStatus"]},
        )
        return {}

    async def data_transfer(self, p: dict[str, Any]) -> dict[str, Any]:
        # As for 1.6: no vendor extension is registered, so UnknownVendorId; still announced.
        detail = {"vendorId": p["vendorId"], "messageId": p.get("messageId")}
        await record_station_report(self.writer, self.ctx, "DataTransfer", detail)
        return {"status": "UnknownVendorId"}
