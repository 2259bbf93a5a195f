"""API keys created with `certctl apikey create` (stored as SHA-256 hashes only)."""
