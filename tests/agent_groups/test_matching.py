"""The pure rules: CIDR containment checked against `ipaddress`, the version grammar, aliases, and how
manual rows and rules combine into membership."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from certctl.agent_groups.matching import (
    GroupRules,
    InvalidCriterion,
    match_ip_cidr,
    match_version,
    normalize_architecture,
    normalize_os,
    parse_network,
)
from certctl.agent_groups.membership import Membership, MembershipType, evaluate
from certctl.agent_groups.versions import VersionSpec


@dataclass(frozen=True)
class Facts:
    id: str = "ag-1"
    os: str = "linux"
    architecture: str = "amd64"
    ip_address: str = "10.0.1.77"
    version: str = "2.0.14"
    retired_at: datetime | None = None


# --- CIDR: real network containment --------------------------------------------------------------

v4_networks = st.builds(
    lambda address, prefix: ipaddress.IPv4Network((address, prefix), strict=False),
    st.ip_addresses(v=4),
    st.integers(min_value=0, max_value=32),
)
v6_networks = st.builds(
    lambda address, prefix: ipaddress.IPv6Network((address, prefix), strict=False),
    st.ip_addresses(v=6),
    st.integers(min_value=0, max_value=128),
)
networks = v4_networks | v6_networks


def oracle(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, network: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> bool:
    """`ipaddress`'s own answer, plus the documented rule that ::ffff:a.b.c.d counts as a.b.c.d."""
    if address in network:
        return True
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped is not None and mapped in network


