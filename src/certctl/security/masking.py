"""Secret masking for stored configs: the `config` column and every response carry `********`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MASK = "********"
_SECRET_WORDS = ("password", "secret", "token", "key", "hmac", "private", "credentials")


def is_secret_field(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def mask_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level keys that name a secret and hold a non-empty string become `********` (core.md §13.2)."""
    return {
        name: MASK if is_secret_field(name) and isinstance(value, str) and value else value
        for name, value in config.items()
    }


def merge_masked(incoming: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """On update, a `********` placeholder keeps the stored secret; any other value replaces it."""
    return {name: stored[name] if value == MASK and name in stored else value for name, value in incoming.items()}
