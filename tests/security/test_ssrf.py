"""The SSRF guard (notifications.md §8.7, acceptance M): URL validation, the dial-time guard and pinning."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator, Sequence

import httpcore
import httpx
import pytest

from certctl.security.ssrf import (
    RESERVED_ADDRESS,
    DialRefused,
    GuardedTransport,
    UnsafeURL,
    check_url,
    is_reserved,
    is_reserved_for_dial,
    resolve_for_dial,
    split_dial_address,
)
from tests.notifications.peers import HttpSink, TlsMaterial, make_tls_material


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(("localhost", "127.0.0.1"), tmp_path_factory.mktemp("ssrf-tls"))


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    with HttpSink() as sink:
        yield sink


@pytest.fixture
def https_sink(tls_material: TlsMaterial) -> Iterator[HttpSink]:
    with HttpSink(tls=tls_material) as sink:
        yield sink


class FakeDns:
    """A resolver with a fixed table; names not in it fail like an unknown name (no real DNS in tests)."""

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


class RebindingDns:
    """Answers a public address to the first lookup and loopback afterwards (DNS rebinding)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls += 1
        return ["93.184.216.34"] if self.calls == 1 else ["127.0.0.1"]


class RecordingBackend(httpcore.NetworkBackend):
    """The standard backend, noting every address it is asked to connect to."""

    def __init__(self) -> None:
        self.inner = httpcore.SyncBackend()
        self.dialled: list[tuple[str, int]] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        self.dialled.append((host, port))
        return self.inner.connect_tcp(host, port, timeout, local_address, socket_options)


NO_DNS = FakeDns({})

# --------------------------------------------------------------------------------------------------
# predicates
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        *("127.0.0.1", "127.255.255.254", "::1", "169.254.169.254", "169.254.0.0", "224.0.0.1"),
        *("239.255.255.255", "255.255.255.255", "::ffff:127.0.0.1", "::ffff:169.254.169.254"),
    ],
)
def test_base_predicate_reserves_loopback_link_local_multicast_and_broadcast(address: str) -> None:
    assert is_reserved(address)


@pytest.mark.parametrize(
    "address",
    [
        "0.0.0.0",  # noqa: S104
        *("fe80::1", "ff00::1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "8.8.8.8", "2606:4700:4700::1111"),
    ],
)
def test_base_predicate_leaves_the_dial_only_ranges_and_private_networks_alone(address: str) -> None:
    assert not is_reserved(address)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "169.254.169.254",
        "224.0.0.5",
        "239.1.2.3",
        "255.255.255.255",
        "0.0.0.0",  # noqa: S104
        "0.1.2.3",
        "::",
        "fe80::1",
        "febf:ffff::1",
        "fe80::1%1",
        "ff02::1",
        "ff00::1",
        "::ffff:127.0.0.1",
        "::ffff:7f00:1",
        "::ffff:169.254.169.254",
        "::ffff:0.0.0.0",
        "::ffff:224.0.0.1",
        "not-an-ip",
        "",
        "999.1.1.1",
    ],
)
def test_dial_predicate_reserves_every_range_mapped_forms_and_garbage(address: str) -> None:
    assert is_reserved_for_dial(address)


def test_dial_predicate_treats_a_missing_address_as_reserved() -> None:
    assert is_reserved_for_dial(None)


@pytest.mark.parametrize(
    "address",
    [
        *("10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "8.8.8.8", "2606:4700:4700::1111"),
        *("fc00::1", "::ffff:10.0.0.1", "fec0::1", "169.253.255.255", "223.255.255.255"),
    ],
)
def test_dial_predicate_allows_private_and_public_addresses(address: str) -> None:
    assert not is_reserved_for_dial(address)


# --------------------------------------------------------------------------------------------------
# layer 1: URL validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/webhook",
        "http://example.com/hook",
        "https://example.com:8443/hook",
        "https://webhook.site/abc-123",
        "http://10.0.0.5/internal",
        "http://192.168.1.10:8080/webhook",
        "http://172.16.5.1/intranet",
        "HTTPS://Example.COM/x",
    ],
)
def test_check_url_accepts_public_and_private_targets(url: str) -> None:
    check_url(url, resolver=NO_DNS)  # names that do not resolve pass: the dial-time guard decides


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.0.0.1:8080/hook",
        "http://[::1]/",
        "http://[::1]:9/webhook",
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.1.2/",
        "http://255.255.255.255/",
        "http://224.0.0.5/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://[fe80::1]/",
        "http://[ff02::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
    ],
)
def test_check_url_rejects_literal_reserved_addresses(url: str) -> None:
    with pytest.raises(UnsafeURL, match="reserved") as excinfo:
        check_url(url, resolver=NO_DNS)
    assert str(excinfo.value) == RESERVED_ADDRESS


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("file:///etc/passwd", "file"),
        ("gopher://example.com/", "gopher"),
        ("ftp://example.com/x", "ftp"),
        ("javascript:alert(1)", "javascript"),
        ("data:text/plain,hello", "data"),
        ("ldap://example.com/", "ldap"),
        ("dict://example.com:11211/", "dict"),
        ("jar:http://example.com/x.jar!/", "jar"),
        ("example.com/hook", ""),
        ("http//missing-colon.example.com", ""),
    ],
)
def test_check_url_rejects_other_schemes_naming_the_scheme(url: str, scheme: str) -> None:
    with pytest.raises(UnsafeURL) as excinfo:
        check_url(url, resolver=NO_DNS)
    assert str(excinfo.value) == f'url scheme "{scheme}" is not allowed; only http and https are permitted'


