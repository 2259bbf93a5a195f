"""The issuer connector protocol (pki.md §A0): typed requests and results every issuer backend speaks.

The service layer builds an `IssueRequest`, calls `issue`/`renew` on whatever connector the registry
built for the issuer row, and stores the `IssuedCertificate`. Connectors raise the errors of
`certctl.pki.errors`; they never retry by themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certctl.clock import Clock
from certctl.issuers.models import IssuerType
from certctl.pki.extensions import ExtendedKeyUsageName
from certctl.pki.keys import CAMaterial, KeyFamily, classify_public_key
from certctl.pki.profile_check import ProfileRules
from certctl.pki.serials import canonical_serial


@dataclass(frozen=True, slots=True)
class IssueRequest:
    """One issuance (or renewal) as every path submits it: API, scheduler, ACME, EST, SCEP, agents."""

    common_name: str
    sans: tuple[str, ...]
    csr_pem: str
    ekus: tuple[ExtendedKeyUsageName, ...] = ()
    """Empty: the profile's allowed EKUs, or serverAuth + clientAuth without a profile."""
    max_ttl_seconds: int = 0
    """0 = no cap; the profile's cap applies as well."""
    must_staple: bool = False
    profile: ProfileRules | None = None
    renews_order_id: str | None = None
    """For renewals: the order that produced the certificate being replaced (informational)."""

    def __post_init__(self) -> None:
        if self.max_ttl_seconds < 0:
            raise ValueError("max_ttl_seconds must be 0 (no cap) or positive")
        if isinstance(self.sans, str):  # a bare string would be split into characters
            raise TypeError("sans must be a tuple of strings")


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A certificate a CA issued, as stored in a certificate version (core.md §2.2)."""

    cert_pem: str
    chain_pem: str
    """Issuing CA first, then its issuers; empty when the CA returned no chain."""
    serial: str
    """Canonical serial form (core.md §2.2)."""
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    """Lowercase hex SHA-256 over the leaf DER."""
    order_id: str
    key_algorithm: KeyFamily
    key_size: int

    def __post_init__(self) -> None:
        if canonical_serial(self.serial) != self.serial:
            raise ValueError(f"serial {self.serial!r} is not in canonical form")
        if self.not_before.tzinfo is None or self.not_after.tzinfo is None:
            raise ValueError("not_before and not_after must be aware UTC datetimes")

    @classmethod
    def from_certificate(
        cls, certificate: x509.Certificate, chain: Sequence[x509.Certificate], order_id: str
    ) -> IssuedCertificate:
        """Describe a parsed leaf; every connector should build its result this way so serials are canonical."""
        key = classify_public_key(certificate.public_key())
        return cls(
            cert_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            chain_pem=certificates_to_pem(chain),
            serial=canonical_serial(certificate.serial_number),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            fingerprint_sha256=hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest(),
            order_id=order_id,
            key_algorithm=key.family,
            key_size=key.size_bits,
        )

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem.encode("ascii"))


def certificates_to_pem(certificates: Sequence[x509.Certificate]) -> str:
    """PEM blocks joined in order, each ending in a newline."""
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certificates)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an issuer type supports, so callers do not have to try and catch."""

    can_revoke: bool
    """The CA itself can be told about a revocation (certctl's ledger is authoritative either way)."""
    can_crl: bool
    """certctl publishes a CRL for this issuer (signed with the issuer's key)."""
    can_ocsp: bool
    """certctl answers OCSP for this issuer."""
    async_orders: bool
    """`issue` may raise IssuancePending; poll `get_order_status`."""
    supports_must_staple: bool = False


class OrderState(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OrderStatus:
    state: OrderState
    certificate: IssuedCertificate | None = None
    error: str | None = None


class CAMaterialStore(Protocol):
    """Where a self-signed local CA's certificate and key persist between restarts (disk or encrypted DB)."""

    def load(self, issuer_id: str) -> CAMaterial | None: ...

    def save(self, issuer_id: str, material: CAMaterial) -> None: ...


@dataclass(frozen=True, slots=True)
class ConnectorDeps:
    """What a connector factory is handed besides its config: clock, identity, and its clients."""

    clock: Clock
    issuer_id: str
    public_url: str | None = None
    """CERTCTL_SERVER_PUBLIC_URL; derives AIA/CDP URLs (pki.md §A1.7 decision o)."""
    ca_store: CAMaterialStore | None = None
    """Local CA only: None keeps a self-signed CA in memory (lost on restart, as the original)."""


class IssuerConnector(Protocol):
    """One issuer backend (pki.md §A0). Methods raise `certctl.pki.errors.IssuerError` subclasses."""

    @property
    def issuer_type(self) -> IssuerType: ...

    def capabilities(self) -> Capabilities: ...

    def validate_config(self, config: Mapping[str, object]) -> None:
        """Raise IssuerConfigError when `config` is unusable for this issuer type."""
        ...

    def issue(self, request: IssueRequest) -> IssuedCertificate: ...

    def renew(self, request: IssueRequest) -> IssuedCertificate: ...

    def revoke(self, serial: str, reason: x509.ReasonFlags | None = None) -> None: ...

    def get_order_status(self, order_id: str) -> OrderStatus: ...

    def get_ca_chain(self) -> list[x509.Certificate]:
        """Issuing CA first, then its issuers (EST /cacerts, SCEP GetCACert, AIA caIssuers)."""
        ...


class ConnectorFactory(Protocol):
    """Registry entry: validates a config without side effects, and builds a connector from one."""

    def validate_config(self, config: Mapping[str, object]) -> None: ...

    def build(self, config: Mapping[str, object], deps: ConnectorDeps) -> IssuerConnector: ...
