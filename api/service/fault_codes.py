"""How bad each reported problem is, and whether the station's own recovery may close it.

One table per source, so an operator reading an incident can find why it got its severity:
OCPP 1.6 ChargePointErrorCode (2.0.1 connector faults arrive as "OtherError"), 2.0.1
SecurityEventNotification types, and NotifyEvent components. Codes not listed get the
default of their table; vendor codes are kept on the incident as reported, never mapped.
"""

from __future__ import annotations

from dataclasses import dataclass

from schema.incident_models import IncidentSeverity

S = IncidentSeverity


@dataclass(frozen=True, slots=True)
class CodeRule:
    severity: IncidentSeverity
    # False: electrical safety faults stay open until a technician confirms the repair, even
    # if the station reports Available again (a tripped RCD can be reset by a passer-by).
    auto_resolve: bool = True


# A connector that reports Faulted without saying why.
FAULTED_WITHOUT_CODE = "Faulted"

ERROR_CODES: dict[str, CodeRule] = {
    "GroundFailure": CodeRule(S.CRITICAL, auto_resolve=False),
    "OverCurrentFailure": CodeRule(S.CRITICAL, auto_resolve=False),
    "PowerSwitchFailure": CodeRule(S.HIGH, auto_resolve=False),
    "HighTemperature": CodeRule(S.HIGH),
    "InternalError": CodeRule(S.HIGH),
    "OverVoltage": CodeRule(S.HIGH),
    "PowerMeterFailure": CodeRule(S.HIGH),  # sessions cannot be billed correctly
    "ConnectorLockFailure": CodeRule(S.HIGH),
    "ResetFailure": CodeRule(S.MEDIUM),
    "UnderVoltage": CodeRule(S.MEDIUM),
    "EVCommunicationError": CodeRule(S.MEDIUM),
    "ReaderFailure": CodeRule(S.MEDIUM),
    "OtherError": CodeRule(S.MEDIUM),
    FAULTED_WITHOUT_CODE: CodeRule(S.MEDIUM),
    "WeakSignal": CodeRule(S.LOW),
    "LocalListConflict": CodeRule(S.LOW),
}
DEFAULT_ERROR_RULE = CodeRule(S.MEDIUM)

# OCPP 2.0.1 Appendix 1 security events. Routine ones (a boot, a clock set, a firmware the
# operator installed) open nothing; those that can mean an attack or tampering do, and are
# never closed by the station: a person decides.
SECURITY_EVENTS: dict[str, IncidentSeverity] = {
    "TamperDetectionActivated": S.CRITICAL,
    "AttemptedReplayAttacks": S.HIGH,
    "InvalidFirmwareSignature": S.HIGH,
    "InvalidFirmwareSigningCertificate": S.HIGH,
    "InvalidCsmsCertificate": S.HIGH,
    "InvalidCentralSystemCertificate": S.HIGH,
    "InvalidChargingStationCertificate": S.HIGH,
    "InvalidTLSVersion": S.MEDIUM,
    "InvalidTLSCipherSuite": S.MEDIUM,
    "FailedToAuthenticateAtCsms": S.MEDIUM,
    "CsmsFailedToAuthenticate": S.MEDIUM,
    "MaintenanceLoginFailed": S.MEDIUM,
    "SecurityLogWasCleared": S.MEDIUM,
    "ReconfigurationOfSecurityParameters": S.LOW,
    "MemoryExhaustion": S.MEDIUM,
    "InvalidMessages": S.LOW,
}

# NotifyEvent: the component whose alert it is decides the severity; others get the default.
EVENT_COMPONENTS: dict[str, IncidentSeverity] = {
    "RCD": S.CRITICAL,
    "ElectricalFeed": S.HIGH,
    "EnergyMeter": S.HIGH,
    "ConnectedEV": S.LOW,
}
DEFAULT_EVENT_SEVERITY = S.MEDIUM


def error_rule(error_code: str) -> CodeRule:
    return ERROR_CODES.get(error_code, DEFAULT_ERROR_RULE)


def security_severity(event_type: str) -> IncidentSeverity | None:
    """None: a routine event that opens no incident."""
    return SECURITY_EVENTS.get(event_type)


def event_severity(component: str) -> IncidentSeverity:
    return EVENT_COMPONENTS.get(component, DEFAULT_EVENT_SEVERITY)
