"""The channel registry: all six channels from Settings, names, missing settings, one shared client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from certctl.config import Settings
from certctl.notifications.channels.base import Channel, ChannelName, DeliveryFailed
from certctl.notifications.channels.email import EmailChannel
from certctl.notifications.channels.registry import ChannelRegistry, UnknownChannel, build_channels
from tests.notifications.channels.messages import make_message
from tests.notifications.peers import HttpSink, SmtpSink


@pytest.fixture
def unconfigured() -> Iterator[ChannelRegistry]:
    registry = build_channels(Settings())
    yield registry
    registry.close()


def test_builds_all_six_channels_under_their_names(unconfigured: ChannelRegistry) -> None:
    assert set(unconfigured) == set(ChannelName)
    for name, channel in unconfigured.items():
        assert channel.name is name
    assert isinstance(unconfigured.email, EmailChannel)


def test_unconfigured_channels_name_the_variable_to_set(unconfigured: ChannelRegistry) -> None:
    message = make_message(recipient="owner@example.com")

    missing = {name.value: channel.missing_setting(message) for name, channel in unconfigured.items()}

    assert missing == {
        "Email": "CERTCTL_SMTP_HOST and CERTCTL_SMTP_FROM_ADDRESS",
        "Webhook": "CERTCTL_WEBHOOK_URL",
        "Slack": "CERTCTL_SLACK_WEBHOOK_URL",
        "Teams": "CERTCTL_TEAMS_WEBHOOK_URL",
        "PagerDuty": "CERTCTL_PAGERDUTY_ROUTING_KEY",
        "OpsGenie": "CERTCTL_OPSGENIE_API_KEY",
    }


def test_an_unconfigured_channel_never_pretends_to_send(unconfigured: ChannelRegistry) -> None:
    for channel in unconfigured.values():
        with pytest.raises(DeliveryFailed, match="not configured: set CERTCTL_"):
            channel.send(make_message(recipient="owner@example.com"))


def test_looks_channels_up_by_exact_name(unconfigured: ChannelRegistry) -> None:
    assert unconfigured.get_channel("PagerDuty").name is ChannelName.PAGERDUTY
    with pytest.raises(UnknownChannel, match="'PagerD'"):
        unconfigured.get_channel("PagerD")
    with pytest.raises(UnknownChannel):
        unconfigured.get_channel("slack")  # names are case-sensitive, as in the original


def test_configured_channels_deliver_through_one_shared_client(http_sink: HttpSink, smtp_sink: SmtpSink) -> None:
    settings = Settings(
        outbound_allow_loopback=True,
        smtp_host=smtp_sink.host,
        smtp_port=smtp_sink.port,
        smtp_from_address="certctl@example.com",
        smtp_use_tls=False,
        webhook_url=http_sink.url_for("/webhook"),
        slack_webhook_url=http_sink.url_for("/slack"),
        teams_webhook_url=http_sink.url_for("/teams"),
        pagerduty_routing_key="rk",
        pagerduty_events_url=http_sink.url_for("/pagerduty"),
        opsgenie_api_key="ok",
        opsgenie_api_url=http_sink.url_for("/opsgenie"),
    )
    registry = build_channels(settings)
    try:
        channels: list[Channel] = list(registry.values())
        for channel in channels:
            assert channel.missing_setting(make_message()) is None
            channel.send(make_message())
    finally:
        registry.close()

    assert sorted(r.path for r in http_sink.requests) == ["/opsgenie", "/pagerduty", "/slack", "/teams", "/webhook"]
    assert len({r.client_address for r in http_sink.requests}) == 1  # one pooled connection for all
    assert len(smtp_sink.messages) == 1


def test_the_loopback_flag_comes_from_settings(http_sink: HttpSink) -> None:
    registry = build_channels(Settings(slack_webhook_url=http_sink.url))
    try:
        with pytest.raises(DeliveryFailed, match="reserved address"):
            registry[ChannelName.SLACK].send(make_message())
    finally:
        registry.close()
    assert http_sink.requests == []


def test_malformed_webhook_headers_fail_at_build_time() -> None:
    with pytest.raises(ValueError, match="CERTCTL_WEBHOOK_HEADERS"):
        build_channels(Settings(webhook_headers="NoEquals"))