@pytest.mark.parametrize("url", ["http:///foo", "https://", "http://:80/x"])
def test_check_url_rejects_a_missing_host(url: str) -> None:
    with pytest.raises(UnsafeURL) as excinfo:
        check_url(url, resolver=NO_DNS)
    assert str(excinfo.value) == "url must include a host"


def test_check_url_requires_a_url() -> None:
    with pytest.raises(UnsafeURL) as excinfo:
        check_url("")
    assert str(excinfo.value) == "url is required"


@pytest.mark.parametrize(
    "url", ["http://[::1/", "http://example.com:99999/", "http://example.com:port/", "http://exa mple.com/"]
)
def test_check_url_rejects_malformed_urls(url: str) -> None:
    with pytest.raises(UnsafeURL) as excinfo:
        check_url(url, resolver=NO_DNS)
    assert str(excinfo.value) == "invalid url"


def test_check_url_rejects_a_name_when_any_answer_is_reserved() -> None:
    dns = FakeDns({"mixed.example.test": ["93.184.216.34", "169.254.169.254"], "ok.example.test": ["10.1.2.3"]})

    with pytest.raises(UnsafeURL, match="reserved"):
        check_url("https://mixed.example.test/hook", resolver=dns)
    check_url("https://ok.example.test/hook", resolver=dns)


def test_check_url_rejects_localhost_through_the_system_resolver() -> None:
    with pytest.raises(UnsafeURL, match="reserved"):
        check_url("http://localhost:9/")


def test_loopback_flag_allows_loopback_only() -> None:
    dns = FakeDns({"dev.example.test": ["127.0.0.1"], "meta.example.test": ["169.254.169.254"]})

    for url in ("http://127.0.0.1:8080/", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://dev.example.test/"):
        check_url(url, allow_loopback=True, resolver=dns)
    for url in (
        "http://169.254.169.254/",
        "http://0.0.0.0/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
        "http://meta.example.test/",
    ):
        with pytest.raises(UnsafeURL, match="reserved"):
            check_url(url, allow_loopback=True, resolver=dns)


# --------------------------------------------------------------------------------------------------
# layer 2: dial-time resolution
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "169.254.169.254", "::1", "0.0.0.0", "::ffff:127.0.0.1"])  # noqa: S104
def test_resolve_for_dial_refuses_reserved_literals(host: str) -> None:
    with pytest.raises(DialRefused) as excinfo:
        resolve_for_dial(host, 80, resolver=NO_DNS)
    assert str(excinfo.value) == f"refusing to dial reserved address {host}"


def test_resolve_for_dial_refuses_a_name_that_resolves_to_loopback() -> None:
    with pytest.raises(DialRefused) as excinfo:
        resolve_for_dial("localhost", 9)
    assert str(excinfo.value) in {
        "refusing to dial localhost: resolves to reserved address 127.0.0.1",
        "refusing to dial localhost: resolves to reserved address ::1",
    }


def test_resolve_for_dial_refuses_when_any_answer_is_reserved() -> None:
    dns = FakeDns({"two.example.test": ["10.0.0.7", "127.0.0.1"]})

    with pytest.raises(DialRefused) as excinfo:
        resolve_for_dial("two.example.test", 443, resolver=dns)
    assert str(excinfo.value) == "refusing to dial two.example.test: resolves to reserved address 127.0.0.1"


def test_resolve_for_dial_reports_resolution_failures() -> None:
    # An OSError (a transport failure, retried), not an SSRF refusal.
    with pytest.raises(OSError, match=r"^resolve nowhere\.example\.test: "):
        resolve_for_dial("nowhere.example.test", 80, resolver=NO_DNS)
    with pytest.raises(OSError, match=r"^no addresses found for empty\.example\.test$"):
        resolve_for_dial("empty.example.test", 80, resolver=FakeDns({"empty.example.test": []}))


