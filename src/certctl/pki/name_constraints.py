"""X.509 name constraints (RFC 5280 §4.2.1.10) for the CA hierarchy: DNS subtrees and IP ranges.

One value type, `NameConstraintSet`, read from a request, a certificate or a stored row, written as the
critical extension; the subset rule a child CA must follow (pki.md §A1.6); and the check that refuses a
leaf whose names fall outside any constraint of its issuing chain, before anything is signed.

DNS semantics are RFC 5280's: a subtree `corp.example` covers `corp.example` and every name below it.
Other name forms (email, URI, directory names) are neither written nor checked here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from cryptography import x509
from cryptography.x509.oid import NameOID

from certctl.pki.errors import NameConstraintViolation
from certctl.pki.sans import normalise_dns_name, parse_ip

IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class NameConstraintSet:
    """Permitted and excluded DNS subtrees and IP networks; empty tuples mean "no constraint of that kind"."""

    permitted_dns: tuple[str, ...] = ()
    excluded_dns: tuple[str, ...] = ()
    permitted_ip: tuple[IPNetwork, ...] = ()
    excluded_ip: tuple[IPNetwork, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.permitted_dns or self.excluded_dns or self.permitted_ip or self.excluded_ip)

    # -- construction ---------------------------------------------------------------------------------

    @classmethod
    def parse(cls, permitted: Iterable[str], excluded: Iterable[str]) -> NameConstraintSet:
        """Names as people write them: `corp.example` (a DNS subtree), `10.0.0.0/8` or `2001:db8::/32`
        (an IP range; a bare address is a single host). Raises ValueError naming the bad entry."""
        p_dns, p_ip = _split(permitted, "permitted")
        e_dns, e_ip = _split(excluded, "excluded")
        return cls(p_dns, e_dns, p_ip, e_ip)

    @classmethod
    def from_json(cls, entries: Sequence[Mapping[str, Any]] | None) -> NameConstraintSet:
        """The stored form, a list of {permitted: [...], excluded: [...]} (merged); raises ValueError."""
        permitted: list[str] = []
        excluded: list[str] = []
        for entry in entries or ():
            permitted += [str(name) for name in entry.get("permitted") or ()]
            excluded += [str(name) for name in entry.get("excluded") or ()]
        return cls.parse(permitted, excluded)

    def to_json(self) -> list[dict[str, list[str]]]:
        """The stored and wire form: one {permitted, excluded} entry, or an empty list."""
        if not self:
            return []
        return [
            {
                "permitted": [*self.permitted_dns, *(str(n) for n in self.permitted_ip)],
                "excluded": [*self.excluded_dns, *(str(n) for n in self.excluded_ip)],
            }
        ]

    @classmethod
    def from_certificate(cls, certificate: x509.Certificate) -> NameConstraintSet:
        """The DNS and IP parts of a certificate's NameConstraints extension (empty when it has none)."""
        try:
            value = certificate.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            return cls()
        p_dns, p_ip = _from_general_names(value.permitted_subtrees)
        e_dns, e_ip = _from_general_names(value.excluded_subtrees)
        return cls(p_dns, e_dns, p_ip, e_ip)

    def extension(self) -> x509.NameConstraints | None:
        """The extension to put in a CA certificate (always critical, RFC 5280 §4.2.1.10), or None."""
        if not self:
            return None
        permitted = [x509.DNSName(n) for n in self.permitted_dns] + [x509.IPAddress(n) for n in self.permitted_ip]
        excluded = [x509.DNSName(n) for n in self.excluded_dns] + [x509.IPAddress(n) for n in self.excluded_ip]
        return x509.NameConstraints(permitted_subtrees=permitted or None, excluded_subtrees=excluded or None)

    # -- the hierarchy's subset rule (pki.md §A1.6) -----------------------------------------------------

    def check_subset_of(self, parent: NameConstraintSet) -> None:
        """Raise ValueError naming the offending entry unless this (child) set narrows `parent`: each
        permitted name lies within a parent permitted name (checked per kind, only when the parent
        permits that kind), and every parent exclusion is still excluded here."""
        if parent.permitted_dns:
            for name in self.permitted_dns:
                if not any(dns_within(name, subtree) for subtree in parent.permitted_dns):
                    raise ValueError(
                        f"permitted DNS name {name!r} is not within the parent's permitted names "
                        f"{_listing(parent.permitted_dns)}"
                    )
        if parent.permitted_ip:
            for network in self.permitted_ip:
                if not any(_ip_within(network, allowed) for allowed in parent.permitted_ip):
                    raise ValueError(
                        f"permitted IP range {str(network)!r} is not within the parent's permitted ranges "
                        f"{_listing(str(n) for n in parent.permitted_ip)}"
                    )
        for name in parent.excluded_dns:
            if not any(dns_within(name, subtree) for subtree in self.excluded_dns):
                raise ValueError(f"the parent excludes DNS name {name!r}; the child must exclude it too")
        for network in parent.excluded_ip:
            if not any(_ip_within(network, wider) for wider in self.excluded_ip):
                raise ValueError(f"the parent excludes IP range {str(network)!r}; the child must exclude it too")


