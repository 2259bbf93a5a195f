"""Deployment targets: where an agent installs certificates (config encrypted at rest)."""
