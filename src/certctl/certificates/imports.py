"""Parsing an existing certificate (inventory import): leaf first, then its chain, PEM."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from certctl.errors import ValidationFailed


@dataclass(frozen=True, slots=True)
class ParsedCertificate:
    serial_number: str  # canonical: lowercase hex, no padding
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    pem_chain: str
    key_algorithm: str
    key_size: int


def parse_certificate_pem(pem: str) -> ParsedCertificate:
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise ValidationFailed(f"certificate_pem is not a PEM certificate chain: {exc}") from exc
    leaf = certs[0]
    algorithm, size = describe_public_key(leaf.public_key())
    chain = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)
    return ParsedCertificate(
        serial_number=format(leaf.serial_number, "x"),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex(),
        pem_chain=chain,
        key_algorithm=algorithm,
        key_size=size,
    )


def describe_public_key(key: object) -> tuple[str, int]:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ECDSA", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    return type(key).__name__, 0
