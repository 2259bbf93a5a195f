"""Loading CA material: sub-CA mode (pki.md §A1.2) and the persisted self-signed root (§A1.7)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from certctl.clock import FrozenClock
from certctl.pki.connector import IssueRequest
from certctl.pki.errors import InvalidCAMaterial, IssuerConfigError
from certctl.pki.keys import CAMaterial, KeyAlgorithm
from certctl.pki.local_ca import LocalCA
from tests.pki.conftest import CsrFactory
from tests.pki.factories import NOW, ca_certificate, ec_key, key_pem, pem, rsa_key

NO_CERT_SIGN = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


@pytest.fixture(scope="module")
def root() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec_key(ec.SECP384R1())
    return ca_certificate(key, "Test Root"), key


def test_export_and_reload_keeps_the_same_ca(local_ca: LocalCA, clock: FrozenClock) -> None:
    material = local_ca.export()
    assert material.cert_pem == local_ca.ca_chain_pem()
    assert material.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    again = LocalCA.from_material(material, clock=clock)
    assert again.certificate == local_ca.certificate
    assert again.key_algorithm is local_ca.key_algorithm


def test_export_with_a_password_encrypts_the_key(local_ca: LocalCA, clock: FrozenClock) -> None:
    material = local_ca.export(password=b"correct horse")
    assert material.key_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert LocalCA.from_material(material, clock=clock, password=b"correct horse").certificate == local_ca.certificate
    with pytest.raises(InvalidCAMaterial, match="CA key: cannot load private key"):
        LocalCA.from_material(material, clock=clock)


def test_reloaded_ca_issues_leaves_that_chain_to_the_original(
    local_ca: LocalCA, clock: FrozenClock, make_csr: CsrFactory
) -> None:
    reloaded = LocalCA.from_material(local_ca.export(), clock=clock)
    leaf = reloaded.issue(IssueRequest(common_name="a.example.com", sans=(), csr_pem=make_csr("a.example.com")))
    leaf.certificate().verify_directly_issued_by(local_ca.certificate)


@pytest.mark.parametrize(
    ("make_key", "private_format", "algorithm"),
    [
        (lambda: rsa_key(2048), serialization.PrivateFormat.TraditionalOpenSSL, KeyAlgorithm.RSA_2048),
        (lambda: rsa_key(3072), serialization.PrivateFormat.PKCS8, KeyAlgorithm.RSA_3072),
        (lambda: ec_key(), serialization.PrivateFormat.TraditionalOpenSSL, KeyAlgorithm.ECDSA_P256),
        (lambda: ec_key(ec.SECP384R1()), serialization.PrivateFormat.PKCS8, KeyAlgorithm.ECDSA_P384),
    ],
    ids=["rsa2048-pkcs1", "rsa3072-pkcs8", "p256-sec1", "p384-pkcs8"],
)
def test_sub_ca_mode_loads_an_intermediate_and_its_chain(
    root: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    clock: FrozenClock,
    make_csr: CsrFactory,
    make_key: Callable[[], CertificateIssuerPrivateKeyTypes],
    private_format: serialization.PrivateFormat,
    algorithm: KeyAlgorithm,
) -> None:
    key = make_key()
    sub = ca_certificate(key, "Test Issuing CA", issuer=root, path_length=0)
    ca = LocalCA.from_pem(pem(sub, root[0]), key_pem(key, private_format), clock=clock)
    assert ca.key_algorithm is algorithm
    assert ca.get_ca_chain() == [sub, root[0]]
    issued = ca.issue(IssueRequest(common_name="a.example.com", sans=(), csr_pem=make_csr("a.example.com")))
    assert issued.chain_pem == pem(sub, root[0])
    leaf = issued.certificate()
    leaf.verify_directly_issued_by(sub)
    assert leaf.issuer == sub.subject
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == sub.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def test_sub_ca_alone_without_its_parent_is_accepted(
    root: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], clock: FrozenClock
) -> None:
    key = ec_key()
    sub = ca_certificate(key, "Lonely Issuing CA", issuer=root)
    assert LocalCA.from_pem(pem(sub).encode(), key_pem(key).decode(), clock=clock).get_ca_chain() == [sub]


def test_not_a_ca_is_refused(clock: FrozenClock) -> None:
    key = ec_key()
    with pytest.raises(InvalidCAMaterial, match="is not a CA"):
        LocalCA.from_pem(pem(ca_certificate(key, "Leaf", ca=False)), key_pem(key), clock=clock)
    with pytest.raises(InvalidCAMaterial, match="is not a CA"):
        LocalCA.from_pem(pem(ca_certificate(key, "No BC", ca=None)), key_pem(key), clock=clock)


def test_ca_without_key_cert_sign_is_refused(clock: FrozenClock) -> None:
    key = ec_key()
    with pytest.raises(InvalidCAMaterial, match="lacks KeyUsage keyCertSign"):
        LocalCA.from_pem(pem(ca_certificate(key, "CRL only", key_usage=NO_CERT_SIGN)), key_pem(key), clock=clock)


def test_expired_and_not_yet_valid_cas_are_refused(clock: FrozenClock) -> None:
    key = ec_key()
    expired = ca_certificate(key, "Old", not_before=NOW - timedelta(days=20), not_after=NOW - timedelta(seconds=1))
    with pytest.raises(InvalidCAMaterial, match="expired at"):
        LocalCA.from_pem(pem(expired), key_pem(key), clock=clock)
    future = ca_certificate(key, "Future", not_before=NOW + timedelta(hours=1))
    with pytest.raises(InvalidCAMaterial, match="is not valid before"):
        LocalCA.from_pem(pem(future), key_pem(key), clock=clock)


def test_a_key_that_does_not_match_is_refused(clock: FrozenClock) -> None:
    with pytest.raises(InvalidCAMaterial, match="does not match"):
        LocalCA.from_pem(pem(ca_certificate(ec_key(), "CA")), key_pem(ec_key()), clock=clock)


@pytest.mark.parametrize(
    ("make_key", "message"),
    [
        (lambda: rsa_key(1024), "unsupported key RSA-1024"),
        (lambda: ec_key(ec.SECP521R1()), "unsupported key ECDSA-521"),
        (lambda: ed25519.Ed25519PrivateKey.generate(), "Ed25519 CA keys are not supported"),
    ],
    ids=["rsa-1024", "p-521", "ed25519"],
)
def test_unsupported_ca_keys_are_refused(
    clock: FrozenClock, make_key: Callable[[], CertificateIssuerPrivateKeyTypes], message: str
) -> None:
    key = make_key()
    with pytest.raises(InvalidCAMaterial, match=message):
        LocalCA.from_pem(pem(ca_certificate(key, "Odd CA")), key_pem(key), clock=clock)


def test_a_broken_chain_is_refused(
    root: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], clock: FrozenClock
) -> None:
    key = ec_key()
    sub = ca_certificate(key, "Issuing", issuer=root)
    stranger = ca_certificate(ec_key(), "Stranger")
    with pytest.raises(InvalidCAMaterial, match="chain is broken: 'CN=Issuing' is not issued by 'CN=Stranger'"):
        LocalCA.from_pem(pem(sub, stranger), key_pem(key), clock=clock)


@pytest.mark.parametrize("cert_pem", ["", "garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
def test_unparsable_certificate_pem_is_refused(clock: FrozenClock, cert_pem: str) -> None:
    with pytest.raises(InvalidCAMaterial):
        LocalCA.from_pem(cert_pem, key_pem(ec_key()), clock=clock)


def test_invalid_ca_material_is_a_config_error(clock: FrozenClock) -> None:
    with pytest.raises(IssuerConfigError):
        LocalCA.from_material(CAMaterial(cert_pem="", key_pem=b""), clock=clock)
