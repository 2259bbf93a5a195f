"""OpsGenie Alert API v2 (notifications.md §8.5): `GenieKey` auth, success on 202 or 200."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from certctl.config import Settings
from certctl.notifications.channels.base import ChannelName, DeliveryFailed, Message, Receipt
from certctl.notifications.channels.http import (
    CHAT_TIMEOUTS,
    HttpTimeouts,
    OutboundHttp,
    json_body,
    json_headers,
    send_json,
)

SETTING = "CERTCTL_OPSGENIE_API_KEY"
DEFAULT_API_URL = "https://api.opsgenie.com/v2/alerts"
SOURCE = "certctl"


class OpsGenieChannel:
    """Creates one alert per message; the message recipient is ignored."""

    name = ChannelName.OPSGENIE

    def __init__(
        self,
        http: OutboundHttp,
        *,
        api_key: str,
        priority: str = "P3",
        api_url: str = DEFAULT_API_URL,
        tags: Sequence[str] = (),
        timeouts: HttpTimeouts = CHAT_TIMEOUTS,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._priority = priority
        self._url = api_url
        self._tags = list(tags)
        self._timeouts = timeouts

    @classmethod
    def from_settings(
        cls, settings: Settings, http: OutboundHttp, *, timeouts: HttpTimeouts = CHAT_TIMEOUTS
    ) -> OpsGenieChannel:
        return cls(
            http,
            api_key=settings.opsgenie_api_key.get_secret_value(),
            priority=settings.opsgenie_priority.value,
            api_url=settings.opsgenie_api_url,
            timeouts=timeouts,
        )

    def missing_setting(self, message: Message) -> str | None:
        return None if self._api_key else SETTING

    def payload(self, message: Message) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "message": message.subject,
            "description": message.body,
            "priority": self._priority,
            "source": SOURCE,
        }
        if self._tags:
            payload["tags"] = list(self._tags)
        return payload

    def send(self, message: Message) -> Receipt:
        if not self._api_key:
            raise DeliveryFailed(f"opsgenie: not configured: set {SETTING}")
        return send_json(
            self._http,
            self._url,
            json_body(self.payload(message)),
            label="opsgenie",
            accepted=lambda status: status in (200, 202),
            rejected=lambda status, body: f"opsgenie: API returned HTTP {status}: {body}",
            timeouts=self._timeouts,
            headers=json_headers({"Authorization": f"GenieKey {self._api_key}"}),
        )
