"""E-mail over SMTP (notifications.md §8.6): plain-text alerts, HTML digests, STARTTLS or implicit TLS.

TLS follows `CERTCTL_SMTP_TLS_MODE` (derived from the port and CERTCTL_SMTP_USE_TLS when unset); a server
that does not offer STARTTLS in `starttls` mode is an error, never a silent downgrade. AUTH is used only
when both a user name and a password are set. Connecting has 10 s, the whole conversation 30 s.
"""

from __future__ import annotations

import quopri
import smtplib
import socket
import ssl
import time
from collections.abc import Sequence
from email.header import Header
from email.utils import format_datetime, make_msgid

from certctl.clock import Clock, SystemClock
from certctl.config import Settings, SmtpTlsMode
from certctl.notifications.channels.base import ChannelName, DeliveryFailed, Message, Receipt

HOST_SETTING = "CERTCTL_SMTP_HOST"
FROM_SETTING = "CERTCTL_SMTP_FROM_ADDRESS"
CONNECT_TIMEOUT_SECONDS = 10.0
SEND_TIMEOUT_SECONDS = 30.0
_FORBIDDEN = ("\r", "\n", "\x00")


class HeaderInjection(ValueError):
    """A From, To or Subject value that holds CR, LF or NUL."""


def check_header(field: str, value: str) -> None:
    """Raise HeaderInjection naming `field` when `value` contains CR, LF or NUL (§8.6: rejected, not stripped)."""
    if any(ch in value for ch in _FORBIDDEN):
        raise HeaderInjection(f"{field} contains disallowed control character (CR, LF, or NUL)")


def _encode_header(value: str) -> str:
    return value if value.isascii() else Header(value, "utf-8").encode()


def _encode_body(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body bytes with CRLF line ends)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if text.isascii() and all(len(line) <= 998 for line in lines):  # RFC 5322 §2.1.1 line limit
        return "7bit", "\r\n".join(lines).encode("ascii")
    encoded = quopri.encodestring("\n".join(lines).encode("utf-8"))
    return "quoted-printable", encoded.replace(b"\n", b"\r\n")


class EmailChannel:
    """Sends one message per call over a fresh SMTP connection; thread-safe (no shared connection)."""

    name = ChannelName.EMAIL

    def __init__(
        self,
        *,
        host: str,
        port: int = 587,
        from_address: str,
        username: str = "",
        password: str = "",
        tls_mode: SmtpTlsMode = SmtpTlsMode.STARTTLS,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS,
        send_timeout_seconds: float = SEND_TIMEOUT_SECONDS,
        clock: Clock | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._from = from_address
        self._username = username
        self._password = password
        self._tls_mode = tls_mode
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._connect_timeout = connect_timeout_seconds
        self._send_timeout = send_timeout_seconds
        self._clock: Clock = clock or SystemClock()
        # A fixed EHLO name: smtplib's default (getfqdn) can block on reverse DNS.
        self._local_hostname = local_hostname or socket.gethostname() or "localhost"

    @classmethod
    def from_settings(cls, settings: Settings, *, ssl_context: ssl.SSLContext | None = None) -> EmailChannel:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            from_address=settings.smtp_from_address,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value(),
            tls_mode=settings.smtp_effective_tls_mode,
            ssl_context=ssl_context,
        )

    def missing_setting(self, message: Message | None = None) -> str | None:
        missing = [name for name, value in ((HOST_SETTING, self._host), (FROM_SETTING, self._from)) if not value]
        return " and ".join(missing) or None

    # sending --------------------------------------------------------------------------------------

    def send(self, message: Message) -> Receipt:
        """Send `message.body` as plain text to `message.recipient`, with the notification type as subject."""
        return self._deliver([message.recipient] if message.recipient else [], message.subject, message.body, "plain")

    def send_html(self, recipients: Sequence[str], subject: str, html: str) -> Receipt:
        """Send one text/html message (the digest) to every address in `recipients`."""
        return self._deliver(list(recipients), subject, html, "html")

    def format_message(self, recipients: Sequence[str], subject: str, text: str, subtype: str) -> bytes:
        """The RFC 5322 message as sent (CRLF line ends); raises HeaderInjection for unsafe headers."""
        check_header("From", self._from)
        for recipient in recipients:
            check_header("To", recipient)
        check_header("Subject", subject)
        cte, body = _encode_body(text)
        domain = self._from.rpartition("@")[2] or "certctl.local"
        headers = [
            f"From: {self._from}",
            f"To: {', '.join(recipients)}",
            f"Subject: {_encode_header(subject)}",
            f"Date: {format_datetime(self._clock.now())}",
            f"Message-ID: {make_msgid(domain=domain)}",
            "MIME-Version: 1.0",
            f"Content-Type: text/{subtype}; charset=utf-8",
            f"Content-Transfer-Encoding: {cte}",
        ]
        return ("\r\n".join(headers) + "\r\n\r\n").encode("utf-8") + body

    def _deliver(self, recipients: list[str], subject: str, text: str, subtype: str) -> Receipt:
        missing = self.missing_setting()
        if missing:
            raise DeliveryFailed(f"email: not configured: set {missing}")
        if not recipients or not all(r.strip() for r in recipients):
            raise DeliveryFailed("email: recipient address is required")
        try:
            check_header("From", self._from)
        except HeaderInjection as exc:
            raise DeliveryFailed(f"email: invalid sender: {exc}") from exc
        try:
            for recipient in recipients:
                check_header("To", recipient)
        except HeaderInjection as exc:
            raise DeliveryFailed(f"email: invalid recipient: {exc}") from exc
        try:
            check_header("Subject", subject)
        except HeaderInjection as exc:
            raise DeliveryFailed(f"email: invalid subject: {exc}") from exc
        payload = self.format_message(recipients, subject, text, subtype)
        return _SmtpSession(self, time.monotonic() + self._send_timeout).send(recipients, payload)


