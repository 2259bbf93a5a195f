"""The control plane's own TLS: a self-signed ECDSA bootstrap certificate, or the operator's pair."""

from __future__ import annotations

import ipaddress
import os
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certctl.errors import ConfigurationError
from certctl.pki import extensions as ext

BOOTSTRAP_CERT = "server-tls.crt"
BOOTSTRAP_KEY = "server-tls.key"
BOOTSTRAP_VALIDITY = timedelta(days=397)
# TLS 1.2 suites: forward-secret AEAD only. TLS 1.3 suites are always enabled and preferred.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file created with mode 0600 (never world-readable, even for an instant)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def ensure_bootstrap_certificate(
    data_dir: Path, hosts: list[str], now: datetime | None = None
) -> tuple[Path, Path, bool]:
    """Create (once) a self-signed ECDSA P-256 server certificate in the data directory.

    Returns (cert_path, key_path, created). An existing pair is reused as long as it has not expired.
    """
    cert_path, key_path = data_dir / BOOTSTRAP_CERT, data_dir / BOOTSTRAP_KEY
    now = now or datetime.now(UTC)
    if cert_path.exists() and key_path.exists():
        existing = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if existing.not_valid_after_utc > now + timedelta(days=1):
            return cert_path, key_path, False
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(["localhost", "127.0.0.1", "::1", *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if host and host not in ("0.0.0.0", "::"):  # noqa: S104 - names, not binds
                names.append(x509.DNSName(host))
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "certctl bootstrap"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certctl"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + BOOTSTRAP_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            ext.signing_key_usage(),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(
        key_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, True


def server_ssl_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """TLS 1.2+ (1.3 negotiated first); raises ConfigurationError naming what is wrong with the pair."""
    for label, path in (("certificate", cert_path), ("private key", key_path)):
        if not path.is_file():
            raise ConfigurationError(f"TLS {label} file {path} does not exist or is not a file")
    _check_pair(cert_path, key_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(str(cert_path), str(key_path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot use TLS pair {cert_path} / {key_path}: {exc}; "
            "check that both are PEM, that the key matches the certificate and is not encrypted"
        ) from exc
    return context


def _check_pair(cert_path: Path, key_path: Path) -> None:
    """Name the file at fault: OpenSSL only says "PEM lib" for a bad certificate or key alike."""
    try:
        chain = x509.load_pem_x509_certificates(cert_path.read_bytes())
    except ValueError as exc:
        raise ConfigurationError(f"TLS certificate file {cert_path} holds no PEM certificate: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except TypeError as exc:
        raise ConfigurationError(f"TLS private key file {key_path} is encrypted; give an unencrypted key") from exc
    except ValueError as exc:
        raise ConfigurationError(f"TLS private key file {key_path} holds no usable PEM private key: {exc}") from exc
    if chain[0].public_key() != key.public_key():
        raise ConfigurationError(
            f"TLS private key {key_path} does not match the certificate {cert_path} (the first certificate in it)"
        )


def fingerprint_sha256(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
