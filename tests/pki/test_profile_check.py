from __future__ import annotations

import pytest

from certctl.pki.errors import BadCSR, PermanentIssuerError, ProfileViolation
from certctl.pki.extensions import ExtendedKeyUsageName as Eku
from certctl.pki.keys import KeyFamily, KeyInfo
from certctl.pki.profile_check import (
    KeyAlgorithmRule,
    ProfileRules,
    check_csr_against_profile,
    check_ekus,
    check_key,
    check_profile,
    check_sans,
    effective_max_ttl_seconds,
)
from certctl.pki.sans import SubjectAltNames, classify_san, merge_sans
from tests.pki.factories import ec_key, raw_csr, rsa_key, tamper_csr

WEB = ProfileRules(name="web")


def sans(*texts: str) -> SubjectAltNames:
    return merge_sans([classify_san(t) for t in texts])


def test_key_rejection_names_the_key_the_profile_and_what_is_allowed() -> None:
    with pytest.raises(ProfileViolation) as caught:
        check_key(WEB, KeyInfo(KeyFamily.RSA, 1024))
    assert str(caught.value) == "key RSA-1024 is not allowed by profile 'web': allowed ECDSA≥256, RSA≥2048"
    assert caught.value.profile == "web"
    assert caught.value.rule == "allowed_key_algorithms"
    assert isinstance(caught.value, PermanentIssuerError)


@pytest.mark.parametrize(
    ("key", "allowed"),
    [
        (KeyInfo(KeyFamily.ECDSA, 256), True),
        (KeyInfo(KeyFamily.ECDSA, 384), True),
        (KeyInfo(KeyFamily.ECDSA, 521), True),
        (KeyInfo(KeyFamily.RSA, 2048), True),
        (KeyInfo(KeyFamily.RSA, 4096), True),
        (KeyInfo(KeyFamily.RSA, 2047), False),
        (KeyInfo(KeyFamily.ED25519, 256), False),
    ],
)
def test_default_profile_allows_ecdsa_256_and_rsa_2048_and_up(key: KeyInfo, allowed: bool) -> None:
    if allowed:
        check_key(WEB, key)
    else:
        with pytest.raises(ProfileViolation, match=f"key {key} is not allowed"):
            check_key(WEB, key)


def test_a_stricter_profile_rejects_p256_and_can_allow_ed25519() -> None:
    strict = ProfileRules(
        name="strict",
        allowed_key_algorithms=(KeyAlgorithmRule(KeyFamily.ECDSA, 384), KeyAlgorithmRule(KeyFamily.ED25519, 256)),
    )
    check_key(strict, KeyInfo(KeyFamily.ECDSA, 384))
    check_key(strict, KeyInfo(KeyFamily.ED25519, 256))
    with pytest.raises(ProfileViolation, match="allowed ECDSA≥384, Ed25519≥256"):
        check_key(strict, KeyInfo(KeyFamily.ECDSA, 256))


def test_ekus_outside_the_profile_are_rejected() -> None:
    check_ekus(WEB, [Eku.SERVER_AUTH])
    with pytest.raises(ProfileViolation, match="extended key usage codeSigning is not allowed by profile 'web'") as c:
        check_ekus(WEB, [Eku.SERVER_AUTH, Eku.CODE_SIGNING])
    assert c.value.rule == "allowed_ekus"
    check_ekus(ProfileRules(name="any", allowed_ekus=()), [Eku.CODE_SIGNING, Eku.TIME_STAMPING])


def test_every_san_must_fully_match_a_required_pattern() -> None:
    rules = ProfileRules(name="internal", required_san_patterns=(r"[a-z0-9.-]+\.corp\.example", r"10\.\d+\.\d+\.\d+"))
    check_sans(rules, sans("a.corp.example", "b.c.corp.example", "10.1.2.3"))
    with pytest.raises(ProfileViolation) as caught:
        check_sans(rules, sans("a.corp.example", "evil.com"))
    assert caught.value.rule == "required_san_patterns"
    assert str(caught.value).startswith("SAN evil.com does not match any required SAN pattern of profile 'internal'")
    # anchored: a pattern matching a prefix does not let a longer name through
    with pytest.raises(ProfileViolation, match=r"a\.corp\.example\.evil\.net"):
        check_sans(rules, sans("a.corp.example.evil.net"))
    with pytest.raises(ProfileViolation, match=r"192\.168\.0\.1"):
        check_sans(rules, sans("192.168.0.1"))


def test_no_required_patterns_means_any_san() -> None:
    check_sans(WEB, sans("anything.example", "1.2.3.4", "x@y.example", "https://u.example/"))


def test_uri_sans_follow_the_spiffe_pattern_when_set() -> None:
    rules = ProfileRules(
        name="mesh",
        required_san_patterns=(r".*\.svc\.cluster\.local",),
        spiffe_uri_pattern=r"spiffe://cluster\.local/ns/[a-z0-9-]+/sa/[a-z0-9-]+",
    )
    check_sans(rules, sans("web.default.svc.cluster.local", "spiffe://cluster.local/ns/default/sa/web"))
    with pytest.raises(ProfileViolation) as caught:
        check_sans(rules, sans("spiffe://other.domain/ns/default/sa/web"))
    assert caught.value.rule == "spiffe_uri_pattern"
    assert "URI SAN spiffe://other.domain/ns/default/sa/web does not match the SPIFFE URI pattern" in str(caught.value)


