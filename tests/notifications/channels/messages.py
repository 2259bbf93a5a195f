"""A Message with sensible defaults for channel tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from certctl.notifications.channels.base import Message

CREATED_AT = datetime(2026, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)


def make_message(**overrides: Any) -> Message:
    values: dict[str, Any] = {
        "notification_id": "notif-1741944413589793000-1",
        "type": "ExpirationWarning",
        "recipient": "owner@example.com",
        "body": "The certificate for www.example.com will expire in 7 days (2026-03-21).",
        "created_at": CREATED_AT,
        "certificate_id": "mc-web",
    }
    values.update(overrides)
    return Message(**values)
