"""OpsGenie Alert API v2 (notifications.md §8.5, acceptance #122)."""

from __future__ import annotations

import pytest

from certctl.config import OpsGeniePriority, Settings
from certctl.notifications.channels.base import ChannelName, DeliveryFailed
from certctl.notifications.channels.http import OutboundHttp
from certctl.notifications.channels.opsgenie import DEFAULT_API_URL, OpsGenieChannel
from tests.notifications.channels.messages import make_message
from tests.notifications.peers import HttpSink


def _settings(sink: HttpSink, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "opsgenie_api_key": "test-api-key-123",
        "opsgenie_api_url": sink.url_for("/v2/alerts"),
        "opsgenie_priority": "P2",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_creates_an_alert_with_geniekey_auth(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    http_sink.respond(202, '{"result":"Request will be processed"}')
    channel = OpsGenieChannel.from_settings(_settings(http_sink), outbound)

    receipt = channel.send(make_message(type="RenewalFailure", body="mc-web failed to renew"))

    assert channel.name is ChannelName.OPSGENIE
    assert receipt.http_status == 202
    (request,) = http_sink.requests
    assert request.path == "/v2/alerts"
    assert request.header("authorization") == "GenieKey test-api-key-123"
    assert request.header("content-type") == "application/json"
    # No tags configured: the key is left out rather than sent empty.
    assert request.json == {
        "message": "RenewalFailure",
        "description": "mc-web failed to renew",
        "priority": "P2",
        "source": "certctl",
    }


def test_sends_tags_when_configured(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    channel = OpsGenieChannel(outbound, api_key="k", api_url=http_sink.url, tags=["certctl", "production"])

    channel.send(make_message())

    assert http_sink.requests[0].json["tags"] == ["certctl", "production"]


def test_default_priority_is_p3_and_default_url_is_opsgenie() -> None:
    settings = Settings()

    assert settings.opsgenie_priority is OpsGeniePriority.P3
    assert settings.opsgenie_api_url == DEFAULT_API_URL == "https://api.opsgenie.com/v2/alerts"


@pytest.mark.parametrize("status", [200, 202])
def test_200_and_202_are_success(http_sink: HttpSink, outbound: OutboundHttp, status: int) -> None:
    http_sink.respond(status)

    assert OpsGenieChannel.from_settings(_settings(http_sink), outbound).send(make_message()).http_status == status


def test_401_fails_with_the_api_answer(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    http_sink.respond(401, '{"message":"Could not authenticate"}')

    with pytest.raises(DeliveryFailed) as excinfo:
        OpsGenieChannel.from_settings(_settings(http_sink), outbound).send(make_message())

    assert str(excinfo.value) == 'opsgenie: API returned HTTP 401: {"message":"Could not authenticate"}'
    assert excinfo.value.http_status == 401


def test_transport_failures_are_request_failures(outbound: OutboundHttp, refused_http_url: str) -> None:
    with pytest.raises(DeliveryFailed, match=r"^opsgenie: request failed: connect: connection refused$"):
        OpsGenieChannel(outbound, api_key="k", api_url=refused_http_url).send(make_message())


def test_names_the_variable_to_set_when_unconfigured(outbound: OutboundHttp) -> None:
    assert OpsGenieChannel.from_settings(Settings(), outbound).missing_setting(make_message()) == (
        "CERTCTL_OPSGENIE_API_KEY"
    )
