"""API key parsing, hashing and constant-time matching."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from certctl.security.roles import Role

KEY_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
KEY_PREFIX = "cctl_"


@dataclass(frozen=True, slots=True)
class ApiKeyEntry:
    """A configured key: its name (the actor), its role and the SHA-256 hex of the key."""

    name: str
    role: Role
    key_hash: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    """A new random key, shown once; only its hash is stored."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def parse_named_keys(text: str) -> list[ApiKeyEntry]:
    """Parse `name:key[:role]` entries (CERTCTL_API_KEYS_NAMED); raises ValueError naming the entry.

    No role suffix means operator, the original's non-admin. The same name may appear twice with
    different keys (rotation overlap) only with the same role.
    """
    entries: list[ApiKeyEntry] = []
    seen: dict[str, Role] = {}
    seen_pairs: set[tuple[str, str]] = set()
    for position, raw in enumerate(item.strip() for item in text.split(",")):
        if not raw:
            continue
        parts = raw.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"entry {position + 1} must be name:key or name:key:role")
        name, key = parts[0].strip(), parts[1].strip()
        role_text = parts[2].strip().lower() if len(parts) == 3 else Role.OPERATOR.value
        if not KEY_NAME_PATTERN.fullmatch(name):
            raise ValueError(f"entry {position + 1}: key name {name!r} must match [A-Za-z0-9_-]+")
        if not key:
            raise ValueError(f"entry {position + 1} ({name}): the key is empty")
        try:
            role = Role(role_text)
        except ValueError:
            raise ValueError(
                f"entry {position + 1} ({name}): role {role_text!r} is not admin, operator, viewer or auditor"
            ) from None
        if (name, key) in seen_pairs:
            raise ValueError(f"entry {position + 1} ({name}): duplicate name and key")
        if name in seen and seen[name] is not role:
            raise ValueError(f"entry {position + 1} ({name}): the same name appears with different roles")
        seen[name] = role
        seen_pairs.add((name, key))
        entries.append(ApiKeyEntry(name=name, role=role, key_hash=hash_key(key)))
    return entries


def legacy_keys(secret: str) -> list[ApiKeyEntry]:
    """CERTCTL_AUTH_SECRET's comma list becomes `legacy-key-N` operator keys."""
    keys = [item.strip() for item in secret.split(",") if item.strip()]
    return [ApiKeyEntry(f"legacy-key-{i}", Role.OPERATOR, hash_key(k)) for i, k in enumerate(keys)]


def match_key(presented: str, entries: Iterable[ApiKeyEntry]) -> ApiKeyEntry | None:
    """Compare the presented key's hash with every entry in constant time (no early exit)."""
    digest = hash_key(presented)
    found: ApiKeyEntry | None = None
    for entry in entries:
        if hmac.compare_digest(digest, entry.key_hash) and found is None:
            found = entry
    return found
