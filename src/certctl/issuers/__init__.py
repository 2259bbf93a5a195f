"""Certificate authorities certctl issues from, configured through the API (config encrypted at rest)."""
