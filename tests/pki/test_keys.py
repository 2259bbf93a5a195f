from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519

from certctl.pki.keys import (
    KeyAlgorithm,
    KeyFamily,
    KeyInfo,
    SigningKey,
    UnsupportedKey,
    classify_public_key,
)
from tests.pki.factories import ec_key, key_pem, name, rsa_key


@pytest.mark.parametrize(
    ("algorithm", "key_type", "size"),
    [
        (KeyAlgorithm.ECDSA_P256, ec.EllipticCurvePublicKey, 256),
        (KeyAlgorithm.ECDSA_P384, ec.EllipticCurvePublicKey, 384),
        (KeyAlgorithm.RSA_2048, rsa.RSAPublicKey, 2048),
        (KeyAlgorithm.RSA_3072, rsa.RSAPublicKey, 3072),
        (KeyAlgorithm.RSA_4096, rsa.RSAPublicKey, 4096),
        (KeyAlgorithm.ED25519, ed25519.Ed25519PublicKey, 256),
    ],
)
def test_generated_keys_have_the_requested_type_and_size(
    signing_keys: Callable[[KeyAlgorithm], SigningKey], algorithm: KeyAlgorithm, key_type: type, size: int
) -> None:
    key = signing_keys(algorithm)
    assert isinstance(key.public_key(), key_type)
    assert key.algorithm is algorithm
    assert key.info == KeyInfo(algorithm.family, size) == classify_public_key(key.public_key())
    assert key.info.algorithm is algorithm


def test_default_algorithm_is_ecdsa_p256() -> None:
    assert SigningKey.generate().algorithm is KeyAlgorithm.ECDSA_P256


def test_rsa_keys_use_public_exponent_65537(signing_keys: Callable[[KeyAlgorithm], SigningKey]) -> None:
    public = signing_keys(KeyAlgorithm.RSA_2048).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers().e == 65537


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ECDSA-P256", KeyAlgorithm.ECDSA_P256),
        ("ecdsa_p384", KeyAlgorithm.ECDSA_P384),
        ("P-256", KeyAlgorithm.ECDSA_P256),
        ("rsa-3072", KeyAlgorithm.RSA_3072),
        ("RSA4096", KeyAlgorithm.RSA_4096),
        ("ed25519", KeyAlgorithm.ED25519),
    ],
)
def test_key_algorithm_parses_common_spellings(text: str, expected: KeyAlgorithm) -> None:
    assert KeyAlgorithm.parse(text) is expected


@pytest.mark.parametrize("text", ["RSA-1024", "ECDSA-P521", "DSA", ""])
def test_key_algorithm_rejects_unknown_names(text: str) -> None:
    with pytest.raises(ValueError, match="unknown key algorithm"):
        KeyAlgorithm.parse(text)


def test_only_ed25519_cannot_sign_certificates() -> None:
    assert [a for a in KeyAlgorithm if not a.can_sign_certificates] == [KeyAlgorithm.ED25519]


@pytest.mark.parametrize(
    ("text", "family"), [("rsa", KeyFamily.RSA), ("EC", KeyFamily.ECDSA), ("Ed25519", KeyFamily.ED25519)]
)
def test_key_family_parses_profile_names(text: str, family: KeyFamily) -> None:
    assert KeyFamily.parse(text) is family


@pytest.mark.parametrize(
    ("public_key", "expected"),
    [
        (rsa_key(1024).public_key(), "RSA-1024"),
        (ec_key(ec.SECP521R1()).public_key(), "ECDSA-521"),
        (ec_key(ec.SECP384R1()).public_key(), "ECDSA-384"),
        (ed25519.Ed25519PrivateKey.generate().public_key(), "Ed25519-256"),
    ],
)
def test_classify_public_key_reports_family_and_bits(public_key: object, expected: str) -> None:
    assert str(classify_public_key(public_key)) == expected


@pytest.mark.parametrize(
    "public_key",
    [
        ed448.Ed448PrivateKey.generate().public_key(),
        x25519.X25519PrivateKey.generate().public_key(),
        dsa.generate_private_key(2048).public_key(),
        "not a key",
    ],
)
def test_classify_public_key_refuses_other_key_types(public_key: object) -> None:
    with pytest.raises(UnsupportedKey):
        classify_public_key(public_key)


