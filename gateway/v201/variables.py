"""Configuration keys for OCPP 2.0.1 stations: how a neutral key names a device-model variable.

The neutral commands GetConfiguration / ChangeConfiguration carry 1.6-style string keys. For a
2.0.1 station a key names one attribute of one variable of one component:

    Component[componentInstance]@evseId:connectorId.Variable[variableInstance]/AttributeType

Everything but `Component.Variable` is optional; the attribute type defaults to Actual. E.g.
`OCPPCommCtrlr.HeartbeatInterval`, `OCPPCommCtrlr.MessageAttempts[TransactionEvent]`,
`EVSE@1.Power/MaxSet`, `Connector@1:2.ConnectorType`. The standard 1.6 keys that have a 2.0.1
counterpart (appendix 2 of the 2.0.1 spec) are accepted by their 1.6 name as well, so
`AuthorizationKey` rotates SecurityCtrlr.BasicAuthPassword, and replies answer under the key as
asked. Stored copies (station_configuration_key) use the canonical form above.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

ACTUAL = "Actual"
ATTRIBUTE_TYPES = ("Actual", "Target", "MinSet", "MaxSet")

_KEY = re.compile(
    r"^(?P<component>[^.\[\]@/]+)"
    r"(?:\[(?P<component_instance>[^\]]+)\])?"
    r"(?:@(?P<evse>\d+)(?::(?P<connector>\d+))?)?"
    r"\.(?P<variable>[^\[\]/]+)"
    r"(?:\[(?P<variable_instance>[^\]]+)\])?"
    r"(?:/(?P<attribute>Actual|Target|MinSet|MaxSet))?$"
)


class InvalidKey(ValueError):
    """A key that names no 2.0.1 variable."""


@dataclass(frozen=True, slots=True)
class Address:
    """One attribute of one variable of one component of a station's device model."""

    component: str
    variable: str
    component_instance: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None
    variable_instance: str | None = None
    attribute_type: str = ACTUAL

    @property
    def key(self) -> str:
        """The canonical key (see the module docstring)."""
        text = self.component
        if self.component_instance:
            text += f"[{self.component_instance}]"
        if self.evse_id is not None:
            text += f"@{self.evse_id}"
            if self.connector_id is not None:
                text += f":{self.connector_id}"
        text += f".{self.variable}"
        if self.variable_instance:
            text += f"[{self.variable_instance}]"
        if self.attribute_type != ACTUAL:
            text += f"/{self.attribute_type}"
        return text

    def component_payload(self) -> dict[str, Any]:
        component: dict[str, Any] = {"name": self.component}
        if self.component_instance:
            component["instance"] = self.component_instance
        if self.evse_id is not None:
            component["evse"] = {"id": self.evse_id}
            if self.connector_id is not None:
                component["evse"]["connectorId"] = self.connector_id
        return component

    def variable_payload(self) -> dict[str, Any]:
        variable: dict[str, Any] = {"name": self.variable}
        if self.variable_instance:
            variable["instance"] = self.variable_instance
        return variable

    def request(self) -> dict[str, Any]:
        """The component/variable/attributeType of a GetVariableData or SetVariableData."""
        return {
            "component": self.component_payload(),
            "variable": self.variable_payload(),
            "attributeType": self.attribute_type,
        }


def address_of(component: dict[str, Any], variable: dict[str, Any], attribute_type: str | None) -> Address:
    """The address a 2.0.1 message (a result, a report) gives as component and variable objects."""
    evse = component.get("evse") or {}
    return Address(
        component=component["name"],
        variable=variable["name"],
        component_instance=component.get("instance") or None,
        evse_id=evse.get("id"),
        connector_id=evse.get("connectorId"),
        variable_instance=variable.get("instance") or None,
        attribute_type=attribute_type or ACTUAL,
    )


# OCPP 1.6 standard keys with a 2.0.1 counterpart, by their 1.6 name (case-insensitive).
ALIASES: dict[str, Address] = {
    k.lower(): v
    for k, v in {
        "AuthorizationKey": Address("SecurityCtrlr", "BasicAuthPassword"),
        "BasicAuthPassword": Address("SecurityCtrlr", "BasicAuthPassword"),
        "HeartbeatInterval": Address("OCPPCommCtrlr", "HeartbeatInterval"),
        "WebSocketPingInterval": Address("OCPPCommCtrlr", "WebSocketPingInterval"),
        "ResetRetries": Address("OCPPCommCtrlr", "ResetRetries"),
        "TransactionMessageAttempts": Address(
            "OCPPCommCtrlr", "MessageAttempts", variable_instance="TransactionEvent"
        ),
        "TransactionMessageRetryInterval": Address(
            "OCPPCommCtrlr", "MessageAttemptInterval", variable_instance="TransactionEvent"
        ),
        "MeterValueSampleInterval": Address("SampledDataCtrlr", "TxUpdatedInterval"),
        "MeterValuesSampledData": Address("SampledDataCtrlr", "TxUpdatedMeasurands"),
        "StopTxnSampledData": Address("SampledDataCtrlr", "TxEndedMeasurands"),
        "ClockAlignedDataInterval": Address("AlignedDataCtrlr", "Interval"),
        "MeterValuesAlignedData": Address("AlignedDataCtrlr", "Measurands"),
        "ConnectionTimeOut": Address("TxCtrlr", "EVConnectionTimeOut"),
        "StopTransactionOnInvalidId": Address("TxCtrlr", "StopTxOnInvalidId"),
        "StopTransactionOnEVSideDisconnect": Address("TxCtrlr", "StopTxOnEVSideDisconnect"),
        "LocalPreAuthorize": Address("AuthCtrlr", "LocalPreAuthorize"),
        "LocalAuthorizeOffline": Address("AuthCtrlr", "LocalAuthorizeOffline"),
        "AuthorizeRemoteTxRequests": Address("AuthCtrlr", "AuthorizeRemoteStart"),
        "AuthorizationCacheEnabled": Address("AuthCacheCtrlr", "Enabled"),
        "LocalAuthListEnabled": Address("LocalAuthListCtrlr", "Enabled"),
    }.items()
}

# Secrets a station accepts but must never report (2.0.1 A01: the Basic-auth password). Their
# values are neither stored nor logged, whatever the station's report says.
WRITE_ONLY = frozenset({("SecurityCtrlr", "BasicAuthPassword")})


# The only keys that may set the password, spelt exactly so: the names the API guards (only
# password rotation may use them, and their values never reach the command log). Any other
# spelling of SecurityCtrlr.BasicAuthPassword is refused rather than let past that guard.
PASSWORD_KEYS = frozenset({"AuthorizationKey", "BasicAuthPassword"})


def is_secret(address: Address) -> bool:
    return (address.component, address.variable) in WRITE_ONLY


def parse_key(key: str) -> Address:
    """The address a neutral configuration key names; raises InvalidKey."""
    alias = ALIASES.get(key.strip().lower())
    if alias is not None:
        return alias
    match = _KEY.match(key.strip())
    if match is None:
        raise InvalidKey(f"{key[:60]!r} is not Component.Variable (see gateway/v201/variables.py)")
    return Address(
        component=match["component"],
        variable=match["variable"],
        component_instance=match["component_instance"],
        evse_id=int(match["evse"]) if match["evse"] else None,
        connector_id=int(match["connector"]) if match["connector"] else None,
        variable_instance=match["variable_instance"],
        attribute_type=match["attribute"] or ACTUAL,
    )
