"""The dangerous layer: the only module that holds private keys, serialises them or signs with them.

Everything else in `certctl.pki` states intent ("issue this leaf") and hands a builder to a
`SigningKey`. Keys held in a PKCS#11 token (`certctl.pki.pkcs11`, stack.md §B.4.6) are `TokenHeldKey`s:
they sign inside the token and never yield key bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import ocsp

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

RSA_PUBLIC_EXPONENT = 65537
ED25519_KEY_SIZE = 256
"""Ed25519 counts as 256 bits in the CSR-vs-profile check (core.md §2.9)."""


class KeyFamily(StrEnum):
    """Key algorithm family as profiles and certificate versions name it."""

    RSA = "RSA"
    ECDSA = "ECDSA"
    ED25519 = "Ed25519"

    @classmethod
    def parse(cls, text: str) -> KeyFamily:
        """Case-insensitive ("ecdsa", "EC", "ed25519"); raises ValueError."""
        key = text.strip().upper()
        found = {"RSA": cls.RSA, "ECDSA": cls.ECDSA, "EC": cls.ECDSA, "ED25519": cls.ED25519}.get(key)
        if found is None:
            raise ValueError(f"unknown key algorithm {text!r}; expected RSA, ECDSA or Ed25519")
        return found


class KeyAlgorithm(StrEnum):
    """A key type certctl can generate; CA keys exclude Ed25519 (pki.md §A1.2)."""

    ECDSA_P256 = "ECDSA-P256"
    ECDSA_P384 = "ECDSA-P384"
    RSA_2048 = "RSA-2048"
    RSA_3072 = "RSA-3072"
    RSA_4096 = "RSA-4096"
    ED25519 = "Ed25519"

    @property
    def family(self) -> KeyFamily:
        return _ALGORITHM_INFO[self][0]

    @property
    def size_bits(self) -> int:
        return _ALGORITHM_INFO[self][1]

    @property
    def can_sign_certificates(self) -> bool:
        """Whether a CA may hold a key of this type (Ed25519 CA keys are not supported)."""
        return self is not KeyAlgorithm.ED25519

    @classmethod
    def parse(cls, text: str) -> KeyAlgorithm:
        """Case-insensitive, `_` or `-` ("ecdsa-p256", "RSA_3072", "P-384", "ed25519"); raises ValueError."""
        key = text.strip().upper().replace("_", "-")
        found = _ALGORITHM_ALIASES.get(key)
        if found is None:
            allowed = ", ".join(member.value for member in cls)
            raise ValueError(f"unknown key algorithm {text!r}; expected one of {allowed}")
        return found


_ALGORITHM_INFO: dict[KeyAlgorithm, tuple[KeyFamily, int]] = {
    KeyAlgorithm.ECDSA_P256: (KeyFamily.ECDSA, 256),
    KeyAlgorithm.ECDSA_P384: (KeyFamily.ECDSA, 384),
    KeyAlgorithm.RSA_2048: (KeyFamily.RSA, 2048),
    KeyAlgorithm.RSA_3072: (KeyFamily.RSA, 3072),
    KeyAlgorithm.RSA_4096: (KeyFamily.RSA, 4096),
    KeyAlgorithm.ED25519: (KeyFamily.ED25519, ED25519_KEY_SIZE),
}
_ALGORITHM_ALIASES: dict[str, KeyAlgorithm] = {member.value.upper(): member for member in KeyAlgorithm} | {
    "P-256": KeyAlgorithm.ECDSA_P256,
    "EC-P256": KeyAlgorithm.ECDSA_P256,
    "ECDSA-256": KeyAlgorithm.ECDSA_P256,
    "P-384": KeyAlgorithm.ECDSA_P384,
    "EC-P384": KeyAlgorithm.ECDSA_P384,
    "ECDSA-384": KeyAlgorithm.ECDSA_P384,
    "RSA2048": KeyAlgorithm.RSA_2048,
    "RSA3072": KeyAlgorithm.RSA_3072,
    "RSA4096": KeyAlgorithm.RSA_4096,
}
_CURVES: dict[KeyAlgorithm, ec.EllipticCurve] = {
    KeyAlgorithm.ECDSA_P256: ec.SECP256R1(),
    KeyAlgorithm.ECDSA_P384: ec.SECP384R1(),
}


class UnsupportedKey(ValueError):
    """A key of a type or size certctl does not handle (DSA, Ed448, X25519, P-521 CA keys, …)."""


class KeyNotExportable(ValueError):
    """The key lives in a hardware token: it signs there, and its bytes cannot leave it."""


class TokenHeldKey:
    """Mixin for private keys that live in a token (PKCS#11): `SigningKey` never tries to export them."""

    __slots__ = ()

    @property
    def key_reference(self) -> str:
        """Where the key lives (a `pkcs11:` reference, never with a PIN)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A public key classified for profile checks: RSA modulus bits, EC curve bits, Ed25519 = 256."""

    family: KeyFamily
    size_bits: int

    def __str__(self) -> str:
        return f"{self.family.value}-{self.size_bits}"

    @property
    def algorithm(self) -> KeyAlgorithm | None:
        """The matching generatable algorithm, or None (e.g. RSA-1024, ECDSA-521)."""
        return next((a for a, info in _ALGORITHM_INFO.items() if info == (self.family, self.size_bits)), None)


def classify_public_key(public_key: object) -> KeyInfo:
    """Family and size of a public key; raises UnsupportedKey for DSA, Ed448, X25519 and the like."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return KeyInfo(KeyFamily.RSA, public_key.key_size)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return KeyInfo(KeyFamily.ECDSA, public_key.curve.key_size)
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return KeyInfo(KeyFamily.ED25519, ED25519_KEY_SIZE)
    raise UnsupportedKey(f"unsupported public key type {type(public_key).__name__}")


def _algorithm_of(key: PrivateKey) -> KeyAlgorithm:
    info = classify_public_key(key.public_key())
    algorithm = info.algorithm
    if algorithm is None or (
        isinstance(key, ec.EllipticCurvePrivateKey) and not isinstance(key.curve, (ec.SECP256R1, ec.SECP384R1))
    ):
        raise UnsupportedKey(f"unsupported key {info}; supported: {', '.join(a.value for a in KeyAlgorithm)}")
    return algorithm


@dataclass(frozen=True, slots=True)
class CAMaterial:
    """A CA certificate (followed by its issuers, PEM) and its private key (PKCS#8 PEM), for persistence."""

    cert_pem: str
    key_pem: bytes = field(repr=False)
    """PKCS#8 PEM; encrypted when exported with a password. Empty when the key is held in a token."""
    key_reference: str | None = None
    """Set instead of `key_pem` for a token-held key: where it lives (no PIN)."""


class SigningKey:
    """A private key in memory: it signs certificates and CSRs and exports itself as PKCS#8 PEM only.

    Build one with `generate` or `from_pem`; its repr never shows key material.
    """

    __slots__ = ("_algorithm", "_key")

    def __init__(self, key: PrivateKey) -> None:
        self._algorithm = _algorithm_of(key)
        self._key = key

    @classmethod
    def generate(cls, algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256) -> SigningKey:
        """A fresh key from the OS CSPRNG."""
        key: PrivateKey
        if algorithm.family is KeyFamily.RSA:
            key = rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=algorithm.size_bits)
        elif algorithm.family is KeyFamily.ECDSA:
            key = ec.generate_private_key(_CURVES[algorithm])
        else:
            key = ed25519.Ed25519PrivateKey.generate()
        return cls(key)

    @classmethod
    def from_pem(cls, pem: bytes | str, password: bytes | None = None) -> SigningKey:
        """Load PKCS#8, PKCS#1 RSA or SEC1 EC PEM; raises UnsupportedKey (a ValueError) when unusable."""
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_private_key(data, password=password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            # The library's message never contains key bytes; keep it for the operator.
            raise UnsupportedKey(f"cannot load private key: {exc}") from exc
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
            raise UnsupportedKey(f"unsupported private key type {type(key).__name__}")
        return cls(key)

    def __repr__(self) -> str:
        return f"SigningKey({self._algorithm.value})"

    @property
    def algorithm(self) -> KeyAlgorithm:
        return self._algorithm

    @property
    def info(self) -> KeyInfo:
        return KeyInfo(self._algorithm.family, self._algorithm.size_bits)

    def public_key(self) -> PublicKey:
        return self._key.public_key()

    @property
    def key_reference(self) -> str | None:
        """The token reference of a token-held key; None for a key in memory."""
        return self._key.key_reference if isinstance(self._key, TokenHeldKey) else None

    def matches(self, public_key: object) -> bool:
        """Whether `public_key` is this key's public half (compared as SubjectPublicKeyInfo DER)."""
        if not isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
            return False
        return _spki_der(public_key) == _spki_der(self._key.public_key())

    def signature_hash(self) -> hashes.SHA256 | hashes.SHA384 | None:
        """SHA-256 for RSA and P-256, SHA-384 for P-384, None for Ed25519 (pki.md §A1.2)."""
        if self._algorithm is KeyAlgorithm.ED25519:
            return None
        if self._algorithm is KeyAlgorithm.ECDSA_P384:
            return hashes.SHA384()
        return hashes.SHA256()

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        """Sign a finished certificate template with this key (the issuer's key)."""
        return builder.sign(self._key, self.signature_hash())

    def sign_csr(self, builder: x509.CertificateSigningRequestBuilder) -> x509.CertificateSigningRequest:
        """Sign a CSR template with this key (the subject's key)."""
        return builder.sign(self._key, self.signature_hash())

    def sign_crl(self, builder: x509.CertificateRevocationListBuilder) -> x509.CertificateRevocationList:
        """Sign a CRL template with this key (the issuing CA's key)."""
        return builder.sign(self._key, self.signature_hash())

    def sign_ocsp(self, builder: ocsp.OCSPResponseBuilder) -> ocsp.OCSPResponse:
        """Sign an OCSP response template with this key (a responder's, or the CA's)."""
        return builder.sign(self._key, self.signature_hash())

    def private_key_pem(self, password: bytes | None = None) -> bytes:
        """PKCS#8 PEM, encrypted with the best available scheme when a password is given.

        Raises KeyNotExportable for a token-held key.
        """
        if isinstance(self._key, TokenHeldKey):
            raise KeyNotExportable(f"the key at {self._key.key_reference} is held in a token and cannot be exported")
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)

    def export_ca_material(self, cert_pem: str, password: bytes | None = None) -> CAMaterial:
        """Bundle this key with its CA certificate chain for persistence (encrypted when a password is given).

        A token-held key contributes only its reference: the material then holds no key bytes at all.
        """
        if isinstance(self._key, TokenHeldKey):
            return CAMaterial(cert_pem=cert_pem, key_pem=b"", key_reference=self._key.key_reference)
        return CAMaterial(cert_pem=cert_pem, key_pem=self.private_key_pem(password))


def _spki_der(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
