"""Validation of the names a certificate may carry: common name and SANs (core.md §2.1)."""

from __future__ import annotations

import ipaddress
import re
import unicodedata

from certctl.errors import ValidationFailed

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})*\.?$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,253}$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})  # controls, bidi/zero-width format chars


def check_common_name(value: str) -> str:
    """A host name, wildcard, IP address or (with `@`) an e-mail address, at most 253 characters."""
    _check_characters("common_name", value)
    if len(value) > 253:
        raise ValidationFailed("common_name must be at most 253 characters")
    if "@" in value:
        if not _EMAIL.fullmatch(value):
            raise ValidationFailed(f"common_name {value!r} is not a valid e-mail address")
        return value
    if _is_ip(value) or _HOSTNAME.fullmatch(value):
        return value
    raise ValidationFailed(
        f"common_name {value!r} is not a host name, wildcard (*.example.com), IP address or e-mail address"
    )


def check_san(value: str) -> str:
    """DNS name, IP address, e-mail address or URI (spiffe://…)."""
    _check_characters("sans", value)
    if _is_ip(value) or _HOSTNAME.fullmatch(value):
        return value
    if "@" in value and "://" not in value:
        if _EMAIL.fullmatch(value):
            return value
        raise ValidationFailed(f"SAN {value!r} is not a valid e-mail address")
    if _URI.fullmatch(value):
        return value
    raise ValidationFailed(f"SAN {value!r} is not a DNS name, IP address, e-mail address or URI")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _check_characters(field: str, value: str) -> None:
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in value):
        raise ValidationFailed(f"{field} contains control, bidirectional or zero-width characters")
    if not value.isascii():
        raise ValidationFailed(f"{field} {value!r} must be ASCII; write internationalised names as punycode (xn--…)")
