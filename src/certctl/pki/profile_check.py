"""Certificate profile enforcement at issuance (core.md §2.9, pki.md §A1.4), as pure functions.

Every check raises ProfileViolation naming the profile and the rule, e.g.
"key RSA-1024 is not allowed by profile 'web': allowed ECDSA≥256, RSA≥2048".

SAN patterns are matched against the whole name (`re.fullmatch`), unlike the original's unanchored Go
`MatchString`, so `.*\\.example\\.com` cannot be satisfied by `a.example.com.evil.net`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from certctl.pki.csr import csr_key_info, load_csr
from certctl.pki.errors import ProfileViolation
from certctl.pki.extensions import ExtendedKeyUsageName
from certctl.pki.keys import KeyFamily, KeyInfo
from certctl.pki.sans import SubjectAltNames

SHORT_LIVED_MAX_TTL_SECONDS = 3600
"""Short-lived ⇔ allow_short_lived and 0 < max_ttl_seconds < 3600 (core.md §2.9)."""

_MIN_SIZE_FLOOR = {KeyFamily.RSA: 2048, KeyFamily.ECDSA: 256, KeyFamily.ED25519: 0}


@dataclass(frozen=True, slots=True)
class KeyAlgorithmRule:
    """A CSR key passes when its family matches and its size is at least `min_size` bits."""

    algorithm: KeyFamily
    min_size: int

    def __post_init__(self) -> None:
        floor = _MIN_SIZE_FLOOR[self.algorithm]
        if self.min_size < floor:
            raise ValueError(f"{self.algorithm.value} min_size must be at least {floor}, not {self.min_size}")

    def allows(self, key: KeyInfo) -> bool:
        return key.family is self.algorithm and key.size_bits >= self.min_size

    def __str__(self) -> str:
        return f"{self.algorithm.value}≥{self.min_size}"


DEFAULT_KEY_ALGORITHM_RULES = (KeyAlgorithmRule(KeyFamily.ECDSA, 256), KeyAlgorithmRule(KeyFamily.RSA, 2048))


@dataclass(frozen=True, slots=True)
class ProfileRules:
    """The issuance-time rules of one certificate profile; invalid combinations fail on construction."""

    name: str
    allowed_key_algorithms: tuple[KeyAlgorithmRule, ...] = DEFAULT_KEY_ALGORITHM_RULES
    max_ttl_seconds: int = 0
    """0 = no cap."""
    allowed_ekus: tuple[ExtendedKeyUsageName, ...] = (ExtendedKeyUsageName.SERVER_AUTH,)
    """Empty = any of the known EKUs."""
    required_san_patterns: tuple[str, ...] = ()
    spiffe_uri_pattern: str = ""
    allow_short_lived: bool = False
    must_staple: bool = False
    _san_regexes: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _spiffe_regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.allowed_key_algorithms:
            raise ValueError("allowed_key_algorithms must list at least one {algorithm, min_size}")
        if self.max_ttl_seconds < 0:
            raise ValueError("max_ttl_seconds must be 0 (no cap) or positive")
        if self.allow_short_lived and not 0 < self.max_ttl_seconds < SHORT_LIVED_MAX_TTL_SECONDS:
            raise ValueError(f"allow_short_lived needs 0 < max_ttl_seconds < {SHORT_LIVED_MAX_TTL_SECONDS}")
        object.__setattr__(
            self, "_san_regexes", tuple(_compile(p, "required_san_patterns") for p in self.required_san_patterns)
        )
        spiffe = _compile(self.spiffe_uri_pattern, "spiffe_uri_pattern") if self.spiffe_uri_pattern else None
        object.__setattr__(self, "_spiffe_regex", spiffe)

    @property
    def is_short_lived(self) -> bool:
        """Short-lived certificates are left out of the CRL; OCSP answers "good" for them."""
        return self.allow_short_lived and 0 < self.max_ttl_seconds < SHORT_LIVED_MAX_TTL_SECONDS

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any]) -> ProfileRules:
        """Build from a profile row's fields (JSON shapes as stored); raises ValueError on bad values."""
        algorithms = tuple(
            KeyAlgorithmRule(KeyFamily.parse(str(rule["algorithm"])), int(rule["min_size"]))
            for rule in data.get("allowed_key_algorithms") or ()
        )
        return cls(
            name=name,
            allowed_key_algorithms=algorithms or DEFAULT_KEY_ALGORITHM_RULES,
            max_ttl_seconds=int(data.get("max_ttl_seconds") or 0),
            allowed_ekus=tuple(ExtendedKeyUsageName.parse(str(e)) for e in data.get("allowed_ekus") or ()),
            required_san_patterns=tuple(str(p) for p in data.get("required_san_patterns") or ()),
            spiffe_uri_pattern=str(data.get("spiffe_uri_pattern") or ""),
            allow_short_lived=bool(data.get("allow_short_lived", False)),
            must_staple=bool(data.get("must_staple", False)),
        )


