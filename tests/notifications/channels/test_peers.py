"""The test peers themselves behave as the other tests assume (the sinks are tools other suites rely on)."""

from __future__ import annotations

import smtplib
import threading
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage

import httpx
import pytest

from tests.notifications.conftest import SmtpSinkFactory
from tests.notifications.peers import HttpSink, Reply, SmtpSink, TlsMaterial


def test_http_sink_records_method_path_headers_and_json(http_sink: HttpSink) -> None:
    response = httpx.post(http_sink.url_for("/hook?x=1"), json={"a": 1}, headers={"X-Test": "yes"})

    assert response.status_code == 200
    (request,) = http_sink.requests
    assert (request.method, request.path) == ("POST", "/hook?x=1")
    assert request.header("x-test") == "yes"
    assert request.json == {"a": 1}
    assert request.answered_status == 200


def test_http_sink_answers_the_configured_status_and_body(http_sink: HttpSink) -> None:
    http_sink.respond(418, "teapot")

    response = httpx.get(http_sink.url)

    assert (response.status_code, response.text) == (418, "teapot")


def test_http_sink_plays_a_script_then_falls_back_to_the_default(http_sink: HttpSink) -> None:
    http_sink.script([503, Reply(status=500, body="boom"), 200])

    statuses = [httpx.get(http_sink.url).status_code for _ in range(4)]

    assert statuses == [503, 500, 200, 200]


def test_http_sink_flaky_is_reproducible_for_a_seed(http_sink: HttpSink) -> None:
    def run() -> list[int]:
        http_sink.reset()
        http_sink.flaky(0.5, seed=42)
        with httpx.Client() as client:
            return [client.get(http_sink.url).status_code for _ in range(40)]

    first, second = run(), run()

    assert first == second
    assert 5 < first.count(503) < 35


def test_http_sink_hang_outlasts_a_short_client_timeout(http_sink: HttpSink) -> None:
    http_sink.hang(30)

    with pytest.raises(httpx.ReadTimeout):
        httpx.get(http_sink.url, timeout=0.2)


def test_http_sink_stops_promptly_while_a_request_hangs() -> None:
    sink = HttpSink().start()
    sink.hang(60)
    errors: list[Exception] = []

    def call() -> None:
        try:
            httpx.get(sink.url, timeout=30)
        except httpx.HTTPError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    sink.wait_for(1)
    sink.stop()
    caller.join(timeout=5)

    assert not caller.is_alive()
    assert errors


def test_refused_url_and_refuse_make_connections_fail(http_sink: HttpSink) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(http_sink.refused_url())
    url = http_sink.url
    http_sink.refuse()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)


def test_http_sink_serves_many_concurrent_keepalive_requests(http_sink: HttpSink) -> None:
    with httpx.Client(limits=httpx.Limits(max_connections=16)) as client, ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda i: client.post(http_sink.url, json={"i": i}).status_code, range(1000)))

    assert statuses == [200] * 1000
    assert sorted(r.json["i"] for r in http_sink.requests) == list(range(1000))


def test_https_sink_presents_the_test_certificate_and_records_sni(
    https_sink: HttpSink, tls_material: TlsMaterial
) -> None:
    response = httpx.get(https_sink.url_for("/", host="localhost"), verify=tls_material.client_context())

    assert response.status_code == 200
    assert https_sink.requests[0].sni == "localhost"


def _mail(to: str = "ops@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "certctl@example.com", to, "ExpirationWarning"
    msg.set_content("expires soon")
    return msg


def test_smtp_sink_records_envelope_and_parsed_message(smtp_sink: SmtpSink) -> None:
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as client:
        client.send_message(_mail())

    (mail,) = smtp_sink.messages
    assert mail.mail_from == "certctl@example.com"
    assert mail.rcpt_tos == ("ops@example.com",)
    assert mail.message["Subject"] == "ExpirationWarning"
    assert not mail.tls


def test_smtp_sink_answers_a_temporary_failure_for_the_next_message(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(1)

    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPDataError) as excinfo:
            client.send_message(_mail())
        client.send_message(_mail())

    assert excinfo.value.smtp_code == 451
    assert len(smtp_sink.messages) == 1


def test_smtp_sink_requires_auth_with_the_given_credentials(smtp_sink_factory: SmtpSinkFactory) -> None:
    sink = smtp_sink_factory(auth=("alice", "s3cret"))

    with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("alice", "wrong")
        client.login("alice", "s3cret")
        client.send_message(_mail())

    assert sink.messages[0].authenticated_as == "alice"


def test_smtp_sink_starttls_and_implicit_tls(smtp_sink_factory: SmtpSinkFactory, tls_material: TlsMaterial) -> None:
    starttls = smtp_sink_factory(mode="starttls")
    smtps = smtp_sink_factory(mode="implicit")

    with smtplib.SMTP("localhost", starttls.port, timeout=5) as client:
        client.starttls(context=tls_material.client_context())
        client.send_message(_mail())
    with smtplib.SMTP_SSL("localhost", smtps.port, timeout=5, context=tls_material.client_context()) as client:
        client.send_message(_mail())

    assert starttls.messages[0].tls
    assert smtps.messages[0].tls


def test_smtp_sink_hang_outlasts_a_short_client_timeout(smtp_sink: SmtpSink) -> None:
    smtp_sink.hang(30, at="data")

    # smtplib reports a read timeout as a disconnect whose text says "timed out".
    with (
        smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=0.3) as client,
        pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"),
    ):
        client.send_message(_mail())
