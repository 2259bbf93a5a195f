from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from certctl.pki.csr import build_csr, csr_common_names, csr_key_info, csr_subject_alt_names, load_csr
from certctl.pki.errors import BadCSR
from certctl.pki.keygen import generate_key_and_csr
from certctl.pki.keys import KeyAlgorithm, KeyFamily, KeyInfo
from tests.pki.factories import ec_key, raw_csr, tamper_csr


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_server_keygen_makes_a_key_and_a_matching_signed_csr(algorithm: KeyAlgorithm) -> None:
    generated = generate_key_and_csr("api.example.com", ["api.example.com", "10.0.0.7", "ops@example.com"], algorithm)
    csr = load_csr(generated.csr_pem)
    assert generated.key.algorithm is algorithm
    assert generated.key.matches(csr.public_key())
    assert csr_key_info(csr) == KeyInfo(algorithm.family, algorithm.size_bits)
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "api.example.com"
    assert csr_subject_alt_names(csr) == [
        x509.DNSName("api.example.com"),
        x509.IPAddress(ipaddress.ip_address("10.0.0.7")),
        x509.RFC822Name("ops@example.com"),
    ]


def test_server_keygen_defaults_to_ecdsa_p256() -> None:
    assert generate_key_and_csr("a.example.com", []).key.algorithm is KeyAlgorithm.ECDSA_P256


def test_build_csr_refuses_unsafe_names() -> None:
    key = generate_key_and_csr("a.example.com", []).key
    with pytest.raises(ValueError, match="bidi"):
        build_csr(key, "a\u202eb", [])
    with pytest.raises(ValueError, match="ZERO WIDTH"):
        build_csr(key, "a.example.com", ["a\u200b.example.com"])


def test_csr_with_no_common_name_marks_its_san_request_critical() -> None:
    key = generate_key_and_csr("a.example.com", []).key
    csr = load_csr(build_csr(key, "", ["a.example.com"]))
    assert len(csr.subject) == 0
    assert csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_tampered_csr_is_rejected_as_bad_signature() -> None:
    csr_pem = raw_csr(ec_key(), "www.example.com")
    tampered = tamper_csr(csr_pem, b"www.example.com", b"www.examp1e.com")
    with pytest.raises(BadCSR, match="signature does not verify") as caught:
        load_csr(tampered)
    assert "signature" in caught.value.reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "PEM block of type 'CERTIFICATE REQUEST'"),
        ("hello", "PEM block of type 'CERTIFICATE REQUEST'"),
        ("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "PEM block of type"),
        ("-----BEGIN NEW CERTIFICATE REQUEST-----\nMIIB\n-----END NEW CERTIFICATE REQUEST-----\n", "PEM block"),
        ("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n", "does not parse"),
    ],
)
def test_unparsable_csr_is_rejected(text: str, message: str) -> None:
    with pytest.raises(BadCSR, match=message):
        load_csr(text)


def test_csr_common_names_are_safety_checked_and_length_limited() -> None:
    assert csr_common_names(load_csr(raw_csr(ec_key(), "svc.example.com"))) == ["svc.example.com"]
    with pytest.raises(BadCSR, match="bidi control"):
        csr_common_names(load_csr(raw_csr(ec_key(), "gpj.\u202eexe")))
    assert csr_common_names(load_csr(raw_csr(ec_key(), None, [x509.DNSName("a.example.com")]))) == []


def test_csr_key_info_classifies_the_csr_key() -> None:
    assert csr_key_info(load_csr(raw_csr(ec_key()))).family is KeyFamily.ECDSA
