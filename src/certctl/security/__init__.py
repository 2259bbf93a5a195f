"""API keys and roles, encryption at rest, secret masking, rate limiting."""