@given(address=st.ip_addresses(), network=networks)
@example(address=ipaddress.ip_address("10.0.1.77"), network=ipaddress.ip_network("10.0.1.0/24"))
@example(address=ipaddress.ip_address("10.0.2.1"), network=ipaddress.ip_network("10.0.1.0/24"))
@example(address=ipaddress.ip_address("::ffff:10.0.1.7"), network=ipaddress.ip_network("10.0.1.0/24"))
def test_cidr_containment_agrees_with_ipaddress(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, network: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> None:
    assert match_ip_cidr(str(address), str(network)) is oracle(address, network)
    assert match_ip_cidr(str(address), network) is oracle(address, network)


@given(network=networks, data=st.data())
def test_every_address_of_a_network_matches_and_its_neighbours_do_not(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network, data: st.DataObject
) -> None:
    offset = data.draw(st.integers(min_value=0, max_value=network.num_addresses - 1))
    assert match_ip_cidr(str(network[offset]), str(network))
    top = 2**network.max_prefixlen - 1
    if int(network.broadcast_address) < top:
        assert not match_ip_cidr(str(network.broadcast_address + 1), str(network))
    if int(network.network_address) > 0:
        assert not match_ip_cidr(str(network.network_address - 1), str(network))


@given(address=st.ip_addresses(), other=st.ip_addresses())
def test_a_bare_address_is_a_single_host_network(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, other: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> None:
    assume(other != address and getattr(other, "ipv4_mapped", None) != address)
    network = parse_network(str(address))
    assert network.prefixlen == network.max_prefixlen
    assert match_ip_cidr(str(address), str(address))
    assert not match_ip_cidr(str(other), str(address))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("10.0.1.0/33", "is not an IP address or CIDR network"),
        ("10.0.1.0/24x", "is not an IP address or CIDR network"),
        ("10.0.1", "is not an IP address or CIDR network"),
        ("fd00::/129", "is not an IP address or CIDR network"),
        ("linux", "is not an IP address or CIDR network"),
        ("10.0.1.77/24", "did you mean 10.0.1.0/24?"),
        ("fd00::1/64", "did you mean fd00::/64?"),
    ],
)
def test_invalid_networks_are_refused_with_a_reason(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        parse_network(text)


@pytest.mark.parametrize("address", ["", "not-an-ip", "10.0.1", "10.0.1.77:443", "[::1]"])
def test_an_unreadable_agent_address_never_matches(address: str) -> None:
    assert not match_ip_cidr(address, "0.0.0.0/0")
    assert not match_ip_cidr(address, "::/0")


def test_ipv6_and_scoped_addresses() -> None:
    assert match_ip_cidr("fd00:1::5", "fd00:1::/64")
    assert not match_ip_cidr("fd00:2::5", "fd00:1::/64")
    assert match_ip_cidr("fe80::1%eth0", "fe80::/64")
    assert not match_ip_cidr("10.0.1.7", "::ffff:0:0/96")  # the mapping goes one way: v6 agent, v4 rule


# --- version grammar ----------------------------------------------------------------------------

releases = st.lists(st.integers(min_value=0, max_value=999), min_size=1, max_size=4)


def padded(release: list[int]) -> tuple[int, ...]:
    return tuple(release) + (0,) * (4 - len(release))


def dotted(release: list[int]) -> str:
    return ".".join(map(str, release))


@given(version=releases, bound=releases, op=st.sampled_from([">=", "<=", ">", "<", "==", "=", "!="]))
def test_comparisons_order_releases_numerically(version: list[int], bound: list[int], op: str) -> None:
    a, b = padded(version), padded(bound)
    expected = {
        ">=": a >= b,
        "<=": a <= b,
        ">": a > b,
        "<": a < b,
        "==": a == b,
        "=": a == b,
        "!=": a != b,
    }[op]
    assert match_version(dotted(version), f"{op}{dotted(bound)}") is expected
    assert match_version("v" + dotted(version), f"{op} {dotted(bound)}") is expected


@given(version=releases, low=releases, high=releases)
def test_a_range_is_the_conjunction_of_its_comparisons(version: list[int], low: list[int], high: list[int]) -> None:
    inside = padded(low) <= padded(version) < padded(high)
    text = dotted(version)
    assert match_version(text, f">={dotted(low)},<{dotted(high)}") is inside
    assert match_version(text, f">={dotted(low)} <{dotted(high)}") is inside


@given(prefix=releases, rest=st.from_regex(r"[0-9A-Za-z.+-]*", fullmatch=True))
def test_a_star_pattern_matches_whatever_follows_the_prefix(prefix: list[int], rest: str) -> None:
    assert match_version(f"{dotted(prefix)}.{rest}", f"{dotted(prefix)}.*")
    assert not match_version(f"9{dotted(prefix)}.{rest}", f"{dotted(prefix)}.*")


@pytest.mark.parametrize(
    ("spec", "version", "expected"),
    [
        ("2.0.14", "2.0.14", True),
        ("2.0.14", "2.0.15", False),
        ("2.0", "2.0.0", True),  # missing numbers count as zero
        ("v2.0.14", "2.0.14", True),
        ("2.0.14-custom", "2.0.14-CUSTOM", True),  # same text ignoring case
        ("dev-build", "DEV-BUILD", True),  # not a version: text equality
        ("dev-build", "", False),
        ("1.4.*", "1.4.12", True),
        ("1.4.*", "1.4.0-rc1", True),
        ("1.4.*", "1.40.0", False),
        ("1.4.*", "1.4", False),  # a pattern is plain text: 1.4 has no ".<something>"
        ("==1.4.*", "1.4.3", True),
        ("!=1.4.*", "1.4.3", False),
        ("!=1.4.*", "1.5.0", True),
        ("2.*-rc*", "2.1.0-rc2", True),
        (">=1.2.0", "1.2", True),
        ("<2", "2.0.0", False),
        ("<2", "2.0.0-rc.1", True),  # a pre-release comes before its release
        (">=2.0.0-rc.2", "2.0.0-rc.10", True),  # numeric identifiers compare numerically
        (">1.0.0-alpha.1", "1.0.0-alpha.beta", True),  # alphanumeric above numeric
        ("==1.0.0", "1.0.0+build.7", True),  # build metadata is ignored
        (">=1.0", "", False),  # an agent with no version never satisfies a comparison
        (">=1.0", "unknown", False),
    ],
)
def test_version_examples(spec: str, version: str, expected: bool) -> None:
    assert match_version(version, spec) is expected


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (">=", "cannot read"),
        (">>1", "cannot read"),
        (">=abc", "'abc' is not a version"),
        (">=1.2.x", "is not a version"),
        ("1.2 3", "needs an operator"),
        ("<1.*", "a '*' pattern can only follow == or !="),
        ("  ", "must not be empty"),
    ],
)
def test_invalid_version_specs_are_refused(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        VersionSpec.parse(spec)


# --- OS and architecture ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right"),
    [("x86_64", "amd64"), ("AMD64", "x64"), ("aarch64", "ARM64"), ("i686", "386"), ("armv7l", "arm")],
)
def test_architecture_aliases_fold_together(left: str, right: str) -> None:
    assert normalize_architecture(left) == normalize_architecture(right)


