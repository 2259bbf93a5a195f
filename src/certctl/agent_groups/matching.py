"""Does an agent match a group's dynamic criteria? Pure functions, no database (core.md §2.6).

Every non-empty criterion must hold; a group whose criteria are all empty has no dynamic members.

* `match_os`, `match_architecture`: equality ignoring case, after folding common aliases onto one
  name (`x86_64`/`x64` → `amd64`, `aarch64` → `arm64`, `macos` → `darwin`, …), so a group written for
  Go's names matches agents that report Python's, and the other way round.
* `match_ip_cidr`: the agent's `ip_address` lies inside the network, by address arithmetic (IPv4 and
  IPv6; a bare address means /32 or /128). An IPv4-mapped IPv6 address (`::ffff:10.0.1.7`) also counts
  as its IPv4 address. The original compared the two strings, so `10.0.1.0/24` matched nobody.
* `match_version`: the grammar in `versions.py` (exact, `*` pattern, or comparisons like `>=1.2,<2`).

`GroupRules.parse` is strict (create and update answer 400 naming the field); `GroupRules.stored` reads
rows written before validation existed and turns a criterion it cannot read into one nobody meets,
rather than one everybody does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Protocol

from certctl.agent_groups.versions import VersionSpec

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_OS_ALIASES = {
    "macos": "darwin",
    "mac": "darwin",
    "osx": "darwin",
    "macosx": "darwin",
    "win": "windows",
    "win32": "windows",
    "win64": "windows",
}
_ARCHITECTURE_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "x64": "amd64",
    "aarch64": "arm64",
    "armv8": "arm64",
    "armv8l": "arm64",
    "i386": "386",
    "i486": "386",
    "i586": "386",
    "i686": "386",
    "x86": "386",
    "armv7": "arm",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64el": "ppc64le",
}


class AgentFacts(Protocol):
    """What the rules look at; an `Agent` row fits."""

    @property
    def os(self) -> str: ...
    @property
    def architecture(self) -> str: ...
    @property
    def ip_address(self) -> str: ...
    @property
    def version(self) -> str: ...


def normalize_os(value: str) -> str:
    name = value.strip().casefold()
    return _OS_ALIASES.get(name, name)


def normalize_architecture(value: str) -> str:
    name = value.strip().casefold()
    return _ARCHITECTURE_ALIASES.get(name, name)


def parse_network(text: str) -> IPNetwork:
    """A CIDR or a bare address. Raises ValueError for anything else, including host bits set after the
    prefix (`10.0.1.7/24`), which is more often a typo than a wish for 10.0.1.0/24."""
    text = text.strip()
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or CIDR network (e.g. 10.0.1.0/24, fd00::/64)") from exc
        raise ValueError(f"{text!r} has host bits set; did you mean {loose}?") from exc


def match_ip_cidr(ip_address: str, network: IPNetwork | str) -> bool:
    """True when the address lies inside the network; an empty or unreadable address never does."""
    if isinstance(network, str):
        network = parse_network(network)
    try:
        address = ipaddress.ip_address(ip_address.strip())
    except ValueError:
        return False
    if address in network:
        return True
    return (
        isinstance(address, ipaddress.IPv6Address)
        and address.ipv4_mapped is not None
        and (address.ipv4_mapped in network)
    )


def match_version(version: str, spec: VersionSpec | str) -> bool:
    if isinstance(spec, str):
        spec = VersionSpec.parse(spec)
    return spec.matches(version)


class InvalidCriterion(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


@dataclass(frozen=True, slots=True)
class GroupRules:
    """A group's dynamic criteria, parsed once. `None` means "no such criterion"."""

    os: str | None = None
    architecture: str | None = None
    network: IPNetwork | None = None
    version: VersionSpec | None = None
    unreadable: bool = False  # a stored criterion that no longer parses: nobody matches

    @classmethod
    def parse(cls, *, os: str = "", architecture: str = "", ip_cidr: str = "", version: str = "") -> GroupRules:
        """Raises InvalidCriterion naming the field."""
        network = spec = None
        if ip_cidr.strip():
            try:
                network = parse_network(ip_cidr)
            except ValueError as exc:
                raise InvalidCriterion("match_ip_cidr", str(exc)) from exc
        if version.strip():
            try:
                spec = VersionSpec.parse(version)
            except ValueError as exc:
                raise InvalidCriterion("match_version", str(exc)) from exc
        return cls(
            os=normalize_os(os) or None,
            architecture=normalize_architecture(architecture) or None,
            network=network,
            version=spec,
        )

    @classmethod
    def stored(cls, *, os: str = "", architecture: str = "", ip_cidr: str = "", version: str = "") -> GroupRules:
        try:
            return cls.parse(os=os, architecture=architecture, ip_cidr=ip_cidr, version=version)
        except InvalidCriterion:
            return cls(unreadable=True)

    @property
    def is_dynamic(self) -> bool:
        """The original's "has dynamic criteria": any criterion set."""
        return self.unreadable or any(
            value is not None for value in (self.os, self.architecture, self.network, self.version)
        )

    def matches(self, agent: AgentFacts) -> bool:
        if not self.is_dynamic or self.unreadable:
            return False
        if self.os is not None and normalize_os(agent.os) != self.os:
            return False
        if self.architecture is not None and normalize_architecture(agent.architecture) != self.architecture:
            return False
        if self.network is not None and not match_ip_cidr(agent.ip_address, self.network):
            return False
        return self.version is None or self.version.matches(agent.version)
