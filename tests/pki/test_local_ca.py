"""Leaf issuance by the local CA (pki.md §A1.3 as amended by §A1.7)."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from certctl.clock import FrozenClock
from certctl.issuers.models import IssuerType
from certctl.pki.connector import IssuedCertificate, IssuerConnector, IssueRequest, OrderState
from certctl.pki.errors import BadCSR, InvalidCAMaterial, PermanentIssuerError, ProfileViolation
from certctl.pki.extensions import ExtendedKeyUsageName as Eku
from certctl.pki.keys import KeyAlgorithm, KeyFamily
from certctl.pki.local_ca import LocalCA
from certctl.pki.local_ca_config import LocalCAConfig
from certctl.pki.profile_check import ProfileRules
from certctl.pki.serials import canonical_serial
from tests.pki.conftest import CAFactory, CsrFactory
from tests.pki.factories import NOW, ec_key, raw_csr, rsa_key, tamper_csr


def issue(
    ca: LocalCA,
    csr_pem: str,
    *,
    common_name: str = "www.example.com",
    sans: Sequence[str] = (),
    ekus: tuple[Eku, ...] = (),
    max_ttl_seconds: int = 0,
    must_staple: bool = False,
    profile: ProfileRules | None = None,
) -> tuple[IssuedCertificate, x509.Certificate]:
    request = IssueRequest(
        common_name=common_name,
        sans=tuple(sans),
        csr_pem=csr_pem,
        ekus=ekus,
        max_ttl_seconds=max_ttl_seconds,
        must_staple=must_staple,
        profile=profile,
    )
    issued = ca.issue(request)
    return issued, issued.certificate()


ExtensionT = TypeVar("ExtensionT", bound=x509.ExtensionType)


def ext_value(cert: x509.Certificate, kind: type[ExtensionT]) -> ExtensionT:
    return cert.extensions.get_extension_for_class(kind).value


def critical(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> bool:
    return cert.extensions.get_extension_for_class(kind).critical


# -- the root -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "hash_name"),
    [
        (KeyAlgorithm.ECDSA_P256, "sha256"),
        (KeyAlgorithm.ECDSA_P384, "sha384"),
        (KeyAlgorithm.RSA_2048, "sha256"),
        (KeyAlgorithm.RSA_3072, "sha256"),
        (KeyAlgorithm.RSA_4096, "sha256"),
    ],
)
def test_self_signed_root_profile(make_ca: CAFactory, algorithm: KeyAlgorithm, hash_name: str) -> None:
    ca = make_ca(algorithm)
    root = ca.certificate
    assert ca.key_algorithm is algorithm
    assert root.subject == root.issuer
    assert root.subject.rfc4514_string() == "CN=CertCtl Local CA"
    assert root.not_valid_before_utc == NOW
    assert root.not_valid_after_utc == NOW + timedelta(days=3650)
    assert 0 < root.serial_number < 2**159
    assert root.signature_hash_algorithm is not None
    assert root.signature_hash_algorithm.name == hash_name
    root.verify_directly_issued_by(root)

    constraints = ext_value(root, x509.BasicConstraints)
    assert isinstance(constraints, x509.BasicConstraints)
    assert constraints.ca
    assert constraints.path_length is None
    assert critical(root, x509.BasicConstraints)
    usage = ext_value(root, x509.KeyUsage)
    assert isinstance(usage, x509.KeyUsage)
    assert usage.key_cert_sign
    assert usage.crl_sign
    assert usage.digital_signature
    assert critical(root, x509.KeyUsage)
    assert not usage.key_encipherment
    ski = ext_value(root, x509.SubjectKeyIdentifier)
    assert ski == x509.SubjectKeyIdentifier.from_public_key(root.public_key())
    assert isinstance(ski, x509.SubjectKeyIdentifier)
    assert len(ski.digest) == 20
    aki = ext_value(root, x509.AuthorityKeyIdentifier)
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert aki.key_identifier == ski.digest
    assert ca.get_ca_chain() == [root]


def test_self_signed_root_takes_name_validity_and_now_from_the_caller() -> None:
    moment = datetime(2030, 6, 1, 12, 30, 15, 999_999, tzinfo=UTC)
    ca = LocalCA.create_self_signed(
        clock=FrozenClock(moment), common_name="Acme Test Root", validity=timedelta(days=30)
    )
    assert ca.certificate.subject.rfc4514_string() == "CN=Acme Test Root"
    assert ca.certificate.not_valid_before_utc == moment.replace(microsecond=0)
    assert ca.certificate.not_valid_after_utc == moment.replace(microsecond=0) + timedelta(days=30)


def test_self_signed_root_defaults_to_ecdsa_p256(clock: FrozenClock) -> None:
    assert LocalCA.create_self_signed(clock=clock).key_algorithm is KeyAlgorithm.ECDSA_P256


def test_ed25519_roots_are_refused(clock: FrozenClock) -> None:
    with pytest.raises(InvalidCAMaterial, match="Ed25519 CA keys are not supported"):
        LocalCA.create_self_signed(clock=clock, key_algorithm=KeyAlgorithm.ED25519)


def test_two_roots_get_different_keys_and_serials(clock: FrozenClock) -> None:
    a, b = LocalCA.create_self_signed(clock=clock), LocalCA.create_self_signed(clock=clock)
    assert a.certificate.serial_number != b.certificate.serial_number
    assert a.certificate.public_key() != b.certificate.public_key()


def test_local_ca_satisfies_the_connector_protocol(local_ca: LocalCA) -> None:
    connector: IssuerConnector = local_ca
    assert connector.issuer_type is IssuerType.GENERIC_CA
    capabilities = connector.capabilities()
    assert capabilities.can_revoke
    assert capabilities.can_crl
    assert capabilities.can_ocsp
    assert not capabilities.async_orders
    assert capabilities.supports_must_staple


# -- leaves ------------------------------------------------------------------------------------------


def test_leaf_basics(local_ca: LocalCA, make_csr: CsrFactory) -> None:
    csr_pem = make_csr("www.example.com", ["www.example.com"])
    issued, leaf = issue(local_ca, csr_pem)
    leaf.verify_directly_issued_by(local_ca.certificate)
    assert leaf.issuer == local_ca.certificate.subject
    assert leaf.subject == x509.load_pem_x509_csr(csr_pem.encode()).subject
    assert issued.serial == canonical_serial(leaf.serial_number) == format(leaf.serial_number, "x")
    assert issued.order_id == f"local-{issued.serial}"
    assert issued.not_before == leaf.not_valid_before_utc == NOW
    assert issued.not_after == leaf.not_valid_after_utc == NOW + timedelta(days=90)
    assert issued.fingerprint_sha256 == hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert issued.chain_pem == local_ca.ca_chain_pem()
    assert (issued.key_algorithm, issued.key_size) == (KeyFamily.ECDSA, 256)
    assert leaf.signature_hash_algorithm is not None
    assert leaf.signature_hash_algorithm.name == "sha256"
    constraints = ext_value(leaf, x509.BasicConstraints)
    assert isinstance(constraints, x509.BasicConstraints)
    assert not constraints.ca
    assert critical(leaf, x509.BasicConstraints)
    assert critical(leaf, x509.KeyUsage)
    assert not critical(leaf, x509.ExtendedKeyUsage)
    assert not critical(leaf, x509.SubjectAlternativeName)


def test_serials_are_random_and_unique(local_ca: LocalCA, make_csr: CsrFactory) -> None:
    csr_pem = make_csr()
    serials = {issue(local_ca, csr_pem)[0].serial for _ in range(20)}
    assert len(serials) == 20
    assert all(0 < int(s, 16) < 2**159 and not s.startswith("0") for s in serials)


def test_p384_ca_signs_with_sha384(make_ca: CAFactory, make_csr: CsrFactory) -> None:
    _, leaf = issue(make_ca(KeyAlgorithm.ECDSA_P384), make_csr())
    assert leaf.signature_hash_algorithm is not None
    assert leaf.signature_hash_algorithm.name == "sha384"


def test_rsa_ca_signs_ed25519_leaf(make_ca: CAFactory, make_csr: CsrFactory) -> None:
    issued, leaf = issue(make_ca(KeyAlgorithm.RSA_2048), make_csr(algorithm=KeyAlgorithm.ED25519))
    assert (issued.key_algorithm, issued.key_size) == (KeyFamily.ED25519, 256)
    leaf.verify_directly_issued_by(make_ca(KeyAlgorithm.RSA_2048).certificate)


def test_key_identifiers_use_rfc5280_method_1(local_ca: LocalCA, make_csr: CsrFactory) -> None:
    _, leaf = issue(local_ca, make_csr())
    ski = ext_value(leaf, x509.SubjectKeyIdentifier)
    assert isinstance(ski, x509.SubjectKeyIdentifier)
    spki = leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    # The subjectPublicKey BIT STRING of a P-256 SPKI is the trailing 65-byte uncompressed point.
    assert ski.digest == hashlib.sha1(spki[-65:]).digest()  # noqa: S324 - RFC 5280 method 1 is SHA-1
    aki = ext_value(leaf, x509.AuthorityKeyIdentifier)
    ca_ski = ext_value(local_ca.certificate, x509.SubjectKeyIdentifier)
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert isinstance(ca_ski, x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ca_ski.digest
    assert aki.authority_cert_issuer is None
    assert aki.authority_cert_serial_number is None


# -- key usage and EKU ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "ekus", "expected_eku", "key_encipherment", "content_commitment"),
    [
        (KeyAlgorithm.RSA_2048, (), [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], True, False),
        (KeyAlgorithm.ECDSA_P256, (), [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], False, False),
        (KeyAlgorithm.ED25519, (Eku.CLIENT_AUTH,), [ExtendedKeyUsageOID.CLIENT_AUTH], False, False),
        (KeyAlgorithm.RSA_2048, (Eku.CODE_SIGNING,), [ExtendedKeyUsageOID.CODE_SIGNING], False, False),
        (
            KeyAlgorithm.RSA_2048,
            (Eku.EMAIL_PROTECTION,),
            [ExtendedKeyUsageOID.EMAIL_PROTECTION],
            True,
            True,
        ),
        (
            KeyAlgorithm.ECDSA_P256,
            (Eku.EMAIL_PROTECTION, Eku.CLIENT_AUTH),
            [ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.CLIENT_AUTH],
            False,
            True,
        ),
    ],
)
def test_key_usage_follows_key_type_and_ekus(
    local_ca: LocalCA,
    make_csr: CsrFactory,
    algorithm: KeyAlgorithm,
    ekus: tuple[Eku, ...],
    expected_eku: list[x509.ObjectIdentifier],
    key_encipherment: bool,
    content_commitment: bool,
) -> None:
    _, leaf = issue(local_ca, make_csr(algorithm=algorithm), ekus=ekus)
    assert list(ext_value(leaf, x509.ExtendedKeyUsage)) == expected_eku
    usage = ext_value(leaf, x509.KeyUsage)
    assert isinstance(usage, x509.KeyUsage)
    assert usage.digital_signature
    assert usage.key_encipherment is key_encipherment
    assert usage.content_commitment is content_commitment
    assert not (usage.key_cert_sign)
    assert not (usage.crl_sign)
    assert not (usage.key_agreement)
    assert not (usage.data_encipherment)


def test_a_pure_timestamping_certificate_has_a_critical_eku(local_ca: LocalCA, make_csr: CsrFactory) -> None:
    _, leaf = issue(local_ca, make_csr("tsa.example.com"), ekus=(Eku.TIME_STAMPING,))
    assert list(ext_value(leaf, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.TIME_STAMPING]
    assert critical(leaf, x509.ExtendedKeyUsage)


def test_profile_ekus_are_stamped_when_the_request_names_none(local_ca: LocalCA, make_csr: CsrFactory) -> None:
    _, leaf = issue(local_ca, make_csr(), profile=ProfileRules(name="web"))
    assert list(ext_value(leaf, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_eku_names_parse_case_insensitively() -> None:
    assert Eku.parse("ServerAuth") is Eku.SERVER_AUTH
    with pytest.raises(ValueError, match="unknown extended key usage"):
        Eku.parse("ocspSigning")


# -- SANs ----------------------------------------------------------------------------------------------


def test_san_merge_order_is_deterministic(local_ca: LocalCA) -> None:
    csr_pem = raw_csr(
        ec_key(),
        "www.example.com",
        [
            x509.UniformResourceIdentifier("spiffe://example.org/ns/web"),
            x509.RFC822Name("csr@example.com"),
            x509.IPAddress(ipaddress.ip_address("192.0.2.9")),
            x509.DNSName("csr.example.com"),
            x509.DNSName("WWW.EXAMPLE.COM"),
        ],
    )
    _, leaf = issue(
        local_ca,
        csr_pem,
        sans=("b.example.com", "10.0.0.1", "ops@example.com", "localhost", "a.example.com", "::1"),
    )
    san = ext_value(leaf, x509.SubjectAlternativeName)
    assert isinstance(san, x509.SubjectAlternativeName)
    assert [str(n.value) for n in san] == [
        "www.example.com",  # the common name first, then request order, then the CSR's own names
        "b.example.com",
        "localhost",
        "a.example.com",
        "csr.example.com",
        "10.0.0.1",
        "::1",
        "192.0.2.9",
        "ops@example.com",
        "csr@example.com",
        "spiffe://example.org/ns/web",
    ]
    assert san.get_values_for_type(x509.DNSName)[2] == "localhost"  # stays a DNS name, never 127.0.0.1


def test_same_request_gives_the_same_san_order(local_ca: LocalCA, make_csr: CsrFactory) -> None:
    csr_pem = make_csr("svc.example.com", ["z.example.com", "a.example.com", "10.0.0.2", "10.0.0.1"])
    first = [str(n.value) for n in ext_value(issue(local_ca, csr_pem)[1], x509.SubjectAlternativeName)]
    for _ in range(5):
        again = [str(n.value) for n in ext_value(issue(local_ca, csr_pem)[1], x509.SubjectAlternativeName)]
        assert again == first


def test_non_hostname_common_names_are_not_added_as_sans(local_ca: LocalCA) -> None:
    _, leaf = issue(
        local_ca, raw_csr(ec_key(), "Alice Example"), common_name="Alice Example", sans=("alice@example.com",)
    )
    san = ext_value(leaf, x509.SubjectAlternativeName)
    assert [str(n.value) for n in san] == ["alice@example.com"]
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Alice Example"


def test_a_csr_with_no_names_at_all_gets_no_san_extension(local_ca: LocalCA) -> None:
    _, leaf = issue(local_ca, raw_csr(ec_key(), "device-42"), common_name="device-42")
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_empty_subject_makes_the_san_critical(local_ca: LocalCA) -> None:
    _, leaf = issue(local_ca, raw_csr(ec_key(), None, [x509.DNSName("a.example.com")]), common_name="")
    assert len(leaf.subject) == 0
    assert critical(leaf, x509.SubjectAlternativeName)


def test_neither_subject_nor_san_is_refused(local_ca: LocalCA) -> None:
    with pytest.raises(BadCSR, match="neither a subject nor a subject alternative name"):
        issue(local_ca, raw_csr(ec_key(), None), common_name="")


def test_idn_request_sans_are_issued_as_a_labels(local_ca: LocalCA, make_csr: CsrFactory) -> None:
    _, leaf = issue(local_ca, make_csr("www.example.com"), sans=("bücher.example", "пример.рф"))
    names = ext_value(leaf, x509.SubjectAlternativeName).get_values_for_type(x509.DNSName)
    assert names == ["www.example.com", "xn--bcher-kva.example", "xn--e1afmkfd.xn--p1ai"]


@pytest.mark.parametrize(
    ("san", "message"),
    [
        ("www.exam\u202eple.com", "bidi control"),
        ("www.exam\u200bple.com", "ZERO WIDTH SPACE"),
        ("www.exam\x07ple.com", "U\\+0007"),
        ("www.p\u0430ypal.com", "mixes Latin letters with CYRILLIC"),
        ("a..b", "invalid label"),
        ("bob@\u200bexample.com", "ZERO WIDTH SPACE"),
    ],
)
def test_unsafe_request_sans_are_refused(local_ca: LocalCA, make_csr: CsrFactory, san: str, message: str) -> None:
    with pytest.raises(BadCSR, match=message) as caught:
        issue(local_ca, make_csr(), sans=(san,))
    assert isinstance(caught.value, PermanentIssuerError)


def test_unsafe_csr_names_are_refused(local_ca: LocalCA) -> None:
    with pytest.raises(BadCSR, match=r"CSR common name .* bidi control"):
        issue(local_ca, raw_csr(ec_key(), "invoice\u202efdp.exe"))
    with pytest.raises(BadCSR, match="mixes Latin"):
        issue(local_ca, raw_csr(ec_key(), "x", [x509.DNSName("xn--pypal-4ve.com")]), common_name="x")
    other = x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x03a@b")
    with pytest.raises(BadCSR, match="OtherName is not supported"):
        issue(local_ca, raw_csr(ec_key(), "x", [other]), common_name="x")


def test_unsafe_request_common_name_is_refused(local_ca: LocalCA, make_csr: CsrFactory) -> None:
    with pytest.raises(BadCSR, match="ZERO WIDTH"):
        issue(local_ca, make_csr(), common_name="www.\u200bexample.com")


def test_overlong_csr_common_name_is_refused(local_ca: LocalCA) -> None:
    with pytest.warns(UserWarning, match="length must be"):
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a" * 65, _validate=False)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(ec_key(), hashes.SHA256())
    # cryptography itself warns again when it parses the overlong name out of the CSR.
    with pytest.raises(BadCSR, match="longer than 64"), pytest.warns(UserWarning, match="length must be"):
        issue(local_ca, csr.public_bytes(serialization.Encoding.PEM).decode())


def test_csr_extensions_other_than_san_are_ignored(local_ca: LocalCA) -> None:
    key = ec_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evil.example.com")]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    _, leaf = issue(local_ca, csr.public_bytes(serialization.Encoding.PEM).decode(), common_name="evil.example.com")
    assert not ext_value(leaf, x509.BasicConstraints).ca


# -- bad CSRs ----------------------------------------------------------------------------------------------


def test_csr_with_a_bad_signature_is_refused(local_ca: LocalCA) -> None:
    good = raw_csr(ec_key(), "www.example.com")
    with pytest.raises(BadCSR, match="signature does not verify"):
        issue(local_ca, tamper_csr(good, b"www.example.com", b"www.examplf.com"))
    rsa_good = raw_csr(rsa_key(2048), "www.example.com")
    with pytest.raises(BadCSR, match="signature does not verify"):
        issue(local_ca, tamper_csr(rsa_good, b"www.example.com", b"wwx.example.com"))


def test_a_certificate_is_not_a_csr(local_ca: LocalCA) -> None:
    with pytest.raises(BadCSR, match="CERTIFICATE REQUEST"):
        issue(local_ca, local_ca.ca_chain_pem())


# -- validity --------------------------------------------------------------------------------------------


def test_validity_days_come_from_config(make_ca: CAFactory, make_csr: CsrFactory) -> None:
    issued, _ = issue(make_ca(config=LocalCAConfig(validity_days=30)), make_csr())
    assert issued.not_after - issued.not_before == timedelta(days=30)


@pytest.mark.parametrize(
    ("request_ttl", "profile_ttl", "expected"),
    [
        (3600, 0, timedelta(hours=1)),
        (0, 86_400, timedelta(days=1)),
        (3600, 86_400, timedelta(hours=1)),
        (86_400 * 365, 0, timedelta(days=90)),  # a cap never extends validity_days
        (0, 0, timedelta(days=90)),
    ],
)
def test_ttl_is_capped_by_the_tighter_max_ttl(
    local_ca: LocalCA, make_csr: CsrFactory, request_ttl: int, profile_ttl: int, expected: timedelta
) -> None:
    profile = ProfileRules(name="p", max_ttl_seconds=profile_ttl, allowed_ekus=())
    issued, leaf = issue(local_ca, make_csr(), max_ttl_seconds=request_ttl, profile=profile)
    assert issued.not_after - issued.not_before == expected
    assert leaf.not_valid_after_utc == issued.not_after


def test_leaf_never_outlives_its_ca(make_csr: CsrFactory, clock: FrozenClock) -> None:
    ca = LocalCA.create_self_signed(clock=clock, validity=timedelta(days=10))
    issued, _ = issue(ca, make_csr())
    assert issued.not_after == ca.certificate.not_valid_after_utc == NOW + timedelta(days=10)


def test_not_before_is_now_truncated_to_the_second(
    make_ca: CAFactory, make_csr: CsrFactory, clock: FrozenClock
) -> None:
    clock.advance(timedelta(days=2, microseconds=750_000))
    issued, leaf = issue(make_ca(), make_csr())
    assert issued.not_before == leaf.not_valid_before_utc == NOW + timedelta(days=2)
    assert issued.not_after == NOW + timedelta(days=92)


def test_an_expired_ca_refuses_to_issue(make_ca: CAFactory, make_csr: CsrFactory, clock: FrozenClock) -> None:
    ca = make_ca()
    clock.advance(timedelta(days=3651))
    with pytest.raises(InvalidCAMaterial, match="issuing CA is not valid"):
        issue(ca, make_csr())


# -- must-staple, AIA, CDP ------------------------------------------------------------------------------


def test_must_staple_adds_the_rfc7633_extension(local_ca: LocalCA, make_csr: CsrFactory) -> None:
    _, plain = issue(local_ca, make_csr())
    with pytest.raises(x509.ExtensionNotFound):
        plain.extensions.get_extension_for_class(x509.TLSFeature)
    for must_staple, profile in ((True, None), (False, ProfileRules(name="p", must_staple=True))):
        _, leaf = issue(local_ca, make_csr(), must_staple=must_staple, profile=profile)
        extension = leaf.extensions.get_extension_for_class(x509.TLSFeature)
        assert not extension.critical
        assert list(extension.value) == [x509.TLSFeatureType.status_request]
        assert extension.value.public_bytes() == bytes.fromhex("3003020105")


def test_no_public_url_and_no_explicit_urls_means_no_aia_or_cdp(local_ca: LocalCA, make_csr: CsrFactory) -> None:
    _, leaf = issue(local_ca, make_csr())
    for kind in (x509.AuthorityInformationAccess, x509.CRLDistributionPoints):
        with pytest.raises(x509.ExtensionNotFound):
            leaf.extensions.get_extension_for_class(kind)


def aia_urls(leaf: x509.Certificate) -> dict[str, list[str]]:
    aia = ext_value(leaf, x509.AuthorityInformationAccess)
    assert isinstance(aia, x509.AuthorityInformationAccess)
    return {
        "ocsp": [str(d.access_location.value) for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP],
        "ca": [
            str(d.access_location.value) for d in aia if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
        ],
    }


def crl_urls(leaf: x509.Certificate) -> list[str]:
    cdp = ext_value(leaf, x509.CRLDistributionPoints)
    assert isinstance(cdp, x509.CRLDistributionPoints)
    return [str(n.value) for point in cdp for n in point.full_name or ()]


def test_public_url_derives_ocsp_ca_issuers_and_crl_urls(make_ca: CAFactory, make_csr: CsrFactory) -> None:
    ca = make_ca(issuer_id="iss-local", public_url="https://certctl.example.test:8443/")
    _, leaf = issue(ca, make_csr())
    base = "https://certctl.example.test:8443/.well-known/pki"
    assert aia_urls(leaf) == {"ocsp": [f"{base}/ocsp/iss-local"], "ca": [f"{base}/ca/iss-local"]}
    assert crl_urls(leaf) == [f"{base}/crl/iss-local"]
    assert not critical(leaf, x509.AuthorityInformationAccess)
    assert not critical(leaf, x509.CRLDistributionPoints)


def test_explicit_urls_override_the_derived_ones(make_ca: CAFactory, make_csr: CsrFactory) -> None:
    config = LocalCAConfig(
        crl_distribution_point_urls=("http://crl.example.test/a.crl", "http://crl2.example.test/a.crl"),
        ocsp_url="http://ocsp.example.test",
    )
    ca = make_ca(config=config, issuer_id="iss-x", public_url="https://certctl.example.test")
    _, leaf = issue(ca, make_csr())
    assert aia_urls(leaf) == {
        "ocsp": ["http://ocsp.example.test"],
        "ca": ["https://certctl.example.test/.well-known/pki/ca/iss-x"],
    }
    assert crl_urls(leaf) == ["http://crl.example.test/a.crl", "http://crl2.example.test/a.crl"]


def test_explicit_crl_urls_work_without_a_public_url(make_ca: CAFactory, make_csr: CsrFactory) -> None:
    ca = make_ca(config=LocalCAConfig(crl_distribution_point_urls=("http://crl.example.test/a.crl",)))
    _, leaf = issue(ca, make_csr())
    assert crl_urls(leaf) == ["http://crl.example.test/a.crl"]
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess)


# -- profiles at issuance ---------------------------------------------------------------------------------


def test_profile_violations_stop_issuance(local_ca: LocalCA, make_csr: CsrFactory) -> None:
    web = ProfileRules(name="web", required_san_patterns=(r".*\.example\.com",))
    issue(local_ca, make_csr("www.example.com"), profile=web)
    with pytest.raises(
        ProfileViolation, match="key RSA-1024 is not allowed by profile 'web': allowed ECDSA≥256, RSA≥2048"
    ):
        issue(local_ca, raw_csr(rsa_key(1024)), profile=web)
    with pytest.raises(ProfileViolation, match=r"SAN www\.example\.org does not match"):
        issue(local_ca, make_csr("www.example.com"), sans=("www.example.org",), profile=web)
    with pytest.raises(ProfileViolation, match="extended key usage clientAuth is not allowed"):
        issue(local_ca, make_csr("www.example.com"), ekus=(Eku.CLIENT_AUTH,), profile=web)


def test_spiffe_pattern_applies_to_csr_uri_sans(local_ca: LocalCA) -> None:
    mesh = ProfileRules(name="mesh", allowed_ekus=(), spiffe_uri_pattern=r"spiffe://example\.org/.+")
    ok = raw_csr(ec_key(), "web", [x509.UniformResourceIdentifier("spiffe://example.org/web")])
    _, leaf = issue(local_ca, ok, common_name="web", profile=mesh)
    assert ext_value(leaf, x509.SubjectAlternativeName).get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://example.org/web"
    ]
    bad = raw_csr(ec_key(), "web", [x509.UniformResourceIdentifier("spiffe://evil.org/web")])
    with pytest.raises(ProfileViolation, match="SPIFFE URI pattern"):
        issue(local_ca, bad, common_name="web", profile=mesh)


# -- the rest of the contract --------------------------------------------------------------------------------


def test_renew_issues_a_fresh_certificate(local_ca: LocalCA, make_csr: CsrFactory) -> None:
    csr_pem = make_csr()
    first = local_ca.issue(IssueRequest(common_name="www.example.com", sans=(), csr_pem=csr_pem))
    renewed = local_ca.renew(
        IssueRequest(common_name="www.example.com", sans=(), csr_pem=csr_pem, renews_order_id=first.order_id)
    )
    assert renewed.serial != first.serial
    assert renewed.order_id != first.order_id


def test_revoke_accepts_any_serial_spelling_and_refuses_garbage(local_ca: LocalCA) -> None:
    local_ca.revoke("00:0A:ff", x509.ReasonFlags.key_compromise)
    local_ca.revoke("abc")
    with pytest.raises(PermanentIssuerError, match="not hexadecimal"):
        local_ca.revoke("zz")


def test_orders_are_always_complete(local_ca: LocalCA) -> None:
    assert local_ca.get_order_status("local-abc").state is OrderState.COMPLETED


def test_issue_request_validates_itself() -> None:
    with pytest.raises(ValueError, match="max_ttl_seconds"):
        IssueRequest(common_name="a", sans=(), csr_pem="", max_ttl_seconds=-1)
    with pytest.raises(TypeError, match="tuple of strings"):
        IssueRequest(common_name="a", sans="a.example.com", csr_pem="")  # type: ignore[arg-type]
