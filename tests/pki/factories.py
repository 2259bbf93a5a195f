"""Test-side PKI builders with raw `cryptography` keys, for material certctl itself must refuse or
cannot make (RSA-1024 CSRs, tampered CSRs, CA certificates with missing extensions, sub-CAs)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

NOW = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _hash_for(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def raw_csr(
    key: CertificateIssuerPrivateKeyTypes,
    common_name: str | None = "www.example.com",
    sans: Sequence[x509.GeneralName] = (),
) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        name(common_name) if common_name is not None else x509.Name([])
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=common_name is None)
    csr = builder.sign(key, _hash_for(key))
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def tamper_csr(csr_pem: str, old: bytes, new: bytes) -> str:
    """Replace bytes inside the signed part, so the CSR still parses but its signature no longer verifies."""
    csr = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
    der = csr.public_bytes(serialization.Encoding.DER)
    assert der.count(old) == 1
    assert len(old) == len(new)
    tampered = x509.load_der_x509_csr(der.replace(old, new))
    return tampered.public_bytes(serialization.Encoding.PEM).decode("ascii")


def ca_certificate(
    key: CertificateIssuerPrivateKeyTypes,
    common_name: str,
    *,
    issuer: tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes] | None = None,
    not_before: datetime = NOW - timedelta(days=1),
    not_after: datetime = NOW + timedelta(days=3650),
    ca: bool | None = True,
    key_usage: x509.KeyUsage | None = None,
    path_length: int | None = None,
) -> x509.Certificate:
    """A CA certificate (self-signed unless `issuer` is given); `ca=None` leaves BasicConstraints out."""
    issuer_name = issuer[0].subject if issuer else name(common_name)
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(common_name))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    usage = key_usage or x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    builder = builder.add_extension(usage, critical=True)
    return builder.sign(signing_key, _hash_for(signing_key))


def pem(*certificates: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certificates)


def key_pem(
    key: CertificateIssuerPrivateKeyTypes,
    private_format: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8,
    password: bytes | None = None,
) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, private_format, encryption)


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)
