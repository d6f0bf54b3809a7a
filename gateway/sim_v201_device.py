"""The simulated 2.0.1 charger's device model: components, variables and their attributes
(GetVariables, SetVariables, GetBaseReport → NotifyReport).

Settings that 1.6 also has live in the charger's ConfigStore (gateway/sim_config.py) under
their 1.6 key, and the variable reads and writes them there (`alias`): the 1.6 helpers the
2.0.1 charger reuses (local list, reservations, authorization) keep reading the same store.
SecurityCtrlr.BasicAuthPassword is write-only, as 2.0.1 A01 requires: SetVariables takes it,
GetVariables answers Rejected, reports list it without a value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from gateway.sim_config import (
    CHARGE_PROFILE_MAX_STACK_LEVEL,
    CHARGING_SCHEDULE_MAX_PERIODS,
    MAX_CHARGING_PROFILES_INSTALLED,
    is_bool,
)

if TYPE_CHECKING:
    from gateway.sim_v201 import SimCharger201

READ_ONLY, READ_WRITE, WRITE_ONLY = "ReadOnly", "ReadWrite", "WriteOnly"
ACTUAL = "Actual"
REPORT_PARTS = 3  # a full report comes in up to this many NotifyReport messages
ITEMS_PER_MESSAGE = 50  # DeviceDataCtrlr.ItemsPerMessage: GetVariables / SetVariables items
MAX_VALUE_LENGTH = 1000  # SetVariableData.attributeValue (2.0.1: 1000, its reportable value 2500)


@dataclass
class Variable:
    component: str
    name: str
    value: str = ""
    mutability: str = READ_WRITE
    data_type: str = "string"
    unit: str | None = None
    evse: int | None = None
    connector: int | None = None
    instance: str | None = None
    # A 1.6 ConfigStore key that holds the value (and checks a new one).
    alias: str | None = None
    # A value the charger computes when asked (AvailabilityState).
    read: Callable[[], str] | None = None
    check: Callable[[str], bool] | None = None
    # A 1.6 ConfigStore key whose presence means the charger has this variable's feature.
    requires: str | None = None

    def component_payload(self) -> dict[str, Any]:
        component: dict[str, Any] = {"name": self.component}
        if self.evse is not None:
            component["evse"] = {"id": self.evse}
            if self.connector is not None:
                component["evse"]["connectorId"] = self.connector
        return component

    def variable_payload(self) -> dict[str, Any]:
        return {"name": self.name, **({"instance": self.instance} if self.instance else {})}


def _integer(value: str) -> bool:
    try:
        return int(value) >= 0
    except ValueError:
        return False


class DeviceModel:
    """One charger's variables, looked up as a 2.0.1 message names them."""

    def __init__(self, charger: SimCharger201) -> None:
        self.cp = charger
        # A setting of a 1.6 feature profile the charger lacks is not there in 2.0.1 either.
        self.variables = [
            v
            for v in self._variables()
            if (v.alias is None or v.alias in charger.config)
            and (v.requires is None or v.requires in charger.config)
        ]

    def _variables(self) -> Iterator[Variable]:
        cp, cfg = self.cp, self.cp.cfg
        yield Variable("ChargingStation", "Model", cfg.model, READ_ONLY)
        yield Variable("ChargingStation", "VendorName", cfg.vendor, READ_ONLY)
        yield Variable(
            "ChargingStation", "AvailabilityState", mutability=READ_ONLY, read=partial(cp.availability, 0)
        )
        yield Variable(
            "OCPPCommCtrlr", "HeartbeatInterval", data_type="integer", unit="s", alias="HeartbeatInterval"
        )
        yield Variable(
            "OCPPCommCtrlr",
            "MessageTimeout",
            "30",
            data_type="integer",
            unit="s",
            instance="Default",
            check=_integer,
        )
        yield Variable(
            "OCPPCommCtrlr",
            "MessageAttempts",
            instance="TransactionEvent",
            data_type="integer",
            alias="TransactionMessageAttempts",
        )
        yield Variable(
            "OCPPCommCtrlr",
            "MessageAttemptInterval",
            instance="TransactionEvent",
            data_type="integer",
            unit="s",
            alias="TransactionMessageRetryInterval",
        )
        yield Variable("OCPPCommCtrlr", "ResetRetries", data_type="integer", alias="ResetRetries")
        yield Variable("SecurityCtrlr", "BasicAuthPassword", mutability=WRITE_ONLY, alias="AuthorizationKey")
        yield Variable("SecurityCtrlr", "Identity", cfg.charge_point_id, READ_ONLY)
        yield Variable("SecurityCtrlr", "SecurityProfile", "1" if cfg.password else "0", READ_ONLY, "integer")
        yield Variable("AuthCtrlr", "Enabled", "true", data_type="boolean", check=is_bool)
        yield Variable(
            "AuthCtrlr", "AuthorizeRemoteStart", data_type="boolean", alias="AuthorizeRemoteTxRequests"
        )
        yield Variable("AuthCtrlr", "LocalPreAuthorize", data_type="boolean", alias="LocalPreAuthorize")
        yield Variable(
            "AuthCtrlr", "LocalAuthorizeOffline", data_type="boolean", alias="LocalAuthorizeOffline"
        )
        yield Variable("AuthCacheCtrlr", "Enabled", data_type="boolean", alias="AuthorizationCacheEnabled")
        yield Variable(
            "LocalAuthListCtrlr", "Available", "true", READ_ONLY, "boolean", requires="LocalAuthListEnabled"
        )
        yield Variable("LocalAuthListCtrlr", "Enabled", data_type="boolean", alias="LocalAuthListEnabled")
        yield Variable(
            "LocalAuthListCtrlr",
            "Entries",
            mutability=READ_ONLY,
            data_type="integer",
            read=lambda: str(len(cp.local_auth)),
            requires="LocalAuthListEnabled",
        )
        yield Variable(
            "LocalAuthListCtrlr",
            "ItemsPerMessage",
            mutability=READ_ONLY,
            data_type="integer",
            alias="SendLocalListMaxLength",
        )
        yield Variable("ReservationCtrlr", "Enabled", "true", READ_ONLY, "boolean")
        yield Variable(
            "ReservationCtrlr",
            "NonEvseSpecific",
            mutability=READ_ONLY,
            data_type="boolean",
            alias="ReserveConnectorZeroSupported",
        )
        yield Variable(
            "SampledDataCtrlr",
            "TxUpdatedInterval",
            data_type="integer",
            unit="s",
            alias="MeterValueSampleInterval",
        )
        yield Variable(
            "SampledDataCtrlr", "TxUpdatedMeasurands", data_type="MemberList", alias="MeterValuesSampledData"
        )
        yield Variable(
            "SampledDataCtrlr", "TxEndedMeasurands", data_type="MemberList", alias="StopTxnSampledData"
        )
        yield Variable(
            "AlignedDataCtrlr", "Interval", data_type="integer", unit="s", alias="ClockAlignedDataInterval"
        )
        yield Variable(
            "TxCtrlr", "EVConnectionTimeOut", data_type="integer", unit="s", alias="ConnectionTimeOut"
        )
        yield Variable(
            "TxCtrlr", "StopTxOnInvalidId", data_type="boolean", alias="StopTransactionOnInvalidId"
        )
        yield Variable(
            "TxCtrlr",
            "StopTxOnEVSideDisconnect",
            data_type="boolean",
            alias="StopTransactionOnEVSideDisconnect",
        )
        yield Variable("TxCtrlr", "TxStartPoint", "EVConnected,Authorized", READ_ONLY, "MemberList")
        yield Variable("TxCtrlr", "TxStopPoint", "EVConnected,Authorized", READ_ONLY, "MemberList")
        yield Variable("SmartChargingCtrlr", "Enabled", "true", READ_ONLY, "boolean")
        yield Variable(
            "SmartChargingCtrlr",
            "ProfileStackLevel",
            str(CHARGE_PROFILE_MAX_STACK_LEVEL),
            READ_ONLY,
            "integer",
        )
        yield Variable(
            "SmartChargingCtrlr",
            "PeriodsPerSchedule",
            str(CHARGING_SCHEDULE_MAX_PERIODS),
            READ_ONLY,
            "integer",
        )
        yield Variable(
            "SmartChargingCtrlr",
            "Entries",
            str(MAX_CHARGING_PROFILES_INSTALLED),
            READ_ONLY,
            "integer",
            instance="ChargingProfiles",
        )
        yield Variable(
            "SmartChargingCtrlr", "RateUnit", ",".join(cfg.charging_rate_units), READ_ONLY, "MemberList"
        )
        yield Variable(
            "DeviceDataCtrlr",
            "ItemsPerMessage",
            str(ITEMS_PER_MESSAGE),
            READ_ONLY,
            "integer",
            instance="GetVariables",
        )
        yield Variable(
            "DeviceDataCtrlr",
            "ItemsPerMessage",
            str(ITEMS_PER_MESSAGE),
            READ_ONLY,
            "integer",
            instance="SetVariables",
        )
        for key in cfg.vendor_keys:  # "Vendor.Setting": read at start-up only (RebootRequired)
            component, _, name = key.rpartition(".")
            yield Variable(component or cfg.vendor, name, alias=key)
        for cid, conn in cp.connectors.items():
            yield Variable(
                "EVSE",
                "AvailabilityState",
                mutability=READ_ONLY,
                evse=cid,
                read=partial(cp.availability, cid),
            )
            yield Variable("EVSE", "Power", str(conn.max_power_w), READ_ONLY, "decimal", "W", evse=cid)
            yield Variable("EVSE", "SupplyPhases", "3", READ_ONLY, "integer", evse=cid)
            yield Variable("Connector", "ConnectorType", "cType2", READ_ONLY, evse=cid, connector=1)
            yield Variable(
                "Connector",
                "AvailabilityState",
                mutability=READ_ONLY,
                evse=cid,
                connector=1,
                read=partial(cp.availability, cid),
            )

    # -- lookup ----------------------------------------------------------------------------

    def find(self, component: dict[str, Any], variable: dict[str, Any]) -> tuple[bool, Variable | None]:
        """(is the component known, the variable) for a message's component and variable."""
        evse = component.get("evse") or {}
        mine = [
            v
            for v in self.variables
            if v.component == component["name"]
            and v.evse == evse.get("id")
            and v.connector == evse.get("connectorId")
        ]
        found = next(
            (v for v in mine if v.name == variable["name"] and v.instance == variable.get("instance")), None
        )
        return bool(mine), found

    def value(self, var: Variable) -> str:
        if var.read is not None:
            return var.read()
        if var.alias is not None:
            return self.cp.config.value(var.alias)
        return var.value

    # -- GetVariables / SetVariables ------------------------------------------------------

    def _resolve(self, item: dict[str, Any]) -> tuple[dict[str, Any], Variable | None]:
        """The result skeleton for one Get/SetVariableData, and its variable when it may be
        used (otherwise the skeleton already carries the refusal)."""
        component, variable = item["component"], item["variable"]
        attribute = item.get("attributeType", ACTUAL)
        result = {"component": component, "variable": variable, "attributeType": attribute}
        known, var = self.find(component, variable)
        if var is None:
            return {**result, "attributeStatus": "UnknownVariable" if known else "UnknownComponent"}, None
        if attribute != ACTUAL:
            return {**result, "attributeStatus": "NotSupportedAttributeType"}, None
        return result, var

    def get(self, item: dict[str, Any]) -> dict[str, Any]:
        result, var = self._resolve(item)
        if var is None:
            return result
        if var.mutability == WRITE_ONLY:
            return {**result, "attributeStatus": "Rejected"}
        return {**result, "attributeStatus": "Accepted", "attributeValue": self.value(var)}

    def set(self, item: dict[str, Any]) -> dict[str, Any]:
        """One SetVariableData: the status, and the value stored (or its alias changed)."""
        result, var = self._resolve(item)
        if var is None:
            return result
        value = item["attributeValue"]
        if var.mutability == READ_ONLY or var.read is not None:
            return {**result, "attributeStatus": "Rejected"}
        if var.alias is not None:
            # The 1.6 path applies the change and its effects (heartbeat, password, meter interval).
            status = self.cp.commands.change_configuration({"key": var.alias, "value": value}).payload[
                "status"
            ]
            return {**result, "attributeStatus": "UnknownVariable" if status == "NotSupported" else status}
        if var.check is not None and not var.check(value):
            return {**result, "attributeStatus": "Rejected"}
        var.value = value
        return {**result, "attributeStatus": "Accepted"}

    # -- reports ---------------------------------------------------------------------------

    def report(self, base: str) -> list[dict[str, Any]]:
        """reportData for GetBaseReport (2.0.1 B07): everything, what can be set, or the
        availability summary."""
        if base == "ConfigurationInventory":
            chosen = [v for v in self.variables if v.mutability != READ_ONLY and v.read is None]
        elif base == "SummaryInventory":
            chosen = [v for v in self.variables if v.name == "AvailabilityState"]
        else:
            chosen = self.variables
        return [self._entry(v) for v in chosen]

    def _entry(self, var: Variable) -> dict[str, Any]:
        attribute: dict[str, Any] = {"type": ACTUAL, "mutability": var.mutability}
        if var.mutability != WRITE_ONLY:
            attribute["value"] = self.value(var)[:2500]
        characteristics: dict[str, Any] = {"dataType": var.data_type, "supportsMonitoring": False}
        if var.unit:
            characteristics["unit"] = var.unit
        return {
            "component": var.component_payload(),
            "variable": var.variable_payload(),
            "variableAttribute": [attribute],
            "variableCharacteristics": characteristics,
        }


def parts(items: list[dict[str, Any]], count: int = REPORT_PARTS) -> list[list[dict[str, Any]]]:
    """Split a report into `count` NotifyReport parts (fewer when it is short)."""
    size = max(1, -(-len(items) // count))
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]
