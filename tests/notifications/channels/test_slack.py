"""Slack incoming webhook (notifications.md §8.2, acceptance #119)."""

from __future__ import annotations

import pytest

from certctl.config import Settings
from certctl.notifications.channels.base import ChannelName, DeliveryFailed
from certctl.notifications.channels.http import CHAT_TIMEOUTS, HttpTimeouts, OutboundHttp
from certctl.notifications.channels.slack import SlackChannel
from tests.notifications.channels.messages import make_message
from tests.notifications.peers import HttpSink


def _slack(http: OutboundHttp, url: str, **kwargs: object) -> SlackChannel:
    return SlackChannel(http, webhook_url=url, **kwargs)  # type: ignore[arg-type]


def test_posts_the_subject_in_bold_and_the_body(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    channel = SlackChannel.from_settings(Settings(slack_webhook_url=http_sink.url_for("/services/T/B/X")), outbound)

    receipt = channel.send(make_message(type="Cert Expiring", body="mc-web expires in 7 days"))

    assert channel.name is ChannelName.SLACK
    assert receipt.http_status == 200
    (request,) = http_sink.requests
    assert request.path == "/services/T/B/X"
    assert request.header("content-type") == "application/json"
    # channel is left to the webhook's default; the user name defaults to "certctl" (CERTCTL_SLACK_USERNAME).
    assert request.json == {"text": "*Cert Expiring*\nmc-web expires in 7 days", "username": "certctl"}


def test_includes_channel_username_and_icon_only_when_configured(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    _slack(outbound, http_sink.url, channel="#alerts", username="certctl-bot", icon_emoji=":lock:").send(make_message())
    _slack(outbound, http_sink.url).send(make_message())

    first, second = (r.json for r in http_sink.requests)
    assert (first["channel"], first["username"], first["icon_emoji"]) == ("#alerts", "certctl-bot", ":lock:")
    assert set(second) == {"text"}


@pytest.mark.parametrize("status", [403, 500, 201, 204])
def test_anything_but_200_is_a_failure_with_status_and_body(
    http_sink: HttpSink, outbound: OutboundHttp, status: int
) -> None:
    http_sink.respond(status, "invalid_token")

    with pytest.raises(DeliveryFailed) as excinfo:
        _slack(outbound, http_sink.url).send(make_message())

    body = "" if status == 204 else "invalid_token"
    assert str(excinfo.value) == f"slack: webhook returned HTTP {status}: {body}"
    assert excinfo.value.http_status == status


def test_a_refused_connection_is_a_request_failure(outbound: OutboundHttp, refused_http_url: str) -> None:
    with pytest.raises(DeliveryFailed, match=r"^slack: request failed: connect: connection refused$") as excinfo:
        _slack(outbound, refused_http_url).send(make_message())
    assert excinfo.value.http_status is None


def test_a_hanging_webhook_fails_at_the_timeout(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    http_sink.hang(30)
    channel = _slack(outbound, http_sink.url, timeouts=HttpTimeouts(connect_seconds=0.2, total_seconds=0.2))

    with pytest.raises(DeliveryFailed, match=r"^slack: request failed: timed out after 0\.2s$"):
        channel.send(make_message())


def test_the_default_timeout_is_ten_seconds() -> None:
    assert (CHAT_TIMEOUTS.connect_seconds, CHAT_TIMEOUTS.total_seconds) == (10.0, 10.0)


def test_a_reserved_webhook_url_is_refused_before_any_request(
    http_sink: HttpSink, strict_outbound: OutboundHttp
) -> None:
    with pytest.raises(DeliveryFailed) as excinfo:
        _slack(strict_outbound, http_sink.url).send(make_message())

    assert str(excinfo.value) == "slack url rejected: url host resolves to a reserved address and cannot be used"
    assert http_sink.requests == []


def test_names_the_variable_to_set_when_unconfigured(outbound: OutboundHttp) -> None:
    channel = SlackChannel.from_settings(Settings(), outbound)

    assert channel.missing_setting(make_message()) == "CERTCTL_SLACK_WEBHOOK_URL"
    with pytest.raises(DeliveryFailed, match="CERTCTL_SLACK_WEBHOOK_URL"):
        channel.send(make_message())
