"""Subject alternative names: classify request strings, check them for spoofing, merge them with a CSR's.

Classification (pki.md §A1.7): an IP literal → IP SAN; `scheme://…` → URI SAN; a string containing
`@` → email SAN; anything else → DNS name (`localhost` stays a DNS name). Unicode DNS labels are
converted to A-labels (IDNA 2008 with UTS #46 mapping); the unicode safety check of pki.md §A1.3 step 2
runs first, on the text as given.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import urlsplit

import idna
from cryptography import x509

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_DNS_NAME_LENGTH = 253  # RFC 1035 §2.3.4 (255 octets on the wire, 253 as text)
_LDH_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # RFC 1034 §3.5 preferred name syntax
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_EMAIL_LOCAL_PART = re.compile(r"[!-?A-~]+")  # printable ASCII except space and "@" (0x40)
_WORD_SPLIT = re.compile(r"[.\s@/:]+")

# Zero-width and bidi controls are category Cf; listed here for the error message only.
_NAMED_INVISIBLES = {
    "\u200b": "ZERO WIDTH SPACE",
    "\u200c": "ZERO WIDTH NON-JOINER",
    "\u200d": "ZERO WIDTH JOINER",
    "\u2060": "WORD JOINER",
    "\ufeff": "ZERO WIDTH NO-BREAK SPACE",
}


def check_unicode_safety(text: str, *, what: str) -> None:
    """Refuse bidi controls, zero-width and other invisible or control characters, and words mixing
    Latin letters with another script (pki.md §A1.3 step 2); pure non-Latin (IDN) words pass.

    Raises ValueError naming `what` and the offending character.
    """
    if text.isascii() and text.isprintable():
        return  # printable ASCII has no invisible character, and its letters are all Latin
    for char in text:
        category = unicodedata.category(char)
        # Cc: C0/C1 controls; Cf: format (bidi embeddings/overrides/isolates, LRM/RLM, zero-width,
        # soft hyphen); Cs/Co/Cn: surrogates, private use, unassigned; Zl/Zp: line/paragraph separators.
        if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            name = _NAMED_INVISIBLES.get(char) or unicodedata.name(char, f"category {category}")
            kind = "bidi control" if unicodedata.bidirectional(char) in _BIDI_CONTROLS else "control or invisible"
            raise ValueError(f"{what} {text!r} contains a {kind} character U+{ord(char):04X} ({name})")
    for word in _WORD_SPLIT.split(text):
        scripts = {_script_of(char) for char in word if unicodedata.category(char).startswith("L")}
        if "LATIN" in scripts and len(scripts) > 1:
            others = ", ".join(sorted(scripts - {"LATIN"}))
            raise ValueError(f"{what} {text!r} mixes Latin letters with {others} in {word!r}")


_BIDI_CONTROLS = frozenset({"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"})


def _script_of(char: str) -> str:
    # The first word of a letter's Unicode name is its script for the scripts that matter here
    # (LATIN, CYRILLIC, GREEK, ARMENIAN, …); FULLWIDTH/MODIFIER letters count as "other" on purpose.
    return unicodedata.name(char, "UNKNOWN").split(" ", 1)[0]


def normalise_dns_name(text: str) -> str:
    """A DNS SAN in lowercase A-label form; one leading `*.` wildcard label allowed; raises ValueError."""
    check_unicode_safety(text, what="DNS name")
    name = text.strip()
    wildcard = name.startswith("*.")
    body = name[2:] if wildcard else name
    if not body:
        raise ValueError(f"DNS name {text!r} is empty")
    if not body.isascii():
        try:
            body = idna.encode(body, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(f"DNS name {text!r} is not a valid internationalised name: {exc}") from exc
    body = body.lower()
    labels = body.split(".")
    for label in labels:
        if not _LDH_LABEL.fullmatch(label):
            raise ValueError(f"DNS name {text!r} has an invalid label {label!r} (letters, digits, inner hyphens)")
        if label.startswith("xn--"):
            # A homograph arrives as an A-label just as well: check what it displays as.
            try:
                u_label = idna.decode(label)
            except idna.IDNAError as exc:
                raise ValueError(f"DNS name {text!r} has an invalid A-label {label!r}: {exc}") from exc
            check_unicode_safety(u_label, what=f"DNS name {text!r} label")
    result = f"*.{body}" if wildcard else body
    if len(result) > MAX_DNS_NAME_LENGTH:
        raise ValueError(f"DNS name {text!r} is longer than {MAX_DNS_NAME_LENGTH} characters")
    return result


def normalise_email(text: str) -> str:
    """An email SAN: ASCII local part kept as is, domain lowercased in A-label form; raises ValueError."""
    check_unicode_safety(text, what="email address")
    local, sep, domain = text.strip().rpartition("@")
    if not sep or not local or not _EMAIL_LOCAL_PART.fullmatch(local):
        raise ValueError(f"email address {text!r} needs an ASCII local part before '@'")
    if domain.startswith("*."):
        raise ValueError(f"email address {text!r} may not use a wildcard domain")
    return f"{local}@{normalise_dns_name(domain)}"


def normalise_uri(text: str) -> str:
    """A URI SAN: ASCII, with a scheme and a host or path (RFC 5280 §4.2.1.6); raises ValueError."""
    check_unicode_safety(text, what="URI")
    uri = text.strip()
    if not uri.isascii() or any(char.isspace() for char in uri):
        raise ValueError(f"URI {text!r} must be ASCII without spaces (percent-encode other characters)")
    parts = urlsplit(uri)
    if not parts.scheme or not (parts.netloc or parts.path):
        raise ValueError(f"URI {text!r} needs a scheme and a scheme-specific part")
    if "://" in uri and not parts.hostname:
        raise ValueError(f"URI {text!r} has an authority without a host")
    return uri


def parse_ip(text: str) -> IPAddress | None:
    """The IP address `text` spells (IPv6 may be bracketed), or None when it is not an IP literal."""
    candidate = text.strip()
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    if ":" not in candidate and not candidate[:1].isdigit():
        return None  # neither IPv6 (has a colon) nor IPv4 (starts with a digit): skip the failing parse
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


def classify_san(text: str) -> x509.GeneralName:
    """One requested SAN string as a GeneralName (IP, URI, email or DNS, in that order); raises ValueError."""
    if (ip := parse_ip(text)) is not None:
        return x509.IPAddress(ip)
    if _URI_SCHEME.match(text.strip()):
        return x509.UniformResourceIdentifier(normalise_uri(text))
    if "@" in text:
        return x509.RFC822Name(normalise_email(text))
    return x509.DNSName(normalise_dns_name(text))


def is_hostname_like(text: str) -> bool:
    """Whether a common name names a host (an IP literal, `localhost`, or a dotted valid DNS name)."""
    if parse_ip(text) is not None:
        return True
    try:
        name = normalise_dns_name(text)
    except ValueError:
        return False
    return name == "localhost" or "." in name


@dataclass(frozen=True, slots=True)
class SubjectAltNames:
    """A deduplicated SAN set in its output order: DNS names, then IPs, emails, URIs."""

    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[IPAddress, ...] = ()
    emails: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.dns_names or self.ip_addresses or self.emails or self.uris)

    def general_names(self) -> list[x509.GeneralName]:
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in self.dns_names]
        names += [x509.IPAddress(ip) for ip in self.ip_addresses]
        names += [x509.RFC822Name(email) for email in self.emails]
        names += [x509.UniformResourceIdentifier(uri) for uri in self.uris]
        return names

    def non_uri_strings(self) -> Iterator[str]:
        """DNS names, IPs (compressed text) and emails, in output order, for pattern checks."""
        yield from self.dns_names
        yield from (str(ip) for ip in self.ip_addresses)
        yield from self.emails

    def as_strings(self) -> list[str]:
        return [*self.non_uri_strings(), *self.uris]


def merge_sans(names: Iterable[x509.GeneralName]) -> SubjectAltNames:
    """Deduplicate and group names, keeping first-seen order within each group.

    DNS names compare case-insensitively, IPs by value, email domains case-insensitively; DNS names
    and emails are normalised and safety-checked even when they come from a CSR. Raises ValueError on
    an unusable name or a GeneralName type other than DNS, IP, email or URI.
    """
    dns: dict[str, None] = {}
    ips: dict[IPAddress, None] = {}
    emails: dict[str, None] = {}
    uris: dict[str, None] = {}
    for name in names:
        if isinstance(name, x509.DNSName):
            dns.setdefault(normalise_dns_name(name.value))
        elif isinstance(name, x509.IPAddress):
            if not isinstance(name.value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
                raise ValueError(f"IP SAN {name.value} is a network, not an address")
            ips.setdefault(name.value)
        elif isinstance(name, x509.RFC822Name):
            emails.setdefault(normalise_email(name.value))
        elif isinstance(name, x509.UniformResourceIdentifier):
            uris.setdefault(normalise_uri(name.value))
        else:
            raise ValueError(f"SAN type {type(name).__name__} is not supported (DNS, IP, email and URI are)")
    return SubjectAltNames(tuple(dns), tuple(ips), tuple(emails), tuple(uris))
