"""Roots and verification helpers for the hierarchy tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from certctl.pki import extensions as ext
from certctl.pki.keys import KeyAlgorithm, SigningKey
from certctl.pki.name_constraints import NameConstraintSet

REQUIRE_PEERS = os.environ.get("CERTCTL_REQUIRE_PEERS") == "1"


def make_root(
    now: datetime,
    *,
    common_name: str = "Corp Root",
    path_length: int | None = 2,
    permitted: tuple[str, ...] = (),
    excluded: tuple[str, ...] = (),
    ca: bool = True,
    algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256,
    issuer_key: SigningKey | None = None,
) -> tuple[str, str]:
    """A root certificate PEM and its key PEM; with `issuer_key`, signed by another key (not self-signed)."""
    key = SigningKey.generate(algorithm)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = ext.subject_key_identifier(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
        .add_extension(ext.ca_key_usage(), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    constraints = NameConstraintSet.parse(permitted, excluded).extension()
    if constraints is not None:
        builder = builder.add_extension(constraints, critical=True)
    certificate = (issuer_key or key).sign_certificate(builder)
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key.private_key_pem().decode()


def load(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode())


def verify_server_chain(
    leaf: x509.Certificate, chain: list[x509.Certificate], root: x509.Certificate, at: datetime, dns: str
) -> None:
    """RFC 5280 path validation with cryptography's verifier (name constraints included)."""
    verifier = PolicyBuilder().store(Store([root])).time(at).build_server_verifier(x509.DNSName(dns))
    verifier.verify(leaf, chain)


def openssl_verify(
    tmp_path: Path, root_pem: str, intermediates_pem: str, leaf_pem: str, at: datetime
) -> subprocess.CompletedProcess[str]:
    if shutil.which("openssl") is None:
        if REQUIRE_PEERS:
            pytest.fail("openssl required (CERTCTL_REQUIRE_PEERS=1)")
        pytest.skip("openssl is not installed")
    (tmp_path / "root.pem").write_text(root_pem)
    (tmp_path / "intermediates.pem").write_text(intermediates_pem)
    (tmp_path / "leaf.pem").write_text(leaf_pem)
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-attime",
            str(int(at.timestamp())),
            "-CAfile",
            "root.pem",
            "-untrusted",
            "intermediates.pem",
            "leaf.pem",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )


def unchecked_leaf(issuer: x509.Certificate, issuer_key: SigningKey, dns: str, now: datetime) -> x509.Certificate:
    """A server leaf signed straight with the CA key, skipping certctl's name-constraint check."""
    key = SigningKey.generate()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ext.authority_key_identifier(issuer), critical=False)
    )
    return issuer_key.sign_certificate(builder)
