"""Microsoft Teams incoming webhook with a legacy MessageCard (notifications.md §8.3); success only on 200."""

from __future__ import annotations

from typing import Any

from certctl.config import Settings
from certctl.notifications.channels.base import ChannelName, DeliveryFailed, Message, Receipt
from certctl.notifications.channels.http import CHAT_TIMEOUTS, HttpTimeouts, OutboundHttp, json_body, send_json

SETTING = "CERTCTL_TEAMS_WEBHOOK_URL"
THEME_COLOR = "0076D7"


class TeamsChannel:
    """Posts one MessageCard with a single section; the message recipient is ignored."""

    name = ChannelName.TEAMS

    def __init__(self, http: OutboundHttp, *, webhook_url: str, timeouts: HttpTimeouts = CHAT_TIMEOUTS) -> None:
        self._http = http
        self._url = webhook_url
        self._timeouts = timeouts

    @classmethod
    def from_settings(
        cls, settings: Settings, http: OutboundHttp, *, timeouts: HttpTimeouts = CHAT_TIMEOUTS
    ) -> TeamsChannel:
        return cls(http, webhook_url=settings.teams_webhook_url, timeouts=timeouts)

    def missing_setting(self, message: Message) -> str | None:
        return None if self._url else SETTING

    def payload(self, message: Message) -> dict[str, Any]:
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "themeColor": THEME_COLOR,
            "summary": message.subject,
            "sections": [{"activityTitle": message.subject, "text": message.body, "markdown": True}],
        }

    def send(self, message: Message) -> Receipt:
        if not self._url:
            raise DeliveryFailed(f"teams: not configured: set {SETTING}")
        return send_json(
            self._http,
            self._url,
            json_body(self.payload(message)),
            label="teams",
            accepted=lambda status: status == 200,
            rejected=lambda status, body: f"teams: webhook returned HTTP {status}: {body}",
            timeouts=self._timeouts,
        )
