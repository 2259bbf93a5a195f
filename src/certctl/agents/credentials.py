"""Per-agent credentials: 32 random bytes, base64url without padding, stored only as SHA-256 hex."""

from __future__ import annotations

import base64
import secrets

from certctl.security.apikeys import hash_key

# The sentinel agents (network scanner, cloud discovery) hold this marker instead of a hash: no token
# hashes to it, so they can never authenticate.
SENTINEL_KEY_HASH = "sentinel-no-auth"
SENTINEL_AGENT_IDS = ("server-scanner", "cloud-aws-sm", "cloud-azure-kv", "cloud-gcp-sm")


def new_agent_key() -> tuple[str, str]:
    """A fresh credential and its hash; the plaintext is returned to the agent once and never stored."""
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return key, hash_key(key)
