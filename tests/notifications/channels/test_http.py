"""The shared outbound HTTP client: pooling, deadlines, both SSRF layers, TLS, redirects, body caps."""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from certctl.notifications.channels.http import (
    MAX_RESPONSE_BYTES,
    HttpTimeouts,
    OutboundFailed,
    OutboundHttp,
    OutboundRefused,
    error_excerpt,
    json_headers,
)
from tests.notifications.peers import HttpSink, Reply, SilentTcpServer, TlsMaterial

FAST = HttpTimeouts(connect_seconds=2.0, total_seconds=2.0)
SHORT = HttpTimeouts(connect_seconds=0.3, total_seconds=0.3)


class FakeDns:
    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


def _post(client: OutboundHttp, url: str, body: bytes = b"{}", timeouts: HttpTimeouts = FAST) -> int:
    return client.post(url, content=body, headers=json_headers(), timeouts=timeouts).status_code


def test_posts_the_body_and_headers_and_returns_status_and_text(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    http_sink.respond(202, "queued")

    answer = outbound.post(
        http_sink.url_for("/hook?x=1"), content=b'{"a":1}', headers=json_headers({"X-Extra": "1"}), timeouts=FAST
    )

    assert (answer.status_code, answer.text) == (202, "queued")
    (request,) = http_sink.requests
    assert (request.method, request.path, request.body) == ("POST", "/hook?x=1", b'{"a":1}')
    assert request.header("content-type") == "application/json"
    assert request.header("user-agent") == "certctl-notifier/1.0"
    assert request.header("x-extra") == "1"
    assert request.header("host") == f"127.0.0.1:{http_sink.port}"


def test_escapes_a_non_ascii_path(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    _post(outbound, http_sink.url_for("/hooks/zertifikat-für-bücher?team=pki%20ops"))

    assert http_sink.requests[0].path == "/hooks/zertifikat-f%C3%BCr-b%C3%BCcher?team=pki%20ops"


def test_keeps_connections_alive_across_requests(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    for _ in range(5):
        _post(outbound, http_sink.url)

    assert len({r.client_address for r in http_sink.requests}) == 1


def test_serves_concurrent_senders_through_one_client(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: _post(outbound, http_sink.url, f'{{"i":{i}}}'.encode()), range(400)))

    assert statuses == [200] * 400
    assert sorted(r.json["i"] for r in http_sink.requests) == list(range(400))
    assert len({r.client_address for r in http_sink.requests}) <= 8


def test_replaces_a_connection_the_server_closed_while_idle(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    _post(outbound, http_sink.url)
    http_sink.drop_connections()

    assert _post(outbound, http_sink.url) == 200
    assert len(http_sink.requests) == 2


def test_a_hanging_server_fails_at_the_whole_request_deadline(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    http_sink.hang(30)

    started = time.monotonic()
    with pytest.raises(OutboundFailed, match=r"^timed out after 0\.3s$"):
        _post(outbound, http_sink.url, timeouts=SHORT)

    assert time.monotonic() - started < 2.0


def test_a_silent_tls_server_fails_at_the_connect_timeout(silent_server: SilentTcpServer) -> None:
    client = OutboundHttp(allow_loopback=True)
    try:
        with pytest.raises(OutboundFailed, match=r"^connect timed out after 0\.3s$"):
            _post(client, f"https://127.0.0.1:{silent_server.port}/", timeouts=SHORT)
    finally:
        client.close()


def test_a_refused_connection_says_so(outbound: OutboundHttp, refused_http_url: str) -> None:
    with pytest.raises(OutboundFailed, match=r"^connect: connection refused$"):
        _post(outbound, refused_http_url)


def test_a_dropped_connection_is_a_transport_failure(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    http_sink.script([Reply(drop=True)])

    with pytest.raises(OutboundFailed, match=r"closed the connection|reset|broken pipe"):
        _post(outbound, http_sink.url)


def test_redirects_are_returned_not_followed(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    http_sink.respond(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})

    assert _post(outbound, http_sink.url) == 302
    assert len(http_sink.requests) == 1


def test_reads_at_most_the_body_cap(http_sink: HttpSink, outbound: OutboundHttp) -> None:
    http_sink.respond(500, b"x" * (MAX_RESPONSE_BYTES * 3))

    answer = outbound.post(http_sink.url, content=b"{}", headers=json_headers(), timeouts=FAST)

    assert len(answer.text) == MAX_RESPONSE_BYTES
    assert _post(outbound, http_sink.url) == 500  # the cut connection was not reused


def test_error_excerpt_cuts_long_bodies_and_says_how_much_is_missing() -> None:
    assert error_excerpt("  short  ") == "short"
    cut = error_excerpt("a" * 5000)
    assert cut.startswith("a" * 2048)
    assert cut.endswith("… (2952 more characters)")


def test_url_check_refuses_loopback_without_the_flag(http_sink: HttpSink, strict_outbound: OutboundHttp) -> None:
    with pytest.raises(OutboundRefused) as excinfo:
        _post(strict_outbound, http_sink.url)

    assert excinfo.value.reason == "url host resolves to a reserved address and cannot be used"
    assert not excinfo.value.at_dial
    assert http_sink.requests == []


def test_metadata_address_stays_refused_with_the_loopback_flag(outbound: OutboundHttp) -> None:
    with pytest.raises(OutboundRefused, match="reserved address"):
        _post(outbound, "http://169.254.169.254/latest/meta-data/")


def test_dial_guard_refuses_when_the_name_rebinds_to_loopback(http_sink: HttpSink) -> None:
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    client = OutboundHttp(allow_loopback=False, resolver=lambda host, port: next(answers))
    try:
        with pytest.raises(OutboundRefused) as excinfo:
            _post(client, http_sink.url_for("/", host="rebind.example.test"))
    finally:
        client.close()

    assert excinfo.value.at_dial
    assert excinfo.value.reason == "refusing to dial rebind.example.test: resolves to reserved address 127.0.0.1"
    assert http_sink.requests == []


def test_connects_to_the_checked_address_and_keeps_the_host_name(http_sink: HttpSink) -> None:
    dns = FakeDns({"hooks.example.test": ["127.0.0.1"]})
    client = OutboundHttp(allow_loopback=True, resolver=dns)
    try:
        assert _post(client, http_sink.url_for("/x", host="hooks.example.test")) == 200
    finally:
        client.close()

    # The name exists only in the fake table: the request arrived through the checked address.
    assert http_sink.requests[0].header("host") == f"hooks.example.test:{http_sink.port}"
    assert dns.lookups == ["hooks.example.test", "hooks.example.test"]  # URL check, then the dial


def test_unresolvable_names_fail_as_transport_errors(outbound: OutboundHttp) -> None:
    client = OutboundHttp(allow_loopback=True, resolver=FakeDns({}))
    try:
        with pytest.raises(OutboundFailed, match=r"^resolve nowhere\.example\.test: "):
            _post(client, "http://nowhere.example.test/hook")
    finally:
        client.close()


def test_https_verifies_the_certificate_against_the_url_host(https_sink: HttpSink, tls_material: TlsMaterial) -> None:
    dns = FakeDns({"localhost": ["127.0.0.1"], "other.example.test": ["127.0.0.1"]})
    trusting = OutboundHttp(allow_loopback=True, ssl_context=tls_material.client_context(), resolver=dns)
    system = OutboundHttp(allow_loopback=True, resolver=dns)
    try:
        assert _post(trusting, https_sink.url_for("/", host="localhost")) == 200
        with pytest.raises(OutboundFailed, match=r"^tls: certificate verify failed"):
            _post(trusting, https_sink.url_for("/", host="other.example.test"))
        with pytest.raises(OutboundFailed, match=r"^tls: certificate verify failed"):
            _post(system, https_sink.url_for("/", host="localhost"))
    finally:
        trusting.close()
        system.close()

    assert [r.sni for r in https_sink.requests] == ["localhost"]


def test_json_headers_lets_extra_headers_replace_defaults_whatever_the_case() -> None:
    headers = json_headers({"user-agent": "custom/2", "X-Team": "pki"})

    assert headers == {"Content-Type": "application/json", "user-agent": "custom/2", "X-Team": "pki"}
