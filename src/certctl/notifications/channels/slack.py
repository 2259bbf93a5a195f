"""Slack incoming webhook (notifications.md §8.2): `*<subject>*` and the body, success only on HTTP 200."""

from __future__ import annotations

from certctl.config import Settings
from certctl.notifications.channels.base import ChannelName, DeliveryFailed, Message, Receipt
from certctl.notifications.channels.http import CHAT_TIMEOUTS, HttpTimeouts, OutboundHttp, json_body, send_json

SETTING = "CERTCTL_SLACK_WEBHOOK_URL"


class SlackChannel:
    """Posts to one Slack incoming webhook; the message recipient is ignored (the webhook picks the channel)."""

    name = ChannelName.SLACK

    def __init__(
        self,
        http: OutboundHttp,
        *,
        webhook_url: str,
        channel: str = "",
        username: str = "",
        icon_emoji: str = "",
        timeouts: HttpTimeouts = CHAT_TIMEOUTS,
    ) -> None:
        self._http = http
        self._url = webhook_url
        self._channel = channel
        self._username = username
        self._icon_emoji = icon_emoji
        self._timeouts = timeouts

    @classmethod
    def from_settings(
        cls, settings: Settings, http: OutboundHttp, *, timeouts: HttpTimeouts = CHAT_TIMEOUTS
    ) -> SlackChannel:
        return cls(
            http,
            webhook_url=settings.slack_webhook_url,
            channel=settings.slack_channel,
            username=settings.slack_username,
            timeouts=timeouts,
        )

    def missing_setting(self, message: Message) -> str | None:
        return None if self._url else SETTING

    def payload(self, message: Message) -> dict[str, str]:
        payload = {"text": f"*{message.subject}*\n{message.body}"}
        # Optional fields go out only when configured, so the webhook's own defaults apply otherwise.
        if self._channel:
            payload["channel"] = self._channel
        if self._username:
            payload["username"] = self._username
        if self._icon_emoji:
            payload["icon_emoji"] = self._icon_emoji
        return payload

    def send(self, message: Message) -> Receipt:
        if not self._url:
            raise DeliveryFailed(f"slack: not configured: set {SETTING}")
        return send_json(
            self._http,
            self._url,
            json_body(self.payload(message)),
            label="slack",
            accepted=lambda status: status == 200,
            rejected=lambda status, body: f"slack: webhook returned HTTP {status}: {body}",
            timeouts=self._timeouts,
        )
