"""The contract every delivery channel implements (notifications.md §8.1).

A channel turns one `Message` into one delivery attempt. It raises `DeliveryFailed` for every failure the
retry budget should absorb (refused connection, timeout, non-success status, SSRF refusal, SMTP reply),
so the caller records the attempt and schedules the retry; it never swallows an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class ChannelName(StrEnum):
    """The channel strings, exactly as the original's constants (case-sensitive)."""

    EMAIL = "Email"
    WEBHOOK = "Webhook"
    SLACK = "Slack"
    TEAMS = "Teams"
    PAGERDUTY = "PagerDuty"
    OPSGENIE = "OpsGenie"


class EventAction(StrEnum):
    """Incident tools (PagerDuty) open an alert on `trigger` and close it on `resolve`."""

    TRIGGER = "trigger"
    RESOLVE = "resolve"


@dataclass(frozen=True, slots=True)
class Message:
    """One notification row as a channel sees it; the subject is the notification type (as the original)."""

    notification_id: str
    type: str  # NotificationType value, also the subject line
    recipient: str  # owner e-mail, a webhook URL, or an id the chat channels ignore
    body: str
    created_at: datetime
    certificate_id: str | None = None
    threshold_days: int | None = None  # expiry alerts: PagerDuty dedup_key per certificate + threshold
    action: EventAction = EventAction.TRIGGER

    @property
    def subject(self) -> str:
        return self.type


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the remote side answered to a successful delivery (stored on the attempt row)."""

    http_status: int | None = None
    smtp_reply: str | None = None


class DeliveryFailed(Exception):
    """A failed attempt; the message is stored verbatim in `last_error`, so make it say what happened."""

    def __init__(self, message: str, *, http_status: int | None = None, smtp_reply: str | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.smtp_reply = smtp_reply


class Channel(Protocol):
    name: ChannelName

    def missing_setting(self, message: Message) -> str | None:
        """The `CERTCTL_*` variable to set when this channel cannot deliver `message`, else None."""
        ...

    def send(self, message: Message) -> Receipt:
        """Deliver once within the channel's own timeouts; raise DeliveryFailed on any failure."""
        ...