def test_key_info_without_a_generatable_algorithm() -> None:
    assert KeyInfo(KeyFamily.RSA, 1024).algorithm is None


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_pkcs8_pem_round_trips(signing_keys: Callable[[KeyAlgorithm], SigningKey], algorithm: KeyAlgorithm) -> None:
    key = signing_keys(algorithm)
    pem = key.private_key_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = SigningKey.from_pem(pem)
    assert loaded.algorithm is algorithm
    assert loaded.matches(key.public_key())


def test_encrypted_pkcs8_needs_the_password(signing_keys: Callable[[KeyAlgorithm], SigningKey]) -> None:
    key = signing_keys(KeyAlgorithm.ECDSA_P256)
    pem = key.private_key_pem(password=b"s3cret")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert SigningKey.from_pem(pem, password=b"s3cret").matches(key.public_key())
    with pytest.raises(UnsupportedKey, match="cannot load private key"):
        SigningKey.from_pem(pem)
    with pytest.raises(UnsupportedKey, match="cannot load private key"):
        SigningKey.from_pem(pem, password=b"wrong")


def test_traditional_pkcs1_and_sec1_keys_load() -> None:
    rsa_pem = key_pem(rsa_key(2048), serialization.PrivateFormat.TraditionalOpenSSL)
    ec_pem = key_pem(ec_key(), serialization.PrivateFormat.TraditionalOpenSSL)
    assert rsa_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert ec_pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    assert SigningKey.from_pem(rsa_pem).algorithm is KeyAlgorithm.RSA_2048
    assert SigningKey.from_pem(ec_pem.decode("ascii")).algorithm is KeyAlgorithm.ECDSA_P256


@pytest.mark.parametrize(
    "private_key",
    [rsa_key(1024), ec_key(ec.SECP521R1()), ec_key(ec.SECP256K1()), ed448.Ed448PrivateKey.generate()],
    ids=["rsa-1024", "p-521", "secp256k1", "ed448"],
)
def test_unsupported_private_keys_are_refused(private_key: object) -> None:
    pem = private_key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(UnsupportedKey):
        SigningKey.from_pem(pem)


def test_garbage_pem_is_refused() -> None:
    with pytest.raises(UnsupportedKey, match="cannot load private key"):
        SigningKey.from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


def test_repr_never_shows_key_material(signing_keys: Callable[[KeyAlgorithm], SigningKey]) -> None:
    key = signing_keys(KeyAlgorithm.RSA_2048)
    assert repr(key) == "SigningKey(RSA-2048)"
    material = key.export_ca_material("-----BEGIN CERTIFICATE-----\n")
    assert "PRIVATE" not in repr(material)


def test_matches_only_its_own_public_key(signing_keys: Callable[[KeyAlgorithm], SigningKey]) -> None:
    key = signing_keys(KeyAlgorithm.ECDSA_P256)
    assert key.matches(key.public_key())
    assert not key.matches(signing_keys(KeyAlgorithm.ECDSA_P384).public_key())
    assert not key.matches(ec_key().public_key())
    assert not key.matches("nope")


@pytest.mark.parametrize(
    ("algorithm", "hash_name"),
    [
        (KeyAlgorithm.ECDSA_P256, "sha256"),
        (KeyAlgorithm.ECDSA_P384, "sha384"),
        (KeyAlgorithm.RSA_2048, "sha256"),
        (KeyAlgorithm.RSA_4096, "sha256"),
        (KeyAlgorithm.ED25519, None),
    ],
)
def test_signature_hash_follows_the_key(
    signing_keys: Callable[[KeyAlgorithm], SigningKey], algorithm: KeyAlgorithm, hash_name: str | None
) -> None:
    key = signing_keys(algorithm)
    digest = key.signature_hash()
    assert (digest.name if digest else None) == hash_name
    csr = key.sign_csr(x509.CertificateSigningRequestBuilder().subject_name(name("x.example.com")))
    assert csr.is_signature_valid
    assert (csr.signature_hash_algorithm.name if csr.signature_hash_algorithm else None) == hash_name
    assert isinstance(digest, (hashes.SHA256, hashes.SHA384, type(None)))