class _SmtpSession:
    """One SMTP conversation under a whole-send deadline; every step's failure names the step."""

    def __init__(self, channel: EmailChannel, deadline: float) -> None:
        self._c = channel
        self._deadline = deadline
        self._client: smtplib.SMTP | None = None

    def _remaining(self, cap: float | None = None) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {self._c._send_timeout:g}s")
        return remaining if cap is None else min(cap, remaining)

    def _arm(self) -> None:
        """Give the next command only what is left of the whole-send budget."""
        assert self._client is not None
        if self._client.sock is not None:
            self._client.sock.settimeout(self._remaining())

    def _fail(self, step: str, exc: BaseException) -> DeliveryFailed:
        if time.monotonic() >= self._deadline:
            return DeliveryFailed(f"email: {step}: timed out after {self._c._send_timeout:g}s")
        reply = _reply_text(exc)
        return DeliveryFailed(f"email: {step}: {reply or _describe(exc)}", smtp_reply=reply)

    def send(self, recipients: list[str], payload: bytes) -> Receipt:
        try:
            self._connect()
            self._secure()
            self._authenticate()
            return self._transfer(recipients, payload)
        finally:
            if self._client is not None:
                self._client.close()

    def _connect(self) -> None:
        c = self._c
        timeout = self._remaining(c._connect_timeout)
        try:
            if c._tls_mode is SmtpTlsMode.IMPLICIT:
                self._client = smtplib.SMTP_SSL(
                    c._host, c._port, local_hostname=c._local_hostname, timeout=timeout, context=c._ssl_context
                )
            else:
                self._client = smtplib.SMTP(c._host, c._port, local_hostname=c._local_hostname, timeout=timeout)
        except (OSError, smtplib.SMTPException) as exc:
            step = "failed to connect via TLS" if c._tls_mode is SmtpTlsMode.IMPLICIT else "failed to connect"
            raise self._fail(step, exc) from exc

    def _secure(self) -> None:
        assert self._client is not None
        try:
            self._arm()
            self._client.ehlo()
            if self._c._tls_mode is not SmtpTlsMode.STARTTLS:
                return
            if not self._client.has_extn("starttls"):
                raise DeliveryFailed(
                    "email: STARTTLS failed: the server does not offer STARTTLS; refusing to send without TLS "
                    "(set CERTCTL_SMTP_TLS_MODE=none to allow plain text)"
                )
            self._arm()
            self._client.starttls(context=self._c._ssl_context)
            self._arm()
            self._client.ehlo()
        except smtplib.SMTPResponseException as exc:
            raise self._fail("STARTTLS failed", exc) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail("STARTTLS failed" if self._c._tls_mode is SmtpTlsMode.STARTTLS else "EHLO", exc) from exc

    def _authenticate(self) -> None:
        c = self._c
        if not (c._username and c._password):
            return
        assert self._client is not None
        try:
            self._arm()
            self._client.login(c._username, c._password)
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryFailed("email: SMTP authentication failed: the server does not offer AUTH") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail("SMTP authentication failed", exc) from exc

    def _transfer(self, recipients: list[str], payload: bytes) -> Receipt:
        client = self._client
        assert client is not None
        try:
            self._arm()
            code, reply = client.mail(self._c._from)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, self._c._from)
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail("failed to set sender", exc) from exc
        for recipient in recipients:
            try:
                self._arm()
                code, reply = client.rcpt(recipient)
                if code not in (250, 251):
                    raise smtplib.SMTPResponseException(code, reply)
            except (OSError, smtplib.SMTPException) as exc:
                raise self._fail(f"failed to set recipient {recipient}", exc) from exc
        try:
            self._arm()
            code, reply = client.data(payload)
        except smtplib.SMTPDataError as exc:
            raise self._fail("failed to get data writer", exc) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail("failed to write message", exc) from exc
        if code != 250:
            raise self._fail("failed to write message", smtplib.SMTPResponseException(code, reply))
        # The message is accepted: a failing QUIT must not turn a delivery into a retry (a duplicate).
        try:
            self._arm()
            client.quit()
        except (OSError, smtplib.SMTPException):
            pass
        return Receipt(smtp_reply=f"{code} {_decode(reply)}")


def _decode(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _reply_text(exc: BaseException) -> str | None:
    """The server's reply line ("451 4.3.0 temporary failure") when the error carries one."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        for code, reply in exc.recipients.values():
            return f"{code} {_decode(reply)}"
        return None
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_decode(exc.smtp_error)}"
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, TimeoutError):
        return "timed out"  # smtplib words a read timeout as "Connection unexpectedly closed: timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"tls: certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return f"tls: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
