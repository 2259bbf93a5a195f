"""PagerDuty Events API v2 (notifications.md §8.4, acceptance #121): trigger, resolve, dedup_key."""

from __future__ import annotations

import pytest

from certctl.config import PagerDutySeverity, Settings
from certctl.notifications.channels.base import ChannelName, DeliveryFailed, EventAction
from certctl.notifications.channels.http import OutboundHttp
from certctl.notifications.channels.pagerduty import DEFAULT_EVENTS_URL, PagerDutyChannel
from tests.notifications.channels.messages import make_message
from tests.notifications.peers import HttpSink


def _settings(sink: HttpSink, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "pagerduty_routing_key": "R0UT1NGK3Y",
        "pagerduty_events_url": sink.url_for("/v2/enqueue"),
        "outbound_allow_loopback": True,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_triggers_an_event_with_summary_severity_source_and_details(
    http_sink: HttpSink, outbound: OutboundHttp
) -> None:
    http_sink.respond(202, '{"status":"success","dedup_key":"certctl-mc-web-7"}')
    channel = PagerDutyChannel.from_settings(_settings(http_sink, pagerduty_severity="error"), outbound)

    receipt = channel.send(make_message(type="ExpirationWarning", body="expires in 7 days", threshold_days=7))

    assert channel.name is ChannelName.PAGERDUTY
    assert receipt.http_status == 202
    (request,) = http_sink.requests
    assert request.path == "/v2/enqueue"
    assert request.json == {
        "routing_key": "R0UT1NGK3Y",
        "event_action": "trigger",
        "dedup_key": "certctl-mc-web-7",
        "payload": {
            "summary": "ExpirationWarning",
            "severity": "error",
            "source": "certctl",
            "custom_details": {"body": "expires in 7 days", "recipient": "owner@example.com"},
        },
    }


def test_dedup_key_follows_certificate_and_threshold(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    channel = PagerDutyChannel.from_settings(_settings(http_sink), outbound)

    channel.send(make_message(certificate_id="mc-api", threshold_days=None))
    channel.send(make_message(certificate_id=None, threshold_days=7))

    with_cert, without_cert = (r.json for r in http_sink.requests)
    assert with_cert["dedup_key"] == "certctl-mc-api"
    assert "dedup_key" not in without_cert


def test_resolve_sends_only_routing_key_action_and_dedup_key(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    channel = PagerDutyChannel.from_settings(_settings(http_sink), outbound)

    channel.send(make_message(action=EventAction.RESOLVE, threshold_days=7))

    assert http_sink.requests[0].json == {
        "routing_key": "R0UT1NGK3Y",
        "event_action": "resolve",
        "dedup_key": "certctl-mc-web-7",
    }


def test_resolve_without_a_certificate_cannot_be_sent(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    channel = PagerDutyChannel.from_settings(_settings(http_sink), outbound)

    with pytest.raises(DeliveryFailed, match="resolve event needs a certificate id"):
        channel.send(make_message(action=EventAction.RESOLVE, certificate_id=None))
    assert http_sink.requests == []


def test_default_severity_is_warning_and_default_url_is_pagerduty() -> None:
    settings = Settings()

    assert settings.pagerduty_severity is PagerDutySeverity.WARNING
    assert settings.pagerduty_events_url == DEFAULT_EVENTS_URL == "https://events.pagerduty.com/v2/enqueue"


@pytest.mark.parametrize("status", [200, 202])
def test_200_and_202_are_success(http_sink: HttpSink, outbound: OutboundHttp, status: int) -> None:
    http_sink.respond(status)

    assert PagerDutyChannel.from_settings(_settings(http_sink), outbound).send(make_message()).http_status == status


@pytest.mark.parametrize("status", [400, 429, 500])
def test_other_statuses_fail_with_the_api_answer(http_sink: HttpSink, outbound: OutboundHttp, status: int) -> None:
    http_sink.respond(status, '{"status":"invalid event","message":"Event object is invalid"}')

    with pytest.raises(DeliveryFailed) as excinfo:
        PagerDutyChannel.from_settings(_settings(http_sink), outbound).send(make_message())

    assert str(excinfo.value) == (
        f'pagerduty: API returned HTTP {status}: {{"status":"invalid event","message":"Event object is invalid"}}'
    )
    assert excinfo.value.http_status == status


def test_transport_failures_are_request_failures(outbound: OutboundHttp, refused_http_url: str) -> None:
    channel = PagerDutyChannel(outbound, routing_key="k", events_url=refused_http_url)

    with pytest.raises(DeliveryFailed, match=r"^pagerduty: request failed: connect: connection refused$"):
        channel.send(make_message())


def test_names_the_variable_to_set_when_unconfigured(outbound: OutboundHttp) -> None:
    assert PagerDutyChannel.from_settings(Settings(), outbound).missing_setting(make_message()) == (
        "CERTCTL_PAGERDUTY_ROUTING_KEY"
    )
