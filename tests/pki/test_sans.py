from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

from certctl.pki.sans import (
    check_unicode_safety,
    classify_san,
    is_hostname_like,
    merge_sans,
    normalise_dns_name,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("www.example.com", x509.DNSName("www.example.com")),
        ("WWW.Example.COM", x509.DNSName("www.example.com")),
        ("*.example.com", x509.DNSName("*.example.com")),
        ("localhost", x509.DNSName("localhost")),
        ("10.0.0.1", x509.IPAddress(ipaddress.ip_address("10.0.0.1"))),
        ("2001:DB8::1", x509.IPAddress(ipaddress.ip_address("2001:db8::1"))),
        ("[::1]", x509.IPAddress(ipaddress.ip_address("::1"))),
        ("alice@Example.COM", x509.RFC822Name("alice@example.com")),
        ("spiffe://example.org/ns/prod/sa/web", x509.UniformResourceIdentifier("spiffe://example.org/ns/prod/sa/web")),
        ("https://user@example.com/x", x509.UniformResourceIdentifier("https://user@example.com/x")),
        ("bücher.example", x509.DNSName("xn--bcher-kva.example")),
        ("пример.рф", x509.DNSName("xn--e1afmkfd.xn--p1ai")),
    ],
)
def test_classify_san(text: str, expected: x509.GeneralName) -> None:
    assert classify_san(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("*", "invalid label"),
        ("a..example.com", "invalid label"),
        ("-a.example.com", "invalid label"),
        ("a_b.example.com", "invalid label"),
        ("foo.*.example.com", "invalid label"),
        ("exa mple.com", "invalid label"),
        ("a" * 64 + ".example.com", "invalid label"),
        (".".join(["a" * 63] * 4), "longer than 253"),
        ("@example.com", "local part"),
        ("alice@*.example.com", "wildcard"),
        ("spiffe://", "needs a scheme"),
        ("https://:443/x", "without a host"),
    ],
)
def test_classify_san_rejects_malformed_names(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        classify_san(text)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("exa\u202emple.com", "bidi control"),  # RIGHT-TO-LEFT OVERRIDE
        ("exa\u2067mple.com", "bidi control"),  # RIGHT-TO-LEFT ISOLATE
        ("exa\u200fmple.com", "U\\+200F"),  # RIGHT-TO-LEFT MARK
        ("exa\u200bmple.com", "ZERO WIDTH SPACE"),
        ("exa\u200dmple.com", "ZERO WIDTH JOINER"),
        ("exa\ufeffmple.com", "ZERO WIDTH NO-BREAK SPACE"),
        ("exa\u00admple.com", "SOFT HYPHEN"),
        ("exa\x00mple.com", "U\\+0000"),
        ("exa\nmple.com", "U\\+000A"),
        ("exa\x7fmple.com", "U\\+007F"),
        ("exa\u2028mple.com", "LINE SEPARATOR"),
    ],
)
def test_invisible_and_control_characters_are_rejected(text: str, kind: str) -> None:
    with pytest.raises(ValueError, match=kind):
        check_unicode_safety(text, what="DNS name")
    with pytest.raises(ValueError, match=kind):
        classify_san(text)


@pytest.mark.parametrize(
    "text",
    [
        "p\u0430ypal.com",  # CYRILLIC SMALL LETTER A inside a Latin label
        "\u0440aypal.com",  # CYRILLIC SMALL LETTER ER
        "go\u03bfgle.com",  # GREEK SMALL LETTER OMICRON
        "ex\uff41mple.com",  # FULLWIDTH LATIN SMALL LETTER A
    ],
)
def test_labels_mixing_latin_with_another_script_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="mixes Latin letters"):
        classify_san(text)


@pytest.mark.parametrize("text", ["пример.рф", "例え.テスト", "münchen.de", "παράδειγμα.δοκιμή", "Société Générale"])
def test_single_script_words_pass_the_safety_check(text: str) -> None:
    check_unicode_safety(text, what="name")


def test_homographs_are_caught_in_a_label_form_too() -> None:
    assert "p\u0430ypal".encode("punycode") == b"pypal-4ve"
    with pytest.raises(ValueError, match="mixes Latin letters with CYRILLIC"):
        normalise_dns_name("xn--pypal-4ve.com")
    with pytest.raises(ValueError, match="invalid A-label"):
        normalise_dns_name("xn--zz.example.com")


def test_a_latin_label_next_to_a_cyrillic_label_is_fine() -> None:
    assert classify_san("shop.пример.рф") == x509.DNSName("shop.xn--e1afmkfd.xn--p1ai")


def test_merge_groups_by_type_keeps_first_seen_order_and_deduplicates() -> None:
    names = [
        classify_san(s)
        for s in ["b.example.com", "alice@example.com", "10.0.0.2", "a.example.com", "spiffe://t/x", "::1"]
    ] + [
        x509.DNSName("B.EXAMPLE.COM"),
        x509.DNSName("c.example.com"),
        x509.IPAddress(ipaddress.ip_address("10.0.0.2")),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
        x509.RFC822Name("alice@EXAMPLE.com"),
        x509.UniformResourceIdentifier("spiffe://t/y"),
    ]
    merged = merge_sans(names)
    assert merged.as_strings() == [
        "b.example.com",
        "a.example.com",
        "c.example.com",
        "10.0.0.2",
        "::1",
        "10.0.0.1",
        "alice@example.com",
        "spiffe://t/x",
        "spiffe://t/y",
    ]
    assert [type(n) for n in merged.general_names()] == [x509.DNSName] * 3 + [x509.IPAddress] * 3 + [
        x509.RFC822Name,
        x509.UniformResourceIdentifier,
        x509.UniformResourceIdentifier,
    ]


def test_merge_refuses_unsupported_general_name_types() -> None:
    with pytest.raises(ValueError, match="RegisteredID is not supported"):
        merge_sans([x509.RegisteredID(x509.ObjectIdentifier("1.2.3.4"))])
    with pytest.raises(ValueError, match="network, not an address"):
        merge_sans([x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))])


def test_empty_merge_is_falsy() -> None:
    assert not merge_sans([])
    assert merge_sans([x509.DNSName("a.example.com")])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("www.example.com", True),
        ("localhost", True),
        ("10.1.2.3", True),
        ("My Client", False),
        ("workstation1", False),
        ("alice@example.com", False),
        ("", False),
    ],
)
def test_is_hostname_like(text: str, expected: bool) -> None:
    assert is_hostname_like(text) is expected


labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


@given(st.lists(labels, min_size=1, max_size=5))
def test_dns_normalisation_is_idempotent_and_case_insensitive(parts: list[str]) -> None:
    dns_name = ".".join(parts)
    normal = normalise_dns_name(dns_name.upper())
    assert normal == dns_name
    assert normalise_dns_name(normal) == normal


@given(st.ip_addresses())
def test_every_ip_literal_becomes_an_ip_san(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    assert classify_san(str(ip)) == x509.IPAddress(ip)


@given(st.text(min_size=1, max_size=10), st.sampled_from(["\u202e", "\u200b", "\u2066", "\x00", "\x1b"]))
def test_any_text_with_an_invisible_character_is_rejected(text: str, bad: str) -> None:
    with pytest.raises(ValueError, match="character U\\+"):
        check_unicode_safety(text[:3] + bad + text[3:], what="name")