def test_os_is_case_insensitive_with_aliases() -> None:
    assert normalize_os(" Linux ") == normalize_os("linux")
    assert normalize_os("macOS") == normalize_os("darwin")
    assert normalize_os("Windows") == normalize_os("win64")
    assert normalize_os("linux") != normalize_os("windows")


# --- a group's rules ------------------------------------------------------------------------------


def test_every_non_empty_criterion_must_hold() -> None:
    rules = GroupRules.parse(os="Linux", architecture="x86_64", ip_cidr="10.0.1.0/24", version=">=2")
    assert rules.matches(Facts())
    assert not rules.matches(Facts(os="windows"))
    assert not rules.matches(Facts(architecture="arm64"))
    assert not rules.matches(Facts(ip_address="10.0.2.1"))
    assert not rules.matches(Facts(version="1.9.9"))
    assert GroupRules.parse(os="linux").matches(Facts(architecture="arm64", ip_address="", version=""))


def test_a_group_without_criteria_matches_nobody() -> None:
    rules = GroupRules.parse()
    assert not rules.is_dynamic
    assert not rules.matches(Facts())


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [("match_ip_cidr", {"ip_cidr": "10.0.1.0/33"}), ("match_version", {"version": ">=x"})],
)
def test_parse_names_the_field(field: str, kwargs: dict[str, str]) -> None:
    with pytest.raises(InvalidCriterion) as refused:
        GroupRules.parse(**kwargs)
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")


def test_an_unreadable_stored_criterion_matches_nobody() -> None:
    rules = GroupRules.stored(os="linux", ip_cidr="10.0.1.0/33")
    assert rules.is_dynamic
    assert not rules.matches(Facts())


# --- membership -----------------------------------------------------------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)
FLEET = [
    Facts("ag-a", ip_address="10.0.1.10"),
    Facts("ag-b", ip_address="10.0.1.20"),
    Facts("ag-c", ip_address="10.0.9.9"),
    Facts("ag-old", ip_address="10.0.1.30", retired_at=NOW),
]
DC_A = GroupRules.parse(ip_cidr="10.0.1.0/24")


def test_members_are_matches_plus_includes_minus_excludes() -> None:
    manual = {"ag-b": MembershipType.EXCLUDE, "ag-c": MembershipType.INCLUDE}
    assert evaluate(DC_A, True, FLEET, manual) == {"ag-a": Membership.DYNAMIC, "ag-c": Membership.INCLUDE}


def test_an_included_match_is_reported_as_include() -> None:
    assert evaluate(DC_A, True, FLEET, {"ag-a": MembershipType.INCLUDE})["ag-a"] is Membership.INCLUDE


def test_retired_agents_are_never_members() -> None:
    assert "ag-old" not in evaluate(DC_A, True, FLEET, {"ag-old": MembershipType.INCLUDE})


def test_a_disabled_group_keeps_only_its_includes() -> None:
    manual = {"ag-c": MembershipType.INCLUDE, "ag-a": MembershipType.EXCLUDE}
    assert evaluate(DC_A, False, FLEET, manual) == {"ag-c": Membership.INCLUDE}


@given(
    manual=st.dictionaries(
        st.sampled_from([f.id for f in FLEET]), st.sampled_from(list(MembershipType)), max_size=len(FLEET)
    ),
    enabled=st.booleans(),
)
def test_exclude_always_wins_and_include_always_counts(manual: dict[str, MembershipType], enabled: bool) -> None:
    members = evaluate(DC_A, enabled, FLEET, manual)
    for agent in FLEET:
        row = manual.get(agent.id)
        if agent.retired_at is not None or row is MembershipType.EXCLUDE:
            assert agent.id not in members
        elif row is MembershipType.INCLUDE:
            assert members[agent.id] is Membership.INCLUDE
        else:
            assert (agent.id in members) is (enabled and DC_A.matches(agent))