def test_resolve_for_dial_returns_checked_addresses_in_order() -> None:
    dns = FakeDns({"intranet.example.test": ["10.0.0.7", "192.168.0.9"]})

    assert resolve_for_dial("intranet.example.test", 443, resolver=dns) == ["10.0.0.7", "192.168.0.9"]
    assert resolve_for_dial("localhost", 9, allow_loopback=True)


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1:9", ("127.0.0.1", 9)), ("[::1]:22", ("::1", 22)), ("example.com:443", ("example.com", 443))],
)
def test_split_dial_address(address: str, expected: tuple[str, int]) -> None:
    assert split_dial_address(address) == expected


@pytest.mark.parametrize("address", ["no-port", "example.com:", ":80", "::1:22", "host:0", "host:65536"])
def test_split_dial_address_rejects_bad_addresses(address: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid dial address$"):
        split_dial_address(address)


# --------------------------------------------------------------------------------------------------
# layer 2 in httpx: GuardedTransport
# --------------------------------------------------------------------------------------------------


def _client(**kwargs: object) -> httpx.Client:
    return httpx.Client(transport=GuardedTransport(**kwargs), timeout=5)  # type: ignore[arg-type]


def test_transport_refuses_a_literal_loopback_address_without_sending(http_sink: HttpSink) -> None:
    with _client() as client, pytest.raises(DialRefused) as excinfo:
        client.get(http_sink.url)

    assert str(excinfo.value) == "refusing to dial reserved address 127.0.0.1"

    assert http_sink.requests == []


def test_transport_refuses_a_name_resolving_to_loopback_at_dial_time(http_sink: HttpSink) -> None:
    with _client() as client, pytest.raises(DialRefused, match="refusing to dial localhost: resolves to reserved"):
        client.get(http_sink.url_for("/", host="localhost"))

    assert http_sink.requests == []


def test_transport_connects_to_the_checked_ip_and_keeps_the_host_header(http_sink: HttpSink) -> None:
    dns = FakeDns({"hooks.example.test": ["127.0.0.1"]})
    backend = RecordingBackend()

    with _client(allow_loopback=True, resolver=dns, network_backend=backend) as client:
        response = client.post(http_sink.url_for("/x", host="hooks.example.test"), json={"a": 1})

    # "hooks.example.test" exists only in the fake table: the request can only have arrived through the
    # address the guard resolved and checked.
    assert response.status_code == 200
    assert backend.dialled == [("127.0.0.1", http_sink.port)]
    assert http_sink.requests[0].header("host") == f"hooks.example.test:{http_sink.port}"
    assert dns.lookups == ["hooks.example.test"]


def test_transport_re_resolves_for_each_new_connection_and_defeats_rebinding(http_sink: HttpSink) -> None:
    dns = RebindingDns()
    url = http_sink.url_for("/", host="rebind.example.test")

    check_url(url, resolver=dns)  # the first answer is public: validation passes
    with _client(resolver=dns) as client, pytest.raises(DialRefused) as excinfo:
        client.get(url)

    assert str(excinfo.value) == "refusing to dial rebind.example.test: resolves to reserved address 127.0.0.1"

    assert dns.calls == 2
    assert http_sink.requests == []


def test_transport_keeps_sni_and_certificate_checks_on_the_url_host(
    https_sink: HttpSink, tls_material: TlsMaterial
) -> None:
    dns = FakeDns({"localhost": ["127.0.0.1"], "other.example.test": ["127.0.0.1"]})
    verify = tls_material.client_context()

    with _client(allow_loopback=True, resolver=dns, verify=verify) as client:
        assert client.get(https_sink.url_for("/", host="localhost")).status_code == 200
        # Same IP, but the certificate does not name this host: verification is against the name.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(https_sink.url_for("/", host="other.example.test"))

    assert [r.sni for r in https_sink.requests] == ["localhost"]


def test_transport_allows_loopback_only_when_told(http_sink: HttpSink) -> None:
    with _client(allow_loopback=True) as client:
        assert client.get(http_sink.url_for("/", host="localhost")).status_code == 200
        assert client.get(http_sink.url).status_code == 200


def test_transport_ignores_proxy_variables(http_sink: HttpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = HttpSink().start()
    try:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)

        with httpx.Client(transport=GuardedTransport(allow_loopback=True), trust_env=True) as client:
            client.get(http_sink.url)
    finally:
        proxy.stop()

    assert len(http_sink.requests) == 1
    assert proxy.requests == []


def test_transport_tries_the_next_checked_address_when_one_refuses(http_sink: HttpSink) -> None:
    # 127.0.0.2 is loopback too but nothing listens on the sink's port there.
    dns = FakeDns({"multi.example.test": ["127.0.0.2", "127.0.0.1"]})
    backend = RecordingBackend()

    with _client(allow_loopback=True, resolver=dns, network_backend=backend) as client:
        assert client.get(http_sink.url_for("/", host="multi.example.test")).status_code == 200

    assert backend.dialled == [("127.0.0.2", http_sink.port), ("127.0.0.1", http_sink.port)]
