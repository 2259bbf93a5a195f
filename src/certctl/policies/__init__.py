"""Renewal policies (when to renew, how often to retry, when to alert) and, later, policy rules."""
