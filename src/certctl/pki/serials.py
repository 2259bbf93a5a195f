"""The canonical serial form: lowercase hex, no colons, no leading zeros, "0" for zero (core.md §2.2).

Every serial a connector reports, and every serial a lookup receives, goes through `canonical_serial`
before it is stored or compared, so a zero-padded, colon-separated or upper-case spelling of the same
number never makes a certificate "unknown" (pki.md §A2.5).
"""

from __future__ import annotations

import re
import secrets

SERIAL_BITS = 159
"""Random serials stay below 2**159: positive and at most 20 octets as DER (RFC 5280 §4.1.2.2)."""

_HEX = re.compile(r"[0-9a-fA-F]+")


def serial_to_int(value: int | str) -> int:
    """The serial as a non-negative integer; raises ValueError for anything else.

    Strings are hexadecimal in any case, optionally `0x`-prefixed, zero-padded or split into
    colon-separated groups (`01:A2:ff`). Decimal serials must be passed as `int`: "10" is sixteen.
    """
    if isinstance(value, bool):  # bool is an int subclass; True is not a serial
        raise ValueError("a serial is not a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"serial {value} is negative")
        return value
    if not isinstance(value, str):
        raise ValueError(f"a serial is an int or a hex string, not {type(value).__name__}")
    text = value.strip()
    if text[:2].lower() == "0x":
        text = text[2:]
    groups = text.split(":")
    if not all(_HEX.fullmatch(group) for group in groups):
        raise ValueError(f"serial {value!r} is not hexadecimal")
    return int("".join(groups), 16)


def canonical_serial(value: int | str) -> str:
    """Lowercase hex, no colons, no leading zeros ("0" for zero); raises ValueError for non-serials."""
    return format(serial_to_int(value), "x")


def random_serial() -> int:
    """A uniformly random serial in [1, 2**159) from the OS CSPRNG (RFC 5280 §4.1.2.2: positive)."""
    while True:
        serial = secrets.randbits(SERIAL_BITS)
        if serial:
            return serial
