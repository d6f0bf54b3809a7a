"""OCPP security profiles at the handshake: what each station must present to connect.

Profile 1 is HTTP Basic auth (user = charge point id); profile 2 the same over TLS; profile 3
TLS with a client certificate whose subject CN is the charge point id (OCPP 1.6 security
whitepaper, 2.0.1 part 2 §A00). The listener offers TLS when a certificate is configured, and
asks for client certificates when a client CA is; each station's own profile decides what it
must present, so stations can move to a stronger profile one by one.
"""

from __future__ import annotations

import ssl
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers

from gateway.station_loader import StationRecord

NONE, BASIC, TLS_BASIC, TLS_CLIENT_CERT = 0, 1, 2, 3


def server_tls_context(cert_file: str, key_file: str, client_ca_file: str | None = None) -> ssl.SSLContext:
    """TLS 1.2+ (the OCPP security profiles forbid older versions)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if client_ca_file:
        context.load_verify_locations(client_ca_file)
        # Optional at the TLS layer: profile 1 and 2 stations present none; a certificate that
        # is presented must still chain to the CA, and profile 3 stations must present one.
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def required_profile(record: StationRecord) -> int:
    """A station with a password was set up for Basic auth even if its profile says 0."""
    return max(record.security_profile, BASIC if record.password_hash is not None else NONE)


def _ssl_object(connection: ServerConnection) -> ssl.SSLObject | ssl.SSLSocket | None:
    found: Any = connection.transport.get_extra_info("ssl_object")
    return found if isinstance(found, ssl.SSLObject | ssl.SSLSocket) else None


def is_tls(connection: ServerConnection, headers: Headers, *, trust_proxy: bool) -> bool:
    """TLS to this process, or (behind a trusted proxy) to the proxy that forwards here."""
    if _ssl_object(connection) is not None:
        return True
    return trust_proxy and headers.get("X-Forwarded-Proto", "").lower() in ("https", "wss")


def client_common_name(connection: ServerConnection, headers: Headers, *, trust_proxy: bool) -> str | None:
    """The CN of the station's verified client certificate: checked here, or by a trusted
    proxy that verified it against the charger CA and forwarded its verdict and subject."""
    own = peer_common_name(connection)
    if own is not None or not trust_proxy:
        return own
    verdict = headers.get("X-Client-Verify") or headers.get("ssl-client-verify") or ""
    subject = headers.get("X-Client-Subject-DN") or headers.get("ssl-client-subject-dn") or ""
    if verdict != "SUCCESS":
        return None
    return _cn_of(subject)


def _cn_of(distinguished_name: str) -> str | None:
    """CN from an RFC 2253 DN ("CN=CP-1,O=Acme"); nginx may also write "/O=Acme/CN=CP-1"."""
    separator = "/" if distinguished_name.startswith("/") else ","
    for part in distinguished_name.split(separator):
        name, _, value = part.strip().partition("=")
        if name.upper() == "CN" and value:
            return value
    return None


def peer_common_name(connection: ServerConnection) -> str | None:
    """The subject CN of a client certificate verified by this process's TLS, if any."""
    obj = _ssl_object(connection)
    cert = obj.getpeercert() if obj is not None else None
    if not cert:
        return None
    subject: Any = cert.get("subject", ())
    for rdn in subject:
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None
