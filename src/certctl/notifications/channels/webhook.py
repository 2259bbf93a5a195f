"""Generic JSON webhook (notifications.md §8.7): event payload, optional HMAC signature, both SSRF layers.

The target is the message recipient when it is an absolute http(s):// URL, else CERTCTL_WEBHOOK_URL.
With a secret, `X-Signature: sha256=<hex HMAC-SHA256(secret, body)>` signs the exact bytes sent.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from datetime import UTC
from typing import Any

from certctl.config import Settings
from certctl.notifications.channels.base import ChannelName, DeliveryFailed, Message, Receipt
from certctl.notifications.channels.http import (
    WEBHOOK_TIMEOUTS,
    HttpTimeouts,
    OutboundHttp,
    json_body,
    json_headers,
    send_json,
)

SETTING = "CERTCTL_WEBHOOK_URL"
HEADERS_SETTING = "CERTCTL_WEBHOOK_HEADERS"
SIGNATURE_HEADER = "X-Signature"
SIGNATURE_ALGORITHM_HEADER = "X-Signature-Algorithm"
# RFC 9110 §5.6.2 token characters.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Headers that would break message framing or forge the signature are not configurable.
_RESERVED_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "host", "x-signature", "x-signature-algorithm"}
)


def parse_headers(items: Iterable[str]) -> dict[str, str]:
    """Turn CERTCTL_WEBHOOK_HEADERS entries ("Name=Value") into headers; ValueError names the bad entry."""
    headers: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(" \t"), value.strip(" \t")
        if any(ch in item for ch in "\r\n\x00"):
            raise ValueError(f"{HEADERS_SETTING}: the entry for {name!r} contains CR, LF or NUL")
        if not sep or not name:
            raise ValueError(f'{HEADERS_SETTING}: "{item}" is not in the form Name=Value')
        if not _TOKEN.match(name):
            raise ValueError(f'{HEADERS_SETTING}: "{name}" is not a valid header name')
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f'{HEADERS_SETTING}: "{name}" cannot be set')
        headers[name] = value
    return headers


def is_webhook_url(recipient: str) -> bool:
    """An absolute http(s):// URL (scheme case-insensitive), which the Webhook channel uses as its target."""
    lowered = recipient.strip().lower()
    return lowered.startswith(("http://", "https://")) and len(lowered.split("://", 1)[1]) > 0


def sign(secret: bytes, body: bytes) -> str:
    """The X-Signature value: `sha256=` and the hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def event_payload(message: Message) -> dict[str, Any]:
    """The §8.7 event shape; `certificate_id` only when the message has one."""
    created_at = message.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    payload: dict[str, Any] = {
        "type": "event",
        "event_id": message.notification_id,
        "event_type": message.type,
        "subject": message.subject,
        "body": message.body,
        "recipient": message.recipient,
        "created_at": created_at,
    }
    if message.certificate_id:
        payload["certificate_id"] = message.certificate_id
    return payload


class WebhookChannel:
    """POSTs the event payload to the recipient URL or CERTCTL_WEBHOOK_URL; success on any 2xx."""

    name = ChannelName.WEBHOOK

    def __init__(
        self,
        http: OutboundHttp,
        *,
        url: str = "",
        secret: str = "",
        headers: Mapping[str, str] | None = None,
        timeouts: HttpTimeouts = WEBHOOK_TIMEOUTS,
    ) -> None:
        self._http = http
        self._url = url
        self._secret = secret.encode("utf-8")
        self._headers = parse_headers(f"{k}={v}" for k, v in (headers or {}).items())
        self._timeouts = timeouts

    @classmethod
    def from_settings(
        cls, settings: Settings, http: OutboundHttp, *, timeouts: HttpTimeouts = WEBHOOK_TIMEOUTS
    ) -> WebhookChannel:
        """Raises ValueError naming CERTCTL_WEBHOOK_HEADERS when an entry is malformed."""
        return cls(
            http,
            url=settings.webhook_url,
            secret=settings.webhook_secret.get_secret_value(),
            headers=parse_headers(settings.webhook_headers),
            timeouts=timeouts,
        )

    def target(self, message: Message) -> str | None:
        if is_webhook_url(message.recipient):
            return message.recipient.strip()
        return self._url or None

    def missing_setting(self, message: Message) -> str | None:
        return None if self.target(message) else SETTING

    def send(self, message: Message) -> Receipt:
        url = self.target(message)
        if url is None:
            raise DeliveryFailed(f"webhook: not configured: set {SETTING} or use a URL as the recipient")
        body = json_body(event_payload(message))
        headers = json_headers(self._headers)
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
            headers[SIGNATURE_ALGORITHM_HEADER] = "sha256"
        return send_json(
            self._http,
            url,
            body,
            label="webhook",
            accepted=lambda status: 200 <= status < 300,
            rejected=lambda status, text: f"webhook returned status {status}: {text}",
            timeouts=self._timeouts,
            headers=headers,
        )
