"""PagerDuty Events API v2 (notifications.md §8.4): trigger and resolve, deduplicated per certificate."""

from __future__ import annotations

from typing import Any

from certctl.config import Settings
from certctl.notifications.channels.base import ChannelName, DeliveryFailed, EventAction, Message, Receipt
from certctl.notifications.channels.http import CHAT_TIMEOUTS, HttpTimeouts, OutboundHttp, json_body, send_json

SETTING = "CERTCTL_PAGERDUTY_ROUTING_KEY"
DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SOURCE = "certctl"


def dedup_key(message: Message) -> str | None:
    """`certctl-<certificate id>[-<threshold days>]`: one incident per certificate and alert threshold."""
    if not message.certificate_id:
        return None
    if message.threshold_days is None:
        return f"certctl-{message.certificate_id}"
    return f"certctl-{message.certificate_id}-{message.threshold_days}"


class PagerDutyChannel:
    """Enqueues one event per message; success on 202 or 200."""

    name = ChannelName.PAGERDUTY

    def __init__(
        self,
        http: OutboundHttp,
        *,
        routing_key: str,
        severity: str = "warning",
        events_url: str = DEFAULT_EVENTS_URL,
        timeouts: HttpTimeouts = CHAT_TIMEOUTS,
    ) -> None:
        self._http = http
        self._routing_key = routing_key
        self._severity = severity
        self._url = events_url
        self._timeouts = timeouts

    @classmethod
    def from_settings(
        cls, settings: Settings, http: OutboundHttp, *, timeouts: HttpTimeouts = CHAT_TIMEOUTS
    ) -> PagerDutyChannel:
        return cls(
            http,
            routing_key=settings.pagerduty_routing_key.get_secret_value(),
            severity=settings.pagerduty_severity.value,
            events_url=settings.pagerduty_events_url,
            timeouts=timeouts,
        )

    def missing_setting(self, message: Message) -> str | None:
        return None if self._routing_key else SETTING

    def payload(self, message: Message) -> dict[str, Any]:
        key = dedup_key(message)
        if message.action is EventAction.RESOLVE:
            if key is None:
                raise DeliveryFailed("pagerduty: a resolve event needs a certificate id to build its dedup_key")
            return {"routing_key": self._routing_key, "event_action": EventAction.RESOLVE.value, "dedup_key": key}
        payload: dict[str, Any] = {"routing_key": self._routing_key, "event_action": EventAction.TRIGGER.value}
        if key is not None:
            payload["dedup_key"] = key
        payload["payload"] = {
            "summary": message.subject,
            "severity": self._severity,
            "source": SOURCE,
            "custom_details": {"body": message.body, "recipient": message.recipient},
        }
        return payload

    def send(self, message: Message) -> Receipt:
        if not self._routing_key:
            raise DeliveryFailed(f"pagerduty: not configured: set {SETTING}")
        return send_json(
            self._http,
            self._url,
            json_body(self.payload(message)),
            label="pagerduty",
            accepted=lambda status: status in (200, 202),
            rejected=lambda status, body: f"pagerduty: API returned HTTP {status}: {body}",
            timeouts=self._timeouts,
        )
