"""Name constraints as values: parsing, the child-subset rule, and the leaf check (no database)."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509

from certctl.clock import FrozenClock
from certctl.pki.errors import NameConstraintViolation
from certctl.pki.name_constraints import NameConstraintSet, check_leaf_names, dns_within
from tests.intermediates.helpers import load, make_root


def test_dns_subtrees_cover_the_domain_and_below_only() -> None:
    assert dns_within("corp.example", "corp.example")
    assert dns_within("a.b.corp.example", "corp.example")
    assert not dns_within("evilcorp.example", "corp.example")
    assert not dns_within("corp.example", ".corp.example")  # leading dot (from foreign roots): below only
    assert dns_within("a.corp.example", ".corp.example")


def test_parse_normalises_and_refuses_what_it_cannot_encode() -> None:
    parsed = NameConstraintSet.parse(["Corp.Example", "bücher.example", "10.0.0.0/8", "2001:db8::/32", "192.0.2.7"], [])
    assert parsed.permitted_dns == ("corp.example", "xn--bcher-kva.example")
    assert parsed.permitted_ip == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
        ipaddress.ip_network("192.0.2.7/32"),
    )
    for bad in ("*.corp.example", ".corp.example", "ops@corp.example", "10.0.0.1/8", "bad_label.example", ""):
        with pytest.raises(ValueError, match=r"name constraint"):
            NameConstraintSet.parse([bad], [])
    assert NameConstraintSet.from_json(parsed.to_json()) == parsed


def test_subset_rule() -> None:
    parent = NameConstraintSet.parse(["corp.example", "10.0.0.0/8"], ["bad.corp.example"])
    NameConstraintSet.parse(["eng.corp.example", "10.1.0.0/16"], ["corp.example"]).check_subset_of(parent)
    NameConstraintSet.parse(["corp.example"], ["bad.corp.example"]).check_subset_of(parent)
    with pytest.raises(ValueError, match=r"'evil\.example' is not within"):
        NameConstraintSet.parse(["evil.example"], ["bad.corp.example"]).check_subset_of(parent)
    with pytest.raises(ValueError, match=r"'11\.0\.0\.0/8'"):
        NameConstraintSet.parse(["11.0.0.0/8"], ["bad.corp.example"]).check_subset_of(parent)
    with pytest.raises(ValueError, match="must exclude it too"):
        NameConstraintSet.parse(["eng.corp.example"], ["x.bad.corp.example"]).check_subset_of(parent)
    # A parent without a permitted DNS set lets the child permit any DNS name.
    NameConstraintSet.parse(["anything.example"], []).check_subset_of(NameConstraintSet.parse(["10.0.0.0/8"], []))


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        (x509.DNSName("www.corp.example"), None),
        (x509.DNSName("*.eng.corp.example"), None),
        (x509.DNSName("*.corp.example"), 'dNSName "*.corp.example" is inside the excluded subtree "bad.corp.example"'),
        (x509.DNSName("corp.example"), None),
        (
            x509.DNSName("evil.example"),
            'dNSName "evil.example" is outside the permitted subtree "corp.example" of CA "Corp Root"',
        ),
        (x509.DNSName("*.example"), "outside the permitted subtree"),
        (
            x509.DNSName("a.bad.corp.example"),
            'dNSName "a.bad.corp.example" is inside the excluded subtree "bad.corp.example"',
        ),
        (x509.IPAddress(ipaddress.ip_address("10.9.8.7")), None),
        (
            x509.IPAddress(ipaddress.ip_address("192.0.2.1")),
            'iPAddress "192.0.2.1" is outside the permitted subtree "10.0.0.0/8"',
        ),
        (x509.IPAddress(ipaddress.ip_address("10.66.0.1")), 'inside the excluded subtree "10.66.0.0/16"'),
        (x509.RFC822Name("ops@elsewhere.example"), None),  # email is not a DNS name: not constrained here
    ],
)
def test_leaf_names_are_checked_against_every_ca_in_the_chain(name: x509.GeneralName, refused: str | None) -> None:
    now = FrozenClock().now()
    root = load(
        make_root(now, permitted=("corp.example", "10.0.0.0/8"), excluded=("bad.corp.example", "10.66.0.0/16"))[0]
    )
    unconstrained = load(make_root(now, common_name="Plain")[0])
    if refused is None:
        check_leaf_names([*unconstrained, *root], [name])
        return
    with pytest.raises(NameConstraintViolation) as caught:
        check_leaf_names([*unconstrained, *root], [name])
    assert refused in str(caught.value)
    assert caught.value.ca == "Corp Root"


def test_a_wildcard_overlapping_an_exclusion_is_refused() -> None:
    root = load(make_root(FrozenClock().now(), excluded=("admin.corp.example",))[0])
    with pytest.raises(NameConstraintViolation, match="excluded subtree"):
        check_leaf_names(root, [x509.DNSName("*.corp.example")])
    check_leaf_names(root, [x509.DNSName("*.eng.corp.example")])
