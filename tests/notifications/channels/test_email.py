"""E-mail over SMTP against a real aiosmtpd server (notifications.md §8.6, acceptance #123-#126, #182)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest

from certctl.clock import FrozenClock
from certctl.config import Settings, SmtpTlsMode
from certctl.notifications.channels.base import ChannelName, DeliveryFailed
from certctl.notifications.channels.email import EmailChannel
from tests.notifications.channels.messages import make_message
from tests.notifications.conftest import SmtpSinkFactory
from tests.notifications.peers import SilentTcpServer, SmtpSink, TlsMaterial, free_port

FROM = "certctl@example.com"
SENT_AT = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)


def _email(sink: SmtpSink | None = None, **overrides: object) -> EmailChannel:
    values: dict[str, object] = {
        "host": sink.host if sink else "127.0.0.1",
        "port": sink.port if sink else free_port(),
        "from_address": FROM,
        "tls_mode": SmtpTlsMode.NONE,
        "clock": FrozenClock(SENT_AT),
        "local_hostname": "certctl.test",
    }
    values.update(overrides)
    return EmailChannel(**values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# message format
# --------------------------------------------------------------------------------------------------


def test_sends_a_plain_text_message_with_the_type_as_subject(smtp_sink: SmtpSink) -> None:
    channel = _email(smtp_sink)

    receipt = channel.send(make_message(type="RenewalSuccess", body="The certificate for www has been renewed."))

    assert channel.name is ChannelName.EMAIL
    assert receipt.smtp_reply == "250 2.0.0 Message accepted for delivery"
    (mail,) = smtp_sink.messages
    assert (mail.mail_from, mail.rcpt_tos) == (FROM, ("owner@example.com",))
    raw = mail.raw.decode("ascii")
    for line in (
        f"From: {FROM}",
        "To: owner@example.com",
        "Subject: RenewalSuccess",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ):
        assert f"{line}\r\n" in raw
    assert parsedate_to_datetime(mail.message["Date"]) == SENT_AT
    assert mail.message["Message-ID"].endswith("@example.com>")
    assert mail.message.get_content() == "The certificate for www has been renewed.\n"


def test_keeps_utf8_bodies_subjects_and_lines_that_start_with_a_dot(smtp_sink: SmtpSink) -> None:
    body = "Zertifikat für bücher.example läuft ab ✓\n.\n.hidden line\n" + "x" * 1200

    _email(smtp_sink).send(make_message(type="Ablauf-Warnung für Bücher", body=body))

    message = smtp_sink.messages[0].message
    assert message["Subject"] == "Ablauf-Warnung für Bücher"
    assert message.get_content_charset() == "utf-8"
    assert message.get_content() == body + "\n"


def test_send_html_sends_one_html_message_to_every_recipient(smtp_sink: SmtpSink) -> None:
    html = "<html><body><h1>Digest</h1><p>3 certificates expire this week.</p></body></html>"

    receipt = _email(smtp_sink).send_html(["a@example.com", "b@example.com"], "certctl digest", html)

    assert receipt.smtp_reply is not None
    assert receipt.smtp_reply.startswith("250 ")
    (mail,) = smtp_sink.messages
    assert mail.rcpt_tos == ("a@example.com", "b@example.com")
    assert b"Content-Type: text/html; charset=utf-8\r\n" in mail.raw
    assert b"MIME-Version: 1.0\r\n" in mail.raw
    assert mail.message["To"] == "a@example.com, b@example.com"
    assert mail.message.get_content().strip() == html


def test_an_empty_recipient_is_refused(smtp_sink: SmtpSink) -> None:
    channel = _email(smtp_sink)

    with pytest.raises(DeliveryFailed, match=r"^email: recipient address is required$"):
        channel.send(make_message(recipient=""))
    with pytest.raises(DeliveryFailed, match=r"^email: recipient address is required$"):
        channel.send_html([], "digest", "<p>x</p>")
    assert smtp_sink.messages == []


@pytest.mark.parametrize(
    ("from_address", "recipient", "subject", "expected"),
    [
        (FROM, "owner@example.com", "Expiring\r\nBcc: victim@example.com", "invalid subject: Subject"),
        (FROM, "owner@example.com\nBcc: victim@example.com", "Expiring", "invalid recipient: To"),
        ("certctl@example.com\rX-Evil: 1", "owner@example.com", "Expiring", "invalid sender: From"),
        (FROM, "owner@example.com", "Expiring\x00", "invalid subject: Subject"),
    ],
)
def test_header_injection_is_refused_naming_the_field(
    smtp_sink: SmtpSink, from_address: str, recipient: str, subject: str, expected: str
) -> None:
    channel = _email(smtp_sink, from_address=from_address)
    detail = "contains disallowed control character (CR, LF, or NUL)"

    with pytest.raises(DeliveryFailed) as plain:
        channel.send(make_message(recipient=recipient, type=subject))
    with pytest.raises(DeliveryFailed) as html:
        channel.send_html([recipient], subject, "<p>x</p>")

    assert str(plain.value) == str(html.value) == f"email: {expected} {detail}"
    assert smtp_sink.messages == []


# --------------------------------------------------------------------------------------------------
# SMTP conversation failures
# --------------------------------------------------------------------------------------------------


def test_a_temporary_failure_carries_the_smtp_reply(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(1)
    channel = _email(smtp_sink)

    with pytest.raises(DeliveryFailed) as excinfo:
        channel.send(make_message())
    receipt = channel.send(make_message())

    assert str(excinfo.value) == "email: failed to write message: 451 4.3.0 temporary failure"
    assert excinfo.value.smtp_reply == "451 4.3.0 temporary failure"
    assert receipt.smtp_reply is not None
    assert len(smtp_sink.messages) == 1


def test_a_permanent_rejection_carries_the_smtp_reply(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_always("554 5.6.0 message content rejected")

    with pytest.raises(DeliveryFailed) as excinfo:
        _email(smtp_sink).send(make_message())

    assert excinfo.value.smtp_reply == "554 5.6.0 message content rejected"


def test_a_rejected_recipient_fails_with_the_reply(smtp_sink: SmtpSink) -> None:
    smtp_sink.reject_recipient("gone@example.com")

    with pytest.raises(DeliveryFailed) as excinfo:
        _email(smtp_sink).send(make_message(recipient="gone@example.com"))

    assert str(excinfo.value) == "email: failed to set recipient gone@example.com: 550 5.1.1 mailbox unavailable"
    assert excinfo.value.smtp_reply == "550 5.1.1 mailbox unavailable"
    assert smtp_sink.messages == []


def test_authenticates_when_user_name_and_password_are_set(smtp_sink_factory: SmtpSinkFactory) -> None:
    sink = smtp_sink_factory(auth=("alice", "s3cret"))

    _email(sink, username="alice", password="s3cret").send(make_message())

    assert sink.messages[0].authenticated_as == "alice"
    assert [(login, ok) for _mechanism, login, ok in sink.auth_attempts] == [("alice", True)]


def test_rejected_credentials_are_an_authentication_failure(smtp_sink_factory: SmtpSinkFactory) -> None:
    sink = smtp_sink_factory(auth=("alice", "s3cret"))

    with pytest.raises(DeliveryFailed) as excinfo:
        _email(sink, username="alice", password="wrong").send(make_message())

    assert str(excinfo.value).startswith("email: SMTP authentication failed: 535 ")
    assert excinfo.value.smtp_reply is not None
    assert excinfo.value.smtp_reply.startswith("535 ")
    assert sink.messages == []


def test_auth_is_skipped_unless_both_user_name_and_password_are_set(smtp_sink_factory: SmtpSinkFactory) -> None:
    sink = smtp_sink_factory(auth=("alice", "s3cret"))

    with pytest.raises(DeliveryFailed) as excinfo:
        _email(sink, username="alice", password="").send(make_message())

    assert sink.auth_attempts == []
    assert str(excinfo.value).startswith("email: failed to set sender: 530 ")


def test_a_refused_connection_fails_to_connect() -> None:
    with pytest.raises(DeliveryFailed, match=r"^email: failed to connect: connection refused$"):
        _email().send(make_message())


def test_a_silent_server_fails_at_the_connect_timeout(silent_server: SilentTcpServer) -> None:
    channel = _email(port=silent_server.port, connect_timeout_seconds=0.3)

    started = time.monotonic()
    with pytest.raises(DeliveryFailed, match=r"^email: failed to connect: timed out$"):
        channel.send(make_message())
    assert time.monotonic() - started < 3


def test_a_server_that_hangs_mid_conversation_fails_at_the_send_deadline(smtp_sink: SmtpSink) -> None:
    smtp_sink.hang(30, at="data")
    channel = _email(smtp_sink, send_timeout_seconds=0.5)

    started = time.monotonic()
    with pytest.raises(DeliveryFailed, match=r"^email: failed to write message: timed out after 0\.5s$"):
        channel.send(make_message())
    assert time.monotonic() - started < 3


# --------------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------------


def test_starttls_comes_before_auth(smtp_sink_factory: SmtpSinkFactory, tls_material: TlsMaterial) -> None:
    # This server refuses AUTH on a plain-text session, so the login succeeds only after STARTTLS.
    sink = smtp_sink_factory(mode="starttls", auth=("alice", "s3cret"), auth_require_tls=True)
    channel = _email(
        sink,
        host="localhost",
        tls_mode=SmtpTlsMode.STARTTLS,
        ssl_context=tls_material.client_context(),
        username="alice",
        password="s3cret",
    )

    channel.send(make_message())

    (mail,) = sink.messages
    assert mail.tls
    assert mail.authenticated_as == "alice"


def test_starttls_mode_never_downgrades_when_the_server_does_not_offer_it(
    smtp_sink: SmtpSink, tls_material: TlsMaterial
) -> None:
    channel = _email(smtp_sink, tls_mode=SmtpTlsMode.STARTTLS, ssl_context=tls_material.client_context())

    with pytest.raises(DeliveryFailed, match=r"^email: STARTTLS failed: the server does not offer STARTTLS"):
        channel.send(make_message())
    assert smtp_sink.messages == []


def test_starttls_verifies_the_server_certificate(smtp_starttls_sink: SmtpSink) -> None:
    channel = _email(smtp_starttls_sink, host="localhost", tls_mode=SmtpTlsMode.STARTTLS)  # system trust store

    with pytest.raises(DeliveryFailed, match=r"^email: STARTTLS failed: tls: certificate verify failed"):
        channel.send(make_message())
    assert smtp_starttls_sink.messages == []


def test_implicit_tls_delivers_over_smtps(smtps_sink: SmtpSink, tls_material: TlsMaterial) -> None:
    settings = Settings(
        smtp_host="localhost", smtp_port=smtps_sink.port, smtp_from_address=FROM, smtp_tls_mode="implicit"
    )

    EmailChannel.from_settings(settings, ssl_context=tls_material.client_context()).send(make_message())

    assert smtps_sink.messages[0].tls


def test_implicit_tls_verifies_the_server_certificate(smtps_sink: SmtpSink) -> None:
    channel = _email(smtps_sink, host="localhost", tls_mode=SmtpTlsMode.IMPLICIT)

    with pytest.raises(DeliveryFailed, match=r"^email: failed to connect via TLS: tls: certificate verify failed"):
        channel.send(make_message())


def test_implicit_tls_against_a_plain_server_fails_to_connect(smtp_sink: SmtpSink, tls_material: TlsMaterial) -> None:
    channel = _email(smtp_sink, tls_mode=SmtpTlsMode.IMPLICIT, ssl_context=tls_material.client_context())

    with pytest.raises(DeliveryFailed, match=r"^email: failed to connect via TLS: "):
        channel.send(make_message())


# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "from_address", "missing"),
    [
        ("", "", "CERTCTL_SMTP_HOST and CERTCTL_SMTP_FROM_ADDRESS"),
        ("smtp.example.com", "", "CERTCTL_SMTP_FROM_ADDRESS"),
        ("", FROM, "CERTCTL_SMTP_HOST"),
        ("smtp.example.com", FROM, None),
    ],
)
def test_names_the_missing_variables(host: str, from_address: str, missing: str | None) -> None:
    channel = EmailChannel.from_settings(Settings(smtp_host=host, smtp_from_address=from_address))

    assert channel.missing_setting(make_message()) == missing
    if missing:
        with pytest.raises(DeliveryFailed, match=missing):
            channel.send(make_message())
