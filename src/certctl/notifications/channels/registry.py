"""Every channel built from Settings, keyed by ChannelName (notifications.md §8.1).

All six are always present: an unconfigured one answers `missing_setting()` with the variable to set,
so the core can send the row to `dead` with that name instead of pretending it was sent. The HTTP
channels share one pooled, SSRF-guarded client; `close()` releases it.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping

from certctl.config import Settings
from certctl.notifications.channels.base import Channel, ChannelName
from certctl.notifications.channels.email import EmailChannel
from certctl.notifications.channels.http import CHAT_TIMEOUTS, WEBHOOK_TIMEOUTS, HttpTimeouts, OutboundHttp
from certctl.notifications.channels.opsgenie import OpsGenieChannel
from certctl.notifications.channels.pagerduty import PagerDutyChannel
from certctl.notifications.channels.slack import SlackChannel
from certctl.notifications.channels.teams import TeamsChannel
from certctl.notifications.channels.webhook import WebhookChannel
from certctl.security.ssrf import Resolver, system_resolver


class UnknownChannel(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown notification channel {name!r}; known: {', '.join(ChannelName)}")
        self.name = name


class ChannelRegistry(Mapping[ChannelName, Channel]):
    """The channels by name, plus the shared HTTP client they use; close it when the process stops."""

    def __init__(self, channels: Mapping[ChannelName, Channel], email: EmailChannel, http: OutboundHttp) -> None:
        self._channels = dict(channels)
        self.email = email  # typed access for the digest (`send_html`)
        self.http = http

    def get_channel(self, name: str) -> Channel:
        """The channel called `name` (a ChannelName or its exact string); UnknownChannel otherwise."""
        try:
            return self._channels[ChannelName(name)]
        except (ValueError, KeyError):
            raise UnknownChannel(str(name)) from None

    def __getitem__(self, name: ChannelName) -> Channel:
        return self._channels[name]

    def __iter__(self) -> Iterator[ChannelName]:
        return iter(self._channels)

    def __len__(self) -> int:
        return len(self._channels)

    def close(self) -> None:
        self.http.close()


def build_channels(
    settings: Settings,
    *,
    ssl_context: ssl.SSLContext | None = None,
    resolver: Resolver = system_resolver,
    chat_timeouts: HttpTimeouts = CHAT_TIMEOUTS,
    webhook_timeouts: HttpTimeouts = WEBHOOK_TIMEOUTS,
) -> ChannelRegistry:
    """All six channels from `settings`.

    `ssl_context` replaces the system trust store for HTTPS and SMTP TLS (tests with a self-signed
    certificate). Raises ValueError naming CERTCTL_WEBHOOK_HEADERS when that setting is malformed.
    """
    http = OutboundHttp(allow_loopback=settings.outbound_allow_loopback, ssl_context=ssl_context, resolver=resolver)
    try:
        email = EmailChannel.from_settings(settings, ssl_context=ssl_context)
        channels: dict[ChannelName, Channel] = {
            ChannelName.EMAIL: email,
            ChannelName.WEBHOOK: WebhookChannel.from_settings(settings, http, timeouts=webhook_timeouts),
            ChannelName.SLACK: SlackChannel.from_settings(settings, http, timeouts=chat_timeouts),
            ChannelName.TEAMS: TeamsChannel.from_settings(settings, http, timeouts=chat_timeouts),
            ChannelName.PAGERDUTY: PagerDutyChannel.from_settings(settings, http, timeouts=chat_timeouts),
            ChannelName.OPSGENIE: OpsGenieChannel.from_settings(settings, http, timeouts=chat_timeouts),
        }
    except ValueError:
        http.close()
        raise
    return ChannelRegistry(channels, email, http)
