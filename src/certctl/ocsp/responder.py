"""OCSP on the wire (RFC 6960): parse a request, sign an answer. No database, no HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from certctl.pki.keys import SigningKey

RESPONSE_VALIDITY = timedelta(hours=1)
"""nextUpdate - thisUpdate (pki.md §A2.4)."""
MAX_NONCE_BYTES = 32
"""RFC 8954 §2.1: a nonce is 1 to 32 octets; anything else gets `unauthorized` (pki.md §A2.4)."""
_DER = Encoding.DER
SHA1 = hashes.SHA1()  # noqa: S303 - CertID hashing (RFC 6960 §4.1.1), not a signature


class MalformedRequest(ValueError):
    """The bytes are not a single-request DER OCSPRequest this responder can read."""


@dataclass(frozen=True, slots=True)
class OCSPQuery:
    """What a request asks, reduced to what the answer depends on."""

    serial: int
    algorithm: hashes.HashAlgorithm
    """The CertID hash; the answer's CertID uses the same one."""
    issuer_name_hash: bytes | None = None
    """None for the hex-serial GET form, which names no issuer hashes: the issuer's own are used."""
    issuer_key_hash: bytes | None = None
    nonce: bytes | None = None
    nonce_malformed: bool = False
    """Present but empty or longer than MAX_NONCE_BYTES."""


def parse_request(der: bytes) -> OCSPQuery:
    """Raises MalformedRequest for anything cryptography cannot read (several requests included)."""
    try:
        request = ocsp.load_der_ocsp_request(der)
        algorithm = request.hash_algorithm
        extensions = request.extensions
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise MalformedRequest(str(exc)) from exc
    nonce: bytes | None = None
    for extension in extensions:
        if isinstance(extension.value, x509.OCSPNonce):
            nonce = extension.value.nonce
    return OCSPQuery(
        serial=request.serial_number,
        algorithm=algorithm,
        issuer_name_hash=request.issuer_name_hash,
        issuer_key_hash=request.issuer_key_hash,
        nonce=nonce,
        nonce_malformed=nonce is not None and not 0 < len(nonce) <= MAX_NONCE_BYTES,
    )


def serial_query(serial: int) -> OCSPQuery:
    """The original's `GET …/{serial_hex}` debugging form: a SHA-1 CertID with the issuer's hashes."""
    return OCSPQuery(serial=serial, algorithm=SHA1)


@dataclass(slots=True)
class IssuerHashes:
    """issuerNameHash and issuerKeyHash of one CA certificate, per hash algorithm, computed on first use."""

    certificate: x509.Certificate
    _by_algorithm: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)

    def get(self, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
        found = self._by_algorithm.get(algorithm.name)
        if found is None:
            # cryptography computes both hashes of the *issuer* argument; the certificate argument only
            # supplies a serial, so the CA itself will do.
            request = ocsp.OCSPRequestBuilder().add_certificate(self.certificate, self.certificate, algorithm).build()
            found = (request.issuer_name_hash, request.issuer_key_hash)
            self._by_algorithm[algorithm.name] = found
        return found

    def matches(self, query: OCSPQuery) -> bool:
        if query.issuer_name_hash is None:
            return True
        return self.get(query.algorithm) == (query.issuer_name_hash, query.issuer_key_hash)


@dataclass(frozen=True, slots=True)
class CertificateStatus:
    status: ocsp.OCSPCertStatus
    revoked_at: datetime | None = None
    reason: x509.ReasonFlags | None = None

    @property
    def label(self) -> str:
        return {ocsp.OCSPCertStatus.GOOD: "good", ocsp.OCSPCertStatus.REVOKED: "revoked"}.get(self.status, "unknown")


GOOD = CertificateStatus(ocsp.OCSPCertStatus.GOOD)
UNKNOWN = CertificateStatus(ocsp.OCSPCertStatus.UNKNOWN)
_REASONS = {flag.value.lower(): flag for flag in x509.ReasonFlags}


def revoked(revoked_at: datetime, reason_name: str) -> CertificateStatus:
    """Revoked with its RFC 5280 reason; `unspecified` is left out, as on CRLs (RFC 5280 §5.3.1)."""
    reason = _REASONS.get(reason_name.strip().lower())
    if reason is x509.ReasonFlags.unspecified:
        reason = None
    return CertificateStatus(ocsp.OCSPCertStatus.REVOKED, _to_second(revoked_at), reason)


@dataclass(frozen=True, slots=True)
class ResponderCredentials:
    """The delegated responder certificate and its key (or, in tests, any certificate/key pair)."""

    certificate: x509.Certificate
    key: SigningKey = field(repr=False)


def sign_response(
    query: OCSPQuery,
    issuer: IssuerHashes,
    status: CertificateStatus,
    responder: ResponderCredentials,
    now: datetime,
    *,
    echo_nonce: bool,
) -> tuple[bytes, datetime]:
    """The DER of a successful, signed response, and its nextUpdate. The CertID repeats the request's
    (its hashes too, even when they name another issuer: that single response is then `unknown`)."""
    if query.issuer_name_hash is not None and query.issuer_key_hash is not None:
        name_hash, key_hash = query.issuer_name_hash, query.issuer_key_hash
    else:
        name_hash, key_hash = issuer.get(query.algorithm)
    this_update = _to_second(now)
    next_update = this_update + RESPONSE_VALIDITY
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=name_hash,
            issuer_key_hash=key_hash,
            serial_number=query.serial,
            algorithm=query.algorithm,
            cert_status=status.status,
            this_update=this_update,
            next_update=next_update,
            revocation_time=status.revoked_at,
            revocation_reason=status.reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, responder.certificate)
        .certificates([responder.certificate])
    )
    if echo_nonce and query.nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(query.nonce), critical=False)
    response = responder.key.sign_ocsp(builder)
    return response.public_bytes(_DER), next_update


def unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(_DER)


def _to_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


MALFORMED_REQUEST = unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
UNAUTHORIZED = unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
INTERNAL_ERROR = unsuccessful(ocsp.OCSPResponseStatus.INTERNAL_ERROR)
TRY_LATER = unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)
