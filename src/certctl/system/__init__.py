"""Health, readiness, version and auth probes."""
