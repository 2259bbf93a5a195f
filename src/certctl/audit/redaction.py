"""Redaction of audit details before insert (core.md §13.4): credentials and PII never reach the trail."""

from __future__ import annotations

from typing import Any

CREDENTIAL = "[REDACTED:CREDENTIAL]"
PII = "[REDACTED:PII]"

_CREDENTIAL_KEYS = frozenset(
    {
        "api_key",
        "apikey",
        "password",
        "passphrase",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "bootstrap_token",
        "credential",
        "credentials",
        "private_key",
        "private_key_pem",
        "privatekey",
        "key_pem",
        "cert_pem",
        "chain_pem",
        "full_pem",
        "eab_secret",
        "eab_kid",
        "acme_account_key",
        "hmac",
        "hmac_key",
        "signature",
        "auth",
        "authorization",
        "bearer",
    }
)
_PII_KEYS = frozenset(
    {
        "email",
        "email_address",
        "phone",
        "phone_number",
        "telephone",
        "ssn",
        "social_security",
        "dob",
        "date_of_birth",
        "name",
        "full_name",
        "first_name",
        "last_name",
        "surname",
        "address",
        "street",
        "street_address",
        "city",
        "postal_code",
        "zip",
        "zipcode",
        "ip",
        "ip_address",
    }
)


def redact(details: dict[str, Any]) -> dict[str, Any]:
    """A redacted copy; the dotted paths of what was redacted are listed under `redacted_keys`."""
    redacted_paths: list[str] = []
    clean: dict[str, Any] = _walk(details, "", redacted_paths)
    if redacted_paths:
        clean["redacted_keys"] = sorted(redacted_paths)
    return clean


def _walk(value: Any, path: str, found: list[str]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            lowered = str(key).lower()
            if lowered in _CREDENTIAL_KEYS:
                out[key] = CREDENTIAL
                found.append(child)
            elif lowered in _PII_KEYS:
                out[key] = PII
                found.append(child)
            else:
                out[key] = _walk(item, child, found)
        return out
    if isinstance(value, list | tuple):  # a tuple is stored as a JSON array too: walk it the same way
        return [_walk(item, f"{path}[{i}]", found) for i, item in enumerate(value)]
    return value
