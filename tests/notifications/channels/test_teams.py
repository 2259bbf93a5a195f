"""Microsoft Teams MessageCard (notifications.md §8.3, acceptance #120)."""

from __future__ import annotations

import pytest

from certctl.config import Settings
from certctl.notifications.channels.base import ChannelName, DeliveryFailed
from certctl.notifications.channels.http import HttpTimeouts, OutboundHttp
from certctl.notifications.channels.teams import TeamsChannel
from tests.notifications.channels.messages import make_message
from tests.notifications.peers import HttpSink


def test_posts_one_message_card_with_one_section(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    channel = TeamsChannel.from_settings(Settings(teams_webhook_url=http_sink.url_for("/webhookb2/x")), outbound)

    receipt = channel.send(make_message(type="Renewal Failed", body="mc-web failed to renew"))

    assert channel.name is ChannelName.TEAMS
    assert receipt.http_status == 200
    (request,) = http_sink.requests
    assert request.header("content-type") == "application/json"
    assert request.json == {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "themeColor": "0076D7",
        "summary": "Renewal Failed",
        "sections": [{"activityTitle": "Renewal Failed", "text": "mc-web failed to renew", "markdown": True}],
    }


@pytest.mark.parametrize("status", [400, 202, 503])
def test_anything_but_200_is_a_failure(http_sink: HttpSink, outbound: OutboundHttp, status: int) -> None:
    http_sink.respond(status, "Bad payload received by generic incoming webhook.")

    with pytest.raises(DeliveryFailed) as excinfo:
        TeamsChannel(outbound, webhook_url=http_sink.url).send(make_message())

    assert str(excinfo.value) == (
        f"teams: webhook returned HTTP {status}: Bad payload received by generic incoming webhook."
    )
    assert excinfo.value.http_status == status


def test_transport_failures_are_request_failures(outbound: OutboundHttp, refused_http_url: str) -> None:
    with pytest.raises(DeliveryFailed, match=r"^teams: request failed: connect: connection refused$"):
        TeamsChannel(outbound, webhook_url=refused_http_url).send(make_message())


def test_a_hanging_webhook_fails_at_the_timeout(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    http_sink.hang(30)
    channel = TeamsChannel(outbound, webhook_url=http_sink.url, timeouts=HttpTimeouts(0.2, 0.2))

    with pytest.raises(DeliveryFailed, match=r"^teams: request failed: timed out after 0\.2s$"):
        channel.send(make_message())


def test_names_the_variable_to_set_when_unconfigured(outbound: OutboundHttp) -> None:
    assert TeamsChannel.from_settings(Settings(), outbound).missing_setting(make_message()) == (
        "CERTCTL_TEAMS_WEBHOOK_URL"
    )