def test_without_a_spiffe_pattern_uris_must_match_the_required_patterns() -> None:
    rules = ProfileRules(name="p", required_san_patterns=(r"https://[a-z]+\.example/",))
    check_sans(rules, sans("https://a.example/"))
    with pytest.raises(ProfileViolation, match=r"spiffe://t/x does not match any required SAN pattern"):
        check_sans(rules, sans("spiffe://t/x"))


def test_check_profile_runs_all_rules() -> None:
    rules = ProfileRules(name="web", required_san_patterns=(r".*\.example\.com",))
    check_profile(rules, key=KeyInfo(KeyFamily.ECDSA, 256), sans=sans("a.example.com"), ekus=[Eku.SERVER_AUTH])
    good_key, good_sans, good_ekus = KeyInfo(KeyFamily.ECDSA, 256), sans("a.example.com"), [Eku.SERVER_AUTH]
    cases = [
        (KeyInfo(KeyFamily.RSA, 1024), good_sans, good_ekus, "allowed_key_algorithms"),
        (good_key, good_sans, [Eku.CLIENT_AUTH], "allowed_ekus"),
        (good_key, sans("a.example.org"), good_ekus, "required_san_patterns"),
    ]
    for key, names, ekus, rule in cases:
        with pytest.raises(ProfileViolation) as caught:
            check_profile(rules, key=key, sans=names, ekus=ekus)
        assert caught.value.rule == rule


@pytest.mark.parametrize(
    ("profile_ttl", "requested", "expected"),
    [(0, 0, 0), (3600, 0, 3600), (0, 600, 600), (3600, 600, 600), (600, 3600, 600)],
)
def test_effective_max_ttl_is_the_tighter_cap(profile_ttl: int, requested: int, expected: int) -> None:
    assert effective_max_ttl_seconds(ProfileRules(name="p", max_ttl_seconds=profile_ttl), requested) == expected


def test_effective_max_ttl_without_profile() -> None:
    assert effective_max_ttl_seconds(None, 0) == 0
    assert effective_max_ttl_seconds(None, 60) == 60


def test_short_lived_needs_a_ttl_under_an_hour() -> None:
    assert ProfileRules(name="p", allow_short_lived=True, max_ttl_seconds=3599).is_short_lived
    assert not ProfileRules(name="p", max_ttl_seconds=600).is_short_lived
    with pytest.raises(ValueError, match="allow_short_lived"):
        ProfileRules(name="p", allow_short_lived=True, max_ttl_seconds=3600)
    with pytest.raises(ValueError, match="allow_short_lived"):
        ProfileRules(name="p", allow_short_lived=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"allowed_key_algorithms": ()}, "at least one"),
        ({"max_ttl_seconds": -1}, "max_ttl_seconds"),
        ({"required_san_patterns": ("(",)}, "required_san_patterns: invalid regular expression"),
        ({"spiffe_uri_pattern": "[a-"}, "spiffe_uri_pattern: invalid regular expression"),
    ],
)
def test_invalid_profiles_fail_on_construction(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProfileRules(name="p", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("family", "size"), [(KeyFamily.RSA, 1024), (KeyFamily.ECDSA, 224)])
def test_key_rules_below_the_floor_are_invalid(family: KeyFamily, size: int) -> None:
    with pytest.raises(ValueError, match="min_size must be at least"):
        KeyAlgorithmRule(family, size)


def test_from_mapping_reads_a_profile_row() -> None:
    rules = ProfileRules.from_mapping(
        "web",
        {
            "allowed_key_algorithms": [{"algorithm": "ECDSA", "min_size": 384}, {"algorithm": "RSA", "min_size": 3072}],
            "max_ttl_seconds": 1800,
            "allowed_ekus": ["serverAuth", "clientAuth"],
            "required_san_patterns": [r".*\.example\.com"],
            "spiffe_uri_pattern": "",
            "allow_short_lived": True,
            "must_staple": True,
        },
    )
    assert rules.allowed_key_algorithms == (
        KeyAlgorithmRule(KeyFamily.ECDSA, 384),
        KeyAlgorithmRule(KeyFamily.RSA, 3072),
    )
    assert rules.allowed_ekus == (Eku.SERVER_AUTH, Eku.CLIENT_AUTH)
    assert rules.is_short_lived
    assert rules.must_staple
    assert ProfileRules.from_mapping("d", {}) == ProfileRules(name="d", allowed_ekus=())


def test_from_mapping_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown extended key usage"):
        ProfileRules.from_mapping("p", {"allowed_ekus": ["ocspSigning!"]})
    with pytest.raises(ValueError, match="unknown key algorithm"):
        ProfileRules.from_mapping("p", {"allowed_key_algorithms": [{"algorithm": "DSA", "min_size": 2048}]})


def test_csr_against_profile_checks_signature_then_key() -> None:
    ok = raw_csr(ec_key())
    assert check_csr_against_profile(ok, WEB).is_signature_valid
    assert check_csr_against_profile(ok, None).is_signature_valid
    weak = raw_csr(rsa_key(1024))
    check_csr_against_profile(weak, None)  # no profile: parse and signature only
    with pytest.raises(ProfileViolation, match="key RSA-1024 is not allowed by profile 'web'"):
        check_csr_against_profile(weak, WEB)
    with pytest.raises(BadCSR, match="signature"):
        check_csr_against_profile(tamper_csr(ok, b"www.example.com", b"www.examplf.com"), WEB)
