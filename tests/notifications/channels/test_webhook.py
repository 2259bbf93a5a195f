"""Generic webhook (notifications.md §8.7, acceptance #129, #136, #176): payload, HMAC, headers, SSRF."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone

import pytest

from certctl.config import Settings
from certctl.notifications.channels.base import ChannelName, DeliveryFailed
from certctl.notifications.channels.http import WEBHOOK_TIMEOUTS, HttpTimeouts, OutboundHttp
from certctl.notifications.channels.webhook import WebhookChannel, is_webhook_url, parse_headers
from tests.notifications.channels.messages import make_message
from tests.notifications.peers import HttpSink, Reply


def _webhook(http: OutboundHttp, url: str = "", **kwargs: object) -> WebhookChannel:
    return WebhookChannel(http, url=url, **kwargs)  # type: ignore[arg-type]


def test_posts_the_event_payload_with_the_notifier_user_agent(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    channel = WebhookChannel.from_settings(Settings(webhook_url=http_sink.url_for("/certctl")), outbound)

    receipt = channel.send(make_message())

    assert channel.name is ChannelName.WEBHOOK
    assert receipt.http_status == 200
    (request,) = http_sink.requests
    assert request.path == "/certctl"
    assert request.header("content-type") == "application/json"
    assert request.header("user-agent") == "certctl-notifier/1.0"
    assert request.json == {
        "type": "event",
        "event_id": "notif-1741944413589793000-1",
        "event_type": "ExpirationWarning",
        "subject": "ExpirationWarning",
        "body": "The certificate for www.example.com will expire in 7 days (2026-03-21).",
        "recipient": "owner@example.com",
        "created_at": "2026-03-14T09:26:53.589793Z",
        "certificate_id": "mc-web",
    }


def test_omits_certificate_id_when_there_is_none_and_reports_created_at_in_utc(
    http_sink: HttpSink, outbound: OutboundHttp
) -> None:
    created = datetime(2026, 3, 14, 10, 0, tzinfo=timezone(timedelta(hours=1)))

    _webhook(outbound, http_sink.url).send(make_message(certificate_id=None, created_at=created))

    payload = http_sink.requests[0].json
    assert "certificate_id" not in payload
    assert payload["created_at"] == "2026-03-14T09:00:00Z"


def test_signs_the_exact_body_bytes_when_a_secret_is_set(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    channel = WebhookChannel.from_settings(Settings(webhook_url=http_sink.url, webhook_secret="s3cret"), outbound)

    channel.send(make_message(body="naïve café ✓ <b>&</b>"))

    request = http_sink.requests[0]
    expected = "sha256=" + hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert request.header("x-signature") == expected
    assert request.header("x-signature-algorithm") == "sha256"
    assert request.json["body"] == "naïve café ✓ <b>&</b>"


def test_sends_no_signature_without_a_secret(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    _webhook(outbound, http_sink.url).send(make_message())

    request = http_sink.requests[0]
    assert request.header("x-signature") is None
    assert request.header("x-signature-algorithm") is None


def test_forwards_custom_headers_from_settings(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    settings = Settings(
        webhook_url=http_sink.url, webhook_headers="Authorization=Bearer token123,X-Custom=a=b", webhook_secret="k"
    )

    WebhookChannel.from_settings(settings, outbound).send(make_message())

    request = http_sink.requests[0]
    assert request.header("authorization") == "Bearer token123"
    assert request.header("x-custom") == "a=b"
    assert request.header("x-signature") is not None


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("X-Evil=a\r\nHost: other", "contains CR, LF or NUL"),
        ("X-Evil=a\nb", "contains CR, LF or NUL"),
        ("X Evil=a", "is not a valid header name"),
        ("X-Evil\r\n=a", "contains CR, LF or NUL"),
        ("X-Nul=a\x00b", "contains CR, LF or NUL"),
        ("NoEquals", "is not in the form Name=Value"),
        ("=value", "is not in the form Name=Value"),
        ("Content-Length=0", "cannot be set"),
        ("X-Signature=sha256=forged", "cannot be set"),
    ],
)
def test_refuses_unsafe_custom_headers_at_construction(entry: str, problem: str) -> None:
    with pytest.raises(ValueError, match="CERTCTL_WEBHOOK_HEADERS") as excinfo:
        parse_headers([entry])
    assert problem in str(excinfo.value)


def test_refuses_unsafe_headers_passed_directly(outbound: OutboundHttp) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        WebhookChannel(outbound, url="http://127.0.0.1/", headers={"X-A": "1\r\nX-B: 2"})


def test_the_recipient_url_wins_over_the_configured_url(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    channel = _webhook(outbound, http_sink.url_for("/configured"))

    channel.send(make_message(recipient=http_sink.url_for("/from-recipient")))
    channel.send(make_message(recipient="owner@example.com"))

    assert [r.path for r in http_sink.requests] == ["/from-recipient", "/configured"]


def test_is_configured_by_a_url_recipient_alone(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    channel = WebhookChannel.from_settings(Settings(), outbound)

    assert channel.missing_setting(make_message(recipient="owner@example.com")) == "CERTCTL_WEBHOOK_URL"
    assert channel.missing_setting(make_message(recipient="HTTPS://hooks.example.test/x")) is None
    assert channel.send(make_message(recipient=http_sink.url)).http_status == 200


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        ("https://hooks.example.test/x", True),
        ("HTTP://10.0.0.5/hook", True),
        ("http://", False),
        ("owner@example.com", False),
        ("ftp://files.example.test/", False),
        ("", False),
    ],
)
def test_recognises_url_recipients(recipient: str, expected: bool) -> None:
    assert is_webhook_url(recipient) is expected


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_any_2xx_is_success(http_sink: HttpSink, outbound: OutboundHttp, status: int) -> None:
    http_sink.respond(status)

    assert _webhook(outbound, http_sink.url).send(make_message()).http_status == status


@pytest.mark.parametrize("status", [301, 302, 400, 404, 500, 503])
def test_other_statuses_fail_quoting_the_body(http_sink: HttpSink, outbound: OutboundHttp, status: int) -> None:
    http_sink.respond(status, "upstream unavailable", headers={"Location": "http://169.254.169.254/"})

    with pytest.raises(DeliveryFailed) as excinfo:
        _webhook(outbound, http_sink.url).send(make_message())

    assert str(excinfo.value) == f"webhook returned status {status}: upstream unavailable"
    assert excinfo.value.http_status == status
    assert len(http_sink.requests) == 1  # a redirect is never followed


def test_a_long_error_body_is_cut_but_says_so(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    http_sink.respond(500, "E" * 10_000)

    with pytest.raises(DeliveryFailed) as excinfo:
        _webhook(outbound, http_sink.url).send(make_message())

    assert str(excinfo.value) == "webhook returned status 500: " + "E" * 2048 + "… (7952 more characters)"


def test_each_send_is_one_attempt_so_a_script_of_failures_shows_through(
    http_sink: HttpSink, outbound: OutboundHttp
) -> None:
    http_sink.script([503, Reply(status=503, body="busy"), 200])
    channel = _webhook(outbound, http_sink.url)
    outcomes: list[str] = []

    for _ in range(3):
        try:
            outcomes.append(f"sent {channel.send(make_message()).http_status}")
        except DeliveryFailed as exc:
            outcomes.append(str(exc))

    assert outcomes == ["webhook returned status 503: ", "webhook returned status 503: busy", "sent 200"]
    assert len(http_sink.requests) == 3


def test_a_hanging_endpoint_fails_at_the_injected_timeout(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    http_sink.hang(30)
    channel = _webhook(outbound, http_sink.url, timeouts=HttpTimeouts(connect_seconds=0.2, total_seconds=0.3))

    with pytest.raises(DeliveryFailed, match=r"^webhook: request failed: timed out after 0\.3s$"):
        channel.send(make_message())


def test_the_default_timeout_is_thirty_seconds() -> None:
    assert (WEBHOOK_TIMEOUTS.connect_seconds, WEBHOOK_TIMEOUTS.total_seconds) == (10.0, 30.0)


def test_a_refused_connection_is_a_request_failure(outbound: OutboundHttp, refused_http_url: str) -> None:
    with pytest.raises(DeliveryFailed, match=r"^webhook: request failed: connect: connection refused$"):
        _webhook(outbound, refused_http_url).send(make_message())


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/webhook",
        "http://127.0.0.1:8080/hook",
        "http://0.0.0.0/",
        "http://[fe80::1]/",
        "http://[::ffff:127.0.0.1]/",
    ],
)
def test_reserved_targets_fail_before_any_network_io(strict_outbound: OutboundHttp, url: str) -> None:
    with pytest.raises(DeliveryFailed) as excinfo:
        _webhook(strict_outbound).send(make_message(recipient=url))

    assert str(excinfo.value) == "webhook url rejected: url host resolves to a reserved address and cannot be used"
    assert excinfo.value.http_status is None


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://example.com/", "ftp://example.com/x"])
def test_dangerous_schemes_in_the_configured_url_are_rejected(strict_outbound: OutboundHttp, url: str) -> None:
    with pytest.raises(DeliveryFailed, match=r'^webhook url rejected: url scheme ".+" is not allowed'):
        _webhook(strict_outbound, url).send(make_message())


def test_a_name_that_rebinds_to_loopback_is_refused_at_dial_time(http_sink: HttpSink) -> None:
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    http = OutboundHttp(allow_loopback=False, resolver=lambda host, port: next(answers))
    try:
        with pytest.raises(DeliveryFailed) as excinfo:
            _webhook(http).send(make_message(recipient=http_sink.url_for("/", host="rebind.example.test")))
    finally:
        http.close()

    assert str(excinfo.value) == (
        "webhook: request failed: refusing to dial rebind.example.test: resolves to reserved address 127.0.0.1"
    )
    assert http_sink.requests == []


def test_created_at_must_be_aware() -> None:
    # Message.created_at is always aware UTC in the core; a naive value would be read as local time.
    assert make_message().created_at.tzinfo is UTC
