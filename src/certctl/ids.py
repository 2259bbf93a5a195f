"""Server-generated identifiers: `<prefix>-<random>`, with the original certctl's prefixes."""

from __future__ import annotations

import re
import secrets

# Client-supplied IDs (seed data uses readable ones such as `mc-api-prod`) must stay URL-safe.
CLIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


def is_valid_client_id(value: str) -> bool:
    return _CLIENT_ID.fullmatch(value) is not None


def slug(name: str, limit: int = 64) -> str:
    """Lower-case, spaces to `-`, other characters dropped (renewal policy IDs: `rp-<slug>`)."""
    text = re.sub(r"\s+", "-", name.strip().lower())
    text = re.sub(r"[^a-z0-9._-]", "", text).strip("-.")
    return text[:limit] or secrets.token_hex(4)
