"""Query-parameter parsing shared by list endpoints: time filters and opaque keyset cursors."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime

from certctl.errors import ValidationFailed

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time_filter(name: str, value: str | None) -> datetime | None:
    """RFC 3339 or YYYY-MM-DD (00:00:00 UTC); anything else is a 400 (the original ignored it)."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if _DATE_ONLY.fullmatch(text):
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if parsed.tzinfo is None or "T" not in text.upper():
            raise ValueError(text)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # year 1 with a positive offset overflows astimezone
        raise ValidationFailed(
            f"{name} must be an RFC 3339 time (2026-01-31T12:00:00Z) or a date (2026-01-31)"
        ) from exc


def encode_cursor(at: datetime, ident: str) -> str:
    raw = f"{at.astimezone(UTC).isoformat()}|{ident}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at_text, _, ident = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
        at = datetime.fromisoformat(at_text)
        if not ident or at.tzinfo is None:
            raise ValueError(cursor)
        return at.astimezone(UTC), ident
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationFailed("cursor is not a cursor this server returned") from exc
