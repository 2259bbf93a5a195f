"""Notifications: rows in `notification_events`, delivered through channels, retried with backoff, and
kept in a dead-letter queue an operator can see and requeue when every attempt failed (notifications.md)."""
