"""Post-deploy verification: is the endpoint serving the certificate we just deployed? (§A1.10, §A2.3)

`probe_tls` connects without certificate verification (we compare fingerprints, we do not judge
trust), sends SNI unless the host is an IP address, and returns the served leaf's SHA-256 and details.
`verify_endpoint` retries with exponential backoff, because a reloaded server takes a moment to serve
the new certificate: no wait before the first attempt, then `initial`, 2x, 4x, … capped at `max`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

DEFAULT_PORT = 443
DEFAULT_PROBE_TIMEOUT_SECONDS = 10.0
DEFAULT_VERIFY_ATTEMPTS = 3
DEFAULT_INITIAL_BACKOFF_SECONDS = 1.0
DEFAULT_MAX_BACKOFF_SECONDS = 16.0
_PEM_CERT_BEGIN = "-----BEGIN CERTIFICATE-----"


def certificate_fingerprint(cert_pem: str) -> str:
    """SHA-256 (lowercase hex) of the DER of the first CERTIFICATE block; raises ValueError when none parses."""
    if _PEM_CERT_BEGIN not in cert_pem:
        raise ValueError("no PEM CERTIFICATE block")
    first = x509.load_pem_x509_certificates(cert_pem[cert_pem.index(_PEM_CERT_BEGIN) :].encode("ascii"))[0]
    return hashlib.sha256(first.public_bytes(Encoding.DER)).hexdigest()


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to probe: `host:port`, `[v6]:port` or a bare host (port 443). SNI defaults to the host name."""

    host: str
    port: int = DEFAULT_PORT
    server_name: str | None = None

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("endpoint has no host")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"endpoint port {self.port} is outside 1-65535")

    @classmethod
    def parse(cls, text: str, server_name: str | None = None) -> Endpoint:
        value = text.strip()
        if value.startswith("["):
            host, _, rest = value[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
            if rest and not rest.startswith(":"):
                raise ValueError(f"endpoint {text!r} is not host:port")
        elif value.count(":") == 1:
            host, _, port_text = value.partition(":")
        else:
            host, port_text = value, ""  # a bare name, or a bare IPv6 address
        if port_text and not port_text.isdigit():
            raise ValueError(f"endpoint {text!r} has a non-numeric port")
        return cls(host, int(port_text) if port_text else DEFAULT_PORT, server_name or None)

    @property
    def sni(self) -> str | None:
        if self.server_name:
            return self.server_name
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return self.host
        return None  # RFC 6066 §3: SNI carries host names only

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    success: bool
    fingerprint: str = ""  # SHA-256 of the served leaf's DER, lowercase hex
    tls_version: str = ""
    cipher_suite: str = ""
    subject_cn: str = ""
    issuer_cn: str = ""
    not_before: datetime | None = None
    not_after: datetime | None = None
    serial: str = ""  # lowercase hex, no padding
    response_time_ms: int = 0
    error: str = ""


class TLSProber(Protocol):
    def __call__(self, endpoint: Endpoint, timeout_seconds: float) -> ProbeResult: ...


def probe_tls(endpoint: Endpoint, timeout_seconds: float = DEFAULT_PROBE_TIMEOUT_SECONDS) -> ProbeResult:
    """One TLS handshake; never raises for network or TLS errors (they are in `error`)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we compare fingerprints; trust is not the question here
    started = time.perf_counter()
    try:
        with (
            socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_seconds) as raw,
            context.wrap_socket(raw, server_hostname=endpoint.sni) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            version, cipher = tls.version() or "", (tls.cipher() or ("",))[0]
    except (OSError, ssl.SSLError) as exc:
        return ProbeResult(False, response_time_ms=_ms_since(started), error=f"dial {endpoint}: {exc}")
    elapsed = _ms_since(started)
    if not der:
        return ProbeResult(False, response_time_ms=elapsed, error=f"{endpoint} sent no certificate")
    result = ProbeResult(
        True, hashlib.sha256(der).hexdigest(), version.replace("v", " ", 1), cipher, response_time_ms=elapsed
    )
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return result  # the fingerprint is what matters; details are a bonus
    return ProbeResult(
        True,
        result.fingerprint,
        result.tls_version,
        cipher,
        _common_name(cert.subject),
        _common_name(cert.issuer),
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
        format(cert.serial_number, "x"),
        elapsed,
    )


class VerifyStatus(StrEnum):
    VERIFIED = "verified"
    MISMATCH = "mismatch"  # the endpoint answered with another certificate
    ERROR = "error"  # no TLS answer at all


@dataclass(frozen=True, slots=True)
class VerifyPolicy:
    """Attempts and waits in seconds; zeros take the defaults (3 attempts, 1 s, 16 s, 10 s timeout)."""

    attempts: int = DEFAULT_VERIFY_ATTEMPTS
    initial_backoff_seconds: float = DEFAULT_INITIAL_BACKOFF_SECONDS
    max_backoff_seconds: float = DEFAULT_MAX_BACKOFF_SECONDS
    timeout_seconds: float = DEFAULT_PROBE_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        for name, default in (
            ("attempts", DEFAULT_VERIFY_ATTEMPTS),
            ("initial_backoff_seconds", DEFAULT_INITIAL_BACKOFF_SECONDS),
            ("max_backoff_seconds", DEFAULT_MAX_BACKOFF_SECONDS),
            ("timeout_seconds", DEFAULT_PROBE_TIMEOUT_SECONDS),
        ):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"{name} must not be negative")
            if value == 0:
                object.__setattr__(self, name, default)

    def waits(self) -> list[float]:
        """The sleep before attempts 2..n."""
        waits, wait = [], self.initial_backoff_seconds
        for _ in range(self.attempts - 1):
            waits.append(min(wait, self.max_backoff_seconds))
            wait *= 2
        return waits


@dataclass(frozen=True, slots=True)
class VerifyResult:
    status: VerifyStatus
    endpoint: str
    expected_fingerprint: str
    actual_fingerprint: str = ""  # empty when no attempt got a certificate
    attempts: int = 0
    error: str = ""
    probe: ProbeResult | None = None  # the last probe

    @property
    def verified(self) -> bool:
        return self.status is VerifyStatus.VERIFIED

    def describe(self) -> str:
        if self.status is VerifyStatus.VERIFIED:
            return f"{self.endpoint} serves SHA-256 {self.actual_fingerprint}"
        if self.status is VerifyStatus.MISMATCH:
            return (
                f"post-deploy TLS verify SHA-256 mismatch at {self.endpoint}: "
                f"got {self.actual_fingerprint}, want {self.expected_fingerprint}"
            )
        return f"TLS probe failed: {self.error}"


def verify_endpoint(
    endpoint: Endpoint,
    expected_fingerprint: str,
    policy: VerifyPolicy | None = None,
    *,
    probe: TLSProber = probe_tls,
    sleep: Callable[[float], None] = time.sleep,
) -> VerifyResult:
    """Probe until the endpoint serves `expected_fingerprint` or the attempts run out; never raises."""
    policy = policy or VerifyPolicy()
    expected = expected_fingerprint.lower()
    waits = policy.waits()
    result: ProbeResult | None = None
    for attempt in range(1, policy.attempts + 1):
        if attempt > 1:
            sleep(waits[attempt - 2])
        result = probe(endpoint, policy.timeout_seconds)
        if result.success and result.fingerprint.lower() == expected:
            return VerifyResult(
                VerifyStatus.VERIFIED, str(endpoint), expected, result.fingerprint.lower(), attempt, probe=result
            )
    assert result is not None
    if result.success:
        return VerifyResult(
            VerifyStatus.MISMATCH, str(endpoint), expected, result.fingerprint.lower(), policy.attempts, probe=result
        )
    return VerifyResult(VerifyStatus.ERROR, str(endpoint), expected, "", policy.attempts, result.error, result)


def _common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