def _compile(pattern: str, rule: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{rule}: invalid regular expression {pattern!r}: {exc}") from exc


def check_key(rules: ProfileRules, key: KeyInfo) -> None:
    """The key must match some `{algorithm, min_size}` rule; raises ProfileViolation."""
    if not any(rule.allows(key) for rule in rules.allowed_key_algorithms):
        allowed = ", ".join(str(rule) for rule in rules.allowed_key_algorithms)
        raise ProfileViolation(
            rules.name,
            "allowed_key_algorithms",
            f"key {key} is not allowed by profile {rules.name!r}: allowed {allowed}",
        )


def check_ekus(rules: ProfileRules, ekus: Sequence[ExtendedKeyUsageName]) -> None:
    """Every requested EKU must be in `allowed_ekus` (when that list is non-empty); raises ProfileViolation."""
    if not rules.allowed_ekus:
        return
    for eku in ekus:
        if eku not in rules.allowed_ekus:
            allowed = ", ".join(e.value for e in rules.allowed_ekus)
            raise ProfileViolation(
                rules.name,
                "allowed_ekus",
                f"extended key usage {eku.value} is not allowed by profile {rules.name!r}: allowed {allowed}",
            )


def check_sans(rules: ProfileRules, sans: SubjectAltNames) -> None:
    """Every DNS/IP/email SAN must fully match a required pattern (when any are set); every URI SAN must
    match `spiffe_uri_pattern` when set, else the required patterns. Raises ProfileViolation."""
    spiffe = rules._spiffe_regex
    for uri in sans.uris:
        if spiffe is not None and not spiffe.fullmatch(uri):
            raise ProfileViolation(
                rules.name,
                "spiffe_uri_pattern",
                f"URI SAN {uri} does not match the SPIFFE URI pattern of profile {rules.name!r}: "
                f"{rules.spiffe_uri_pattern}",
            )
    if not rules._san_regexes:
        return
    to_check = list(sans.non_uri_strings()) + ([] if spiffe is not None else list(sans.uris))
    for name in to_check:
        if not any(regex.fullmatch(name) for regex in rules._san_regexes):
            raise ProfileViolation(
                rules.name,
                "required_san_patterns",
                f"SAN {name} does not match any required SAN pattern of profile {rules.name!r}: "
                + ", ".join(rules.required_san_patterns),
            )


def check_profile(
    rules: ProfileRules, *, key: KeyInfo, sans: SubjectAltNames, ekus: Sequence[ExtendedKeyUsageName]
) -> None:
    """Run every issuance-time rule: key, EKUs, SANs. Raises ProfileViolation on the first failure."""
    check_key(rules, key)
    check_ekus(rules, ekus)
    check_sans(rules, sans)


def effective_max_ttl_seconds(rules: ProfileRules | None, requested_max_ttl_seconds: int) -> int:
    """The tighter of the request's and the profile's caps; 0 = no cap."""
    caps = [cap for cap in (requested_max_ttl_seconds, rules.max_ttl_seconds if rules else 0) if cap > 0]
    return min(caps, default=0)


def check_csr_against_profile(csr_pem: str, rules: ProfileRules | None) -> x509.CertificateSigningRequest:
    """The CSR-vs-profile check of the agent, EST, SCEP and ACME paths (core.md §2.9): parse, verify the
    self-signature, classify the key and match it against the profile (no profile → parse and signature
    only). Raises BadCSR or ProfileViolation; returns the parsed CSR."""
    csr = load_csr(csr_pem)
    key = csr_key_info(csr)
    if rules is not None:
        check_key(rules, key)
    return csr