def dns_within(name: str, subtree: str) -> bool:
    """Whether DNS `name` lies in `subtree` (equal, or below it; a leading `.` means strictly below)."""
    name, subtree = name.lower().rstrip("."), subtree.lower()
    if subtree.startswith("."):
        return name.endswith(subtree)
    return not subtree or name == subtree or name.endswith("." + subtree)


def check_leaf_names(chain: Sequence[x509.Certificate], names: Iterable[x509.GeneralName]) -> None:
    """Refuse a leaf whose DNS names or IP addresses break a name constraint of any CA in `chain`
    (issuing CA first). Raises NameConstraintViolation naming the name, the subtree and the CA."""
    leaf_names = list(names)
    for ca in chain:
        constraints = NameConstraintSet.from_certificate(ca)
        if constraints:
            for name in leaf_names:
                _check_one(name, constraints, _ca_name(ca))


def _check_one(name: x509.GeneralName, constraints: NameConstraintSet, ca: str) -> None:
    if isinstance(name, x509.DNSName):
        value = name.value.lower()
        wildcard = value.startswith("*.")
        base = value[2:] if wildcard else value
        permitted = constraints.permitted_dns
        if permitted and not any(dns_within(base, subtree) for subtree in permitted):
            raise NameConstraintViolation(
                f'dNSName "{value}" is outside the permitted {_subtrees(permitted)} of CA "{ca}"',
                name=value,
                constraint=",".join(permitted),
                ca=ca,
            )
        for subtree in constraints.excluded_dns:
            # A wildcard also matches the names one label below its base: refuse if any of them is excluded.
            overlaps = wildcard and subtree.lstrip(".").partition(".")[2] == base
            if dns_within(base, subtree) or overlaps:
                raise NameConstraintViolation(
                    f'dNSName "{value}" is inside the excluded subtree "{subtree}" of CA "{ca}"',
                    name=value,
                    constraint=subtree,
                    ca=ca,
                )
    elif isinstance(name, x509.IPAddress) and isinstance(name.value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        address = name.value
        same_family = [n for n in constraints.permitted_ip if n.version == address.version]
        if constraints.permitted_ip and not any(address in network for network in same_family):
            shown = [str(n) for n in constraints.permitted_ip]
            raise NameConstraintViolation(
                f'iPAddress "{address}" is outside the permitted {_subtrees(shown)} of CA "{ca}"',
                name=str(address),
                constraint=",".join(shown),
                ca=ca,
            )
        for network in constraints.excluded_ip:
            if network.version == address.version and address in network:
                raise NameConstraintViolation(
                    f'iPAddress "{address}" is inside the excluded subtree "{network}" of CA "{ca}"',
                    name=str(address),
                    constraint=str(network),
                    ca=ca,
                )


def _split(names: Iterable[str], what: str) -> tuple[tuple[str, ...], tuple[IPNetwork, ...]]:
    dns: dict[str, None] = {}
    ips: dict[IPNetwork, None] = {}
    for raw in names:
        text = str(raw).strip()
        if not text:
            raise ValueError(f"{what} name constraint entries must not be empty")
        if "/" in text or parse_ip(text) is not None:
            try:
                ips[ipaddress.ip_network(text.strip("[]"), strict=True)] = None
            except ValueError as exc:
                raise ValueError(f"{what} name constraint {text!r} is not an IP range like 10.0.0.0/8: {exc}") from exc
            continue
        if text.startswith(".") or text.startswith("*"):
            raise ValueError(
                f"{what} name constraint {text!r}: write the domain without a leading dot or wildcard "
                f"({text.lstrip('.*')!r} covers the domain and every name below it)"
            )
        if "@" in text or "://" in text:
            raise ValueError(f"{what} name constraint {text!r}: only DNS names and IP ranges are supported")
        try:
            dns[normalise_dns_name(text)] = None
        except ValueError as exc:
            raise ValueError(f"{what} name constraint: {exc}") from exc
    return tuple(dns), tuple(ips)


def _from_general_names(names: Sequence[x509.GeneralName] | None) -> tuple[tuple[str, ...], tuple[IPNetwork, ...]]:
    dns = tuple(n.value.lower() for n in names or () if isinstance(n, x509.DNSName))
    ips = tuple(
        n.value
        for n in names or ()
        if isinstance(n, x509.IPAddress) and isinstance(n.value, (ipaddress.IPv4Network, ipaddress.IPv6Network))
    )
    return dns, ips


def _ip_within(inner: IPNetwork, outer: IPNetwork) -> bool:
    if inner.version != outer.version:
        return False
    return inner.subnet_of(outer)  # type: ignore[arg-type]  # same family checked above


def _ca_name(certificate: x509.Certificate) -> str:
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if common_names:
        value = common_names[0].value
        return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return certificate.subject.rfc4514_string()


def _subtrees(subtrees: Sequence[str]) -> str:
    if len(subtrees) == 1:
        return f'subtree "{subtrees[0]}"'
    return "subtrees " + ", ".join(f'"{s}"' for s in subtrees)


def _listing(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)
