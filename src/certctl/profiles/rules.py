"""What a certificate profile may hold (core.md §2.9, pki.md §A1.4): key rules, EKUs, SAN patterns, TTL.

Each check raises ValidationFailed naming the field, the allowed values and what was sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from certctl.errors import ValidationFailed

SHORT_LIVED_TTL_SECONDS = 3600  # short-lived ⇔ allow_short_lived and 0 < max_ttl_seconds < 3600
MAX_TTL_SECONDS = 2_147_483_647  # certificate_profiles.max_ttl_seconds is a 32-bit INTEGER
MAX_RSA_KEY_BITS = 16_384
ED25519_KEY_BITS = 256  # the CSR check counts an Ed25519 key as 256 bits
ECDSA_CURVE_BITS = (256, 384, 521)  # P-256, P-384, P-521
SPIFFE_SCHEME = "spiffe://"


class KeyAlgorithm(StrEnum):
    RSA = "RSA"
    ECDSA = "ECDSA"
    ED25519 = "Ed25519"


class ExtendedKeyUsage(StrEnum):
    """The EKU names a profile may stamp (RFC 5280 §4.2.1.12 id-kp-*)."""

    SERVER_AUTH = "serverAuth"
    CLIENT_AUTH = "clientAuth"
    CODE_SIGNING = "codeSigning"
    EMAIL_PROTECTION = "emailProtection"
    TIME_STAMPING = "timeStamping"


_FLOOR = {KeyAlgorithm.RSA: 2048, KeyAlgorithm.ECDSA: 256, KeyAlgorithm.ED25519: 0}
_ALGORITHMS = ", ".join(a.value for a in KeyAlgorithm)
_EKU_NAMES = tuple(e.value for e in ExtendedKeyUsage)
_EKUS = ", ".join(_EKU_NAMES)


@dataclass(frozen=True, slots=True)
class KeyAlgorithmRule:
    """A CSR key passes when its algorithm matches and its size is at least `min_size` bits."""

    algorithm: KeyAlgorithm
    min_size: int

    def __post_init__(self) -> None:
        size, floor = self.min_size, _FLOOR[self.algorithm]
        if self.algorithm is KeyAlgorithm.RSA and not floor <= size <= MAX_RSA_KEY_BITS:
            raise ValidationFailed(f"RSA min_size must be between {floor} and {MAX_RSA_KEY_BITS}, got {size}")
        if self.algorithm is KeyAlgorithm.ECDSA and size not in ECDSA_CURVE_BITS:
            curves = ", ".join(str(bits) for bits in ECDSA_CURVE_BITS)
            raise ValidationFailed(f"ECDSA min_size must be a curve size ({curves}), got {size}")
        if self.algorithm is KeyAlgorithm.ED25519 and not 0 <= size <= ED25519_KEY_BITS:
            raise ValidationFailed(
                f"Ed25519 keys are always {ED25519_KEY_BITS} bits: min_size must be between 0 and "
                f"{ED25519_KEY_BITS}, got {size}"
            )

    @classmethod
    def parse(cls, algorithm: str, min_size: int | None = None) -> KeyAlgorithmRule:
        """From wire values; a missing min_size is the algorithm's floor (RSA 2048, ECDSA 256, Ed25519 0)."""
        try:
            kind = KeyAlgorithm(algorithm)
        except ValueError:
            raise ValidationFailed(f"invalid key algorithm {algorithm!r} (allowed: {_ALGORITHMS})") from None
        return cls(kind, _FLOOR[kind] if min_size is None else min_size)

    def as_json(self) -> dict[str, Any]:
        return {"algorithm": self.algorithm.value, "min_size": self.min_size}


def key_algorithms(rules: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rules to store; an empty list means the default `[{ECDSA,256},{RSA,2048}]` (as the original)."""
    if not rules:
        return [KeyAlgorithmRule(KeyAlgorithm.ECDSA, 256).as_json(), KeyAlgorithmRule(KeyAlgorithm.RSA, 2048).as_json()]
    parsed = []
    for index, rule in enumerate(rules):
        try:
            parsed.append(KeyAlgorithmRule.parse(rule["algorithm"], rule.get("min_size")).as_json())
        except ValidationFailed as exc:
            raise ValidationFailed(f"allowed_key_algorithms[{index}]: {exc}") from exc
    return parsed


def extended_key_usages(ekus: Sequence[str]) -> list[str]:
    """The EKUs to store; an empty list means the default `["serverAuth"]` (as the original)."""
    if not ekus:
        return [ExtendedKeyUsage.SERVER_AUTH.value]
    for eku in ekus:
        if eku not in _EKU_NAMES:
            raise ValidationFailed(f"allowed_ekus: invalid EKU {eku!r} (allowed: {_EKUS})")
    return list(ekus)


def san_patterns(patterns: Sequence[str]) -> list[str]:
    """Regular expressions every SAN must match one of; each must compile."""
    for index, pattern in enumerate(patterns):
        if not pattern:
            raise ValidationFailed(f"required_san_patterns[{index}] is empty")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValidationFailed(f"required_san_patterns[{index}] {pattern!r} is not a valid regex: {exc}") from exc
    return list(patterns)


def check_spiffe_pattern(pattern: str) -> None:
    if pattern and not pattern.startswith(SPIFFE_SCHEME):
        raise ValidationFailed(f"spiffe_uri_pattern must start with {SPIFFE_SCHEME!r}, got {pattern!r}")


def check_ttl(max_ttl_seconds: int, allow_short_lived: bool) -> None:
    if not 0 <= max_ttl_seconds <= MAX_TTL_SECONDS:
        raise ValidationFailed(
            f"max_ttl_seconds must be between 0 (no cap) and {MAX_TTL_SECONDS}, got {max_ttl_seconds}"
        )
    if allow_short_lived and not 0 < max_ttl_seconds < SHORT_LIVED_TTL_SECONDS:
        raise ValidationFailed(
            f"allow_short_lived needs max_ttl_seconds between 1 and {SHORT_LIVED_TTL_SECONDS - 1} "
            f"(short-lived certificates live under an hour), got {max_ttl_seconds}"
        )


def csr_attributes(names: Sequence[str]) -> list[str]:
    for index, name in enumerate(names):
        if not name.strip():
            raise ValidationFailed(f"required_csr_attributes[{index}] is empty")
    return list(names)
