"""Post-deploy verification: endpoints, the TLS probe against a real TLS listener, retries (§A1.10, §A2.3)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from certctl.deploy.verify import (
    Endpoint,
    ProbeResult,
    VerifyPolicy,
    VerifyStatus,
    certificate_fingerprint,
    probe_tls,
    verify_endpoint,
)
from tests.deploy.material import Material


@pytest.mark.parametrize(
    ("text", "host", "port", "sni"),
    [
        ("web.example.com:8443", "web.example.com", 8443, "web.example.com"),
        ("web.example.com", "web.example.com", 443, "web.example.com"),
        ("127.0.0.1:18443", "127.0.0.1", 18443, None),
        ("[::1]:8443", "::1", 8443, None),
        ("::1", "::1", 443, None),
    ],
)
def test_endpoints_parse_and_send_sni_only_for_names(text: str, host: str, port: int, sni: str | None) -> None:
    endpoint = Endpoint.parse(text)
    assert (endpoint.host, endpoint.port, endpoint.sni) == (host, port, sni)
    assert Endpoint.parse(str(endpoint)) == endpoint


def test_a_configured_server_name_is_the_sni_even_for_an_address() -> None:
    assert Endpoint.parse("10.0.0.5:443", "web.example.com").sni == "web.example.com"


@pytest.mark.parametrize("text", ["host:0", "host:70000", "host:https", ":443", "[::1]x"])
def test_bad_endpoints_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        Endpoint.parse(text)


def test_the_fingerprint_is_the_sha256_of_the_first_certificate(cert_a: Material) -> None:
    fingerprint = certificate_fingerprint(cert_a.cert_pem + cert_a.chain_pem)
    assert fingerprint == cert_a.fingerprint
    assert len(fingerprint) == 64
    with pytest.raises(ValueError, match="no PEM CERTIFICATE"):
        certificate_fingerprint("not a certificate")


@contextlib.contextmanager
def tls_listener(tmp_path: Path, material: Material) -> Iterator[int]:
    (tmp_path / "c.pem").write_text(material.cert_pem)
    (tmp_path / "k.pem").write_text(material.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)  # accept() wakes up often enough to notice `stop`
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        server.close()


def test_the_probe_reads_the_served_leaf(tmp_path: Path, cert_a: Material) -> None:
    with tls_listener(tmp_path, cert_a) as port:
        result = probe_tls(Endpoint("127.0.0.1", port, "localhost"), 5)
    assert result.success
    assert result.fingerprint == cert_a.fingerprint
    assert result.tls_version.startswith("TLS 1.")
    assert result.cipher_suite
    assert result.subject_cn.startswith("localhost")
    assert result.issuer_cn == "certctl deploy test CA"
    assert result.not_after is not None
    assert result.serial


def test_a_refused_connection_is_a_failed_probe_not_an_exception() -> None:
    result = probe_tls(Endpoint("127.0.0.1", 1), 1)
    assert not result.success
    assert "dial 127.0.0.1:1" in result.error
    assert result.fingerprint == ""


def test_verify_against_a_real_listener(tmp_path: Path, cert_a: Material, cert_b: Material) -> None:
    with tls_listener(tmp_path, cert_a) as port:
        endpoint = Endpoint("127.0.0.1", port)
        assert verify_endpoint(endpoint, cert_a.fingerprint.upper(), VerifyPolicy(attempts=1)).verified
        mismatch = verify_endpoint(endpoint, cert_b.fingerprint, VerifyPolicy(attempts=1))
    assert mismatch.status is VerifyStatus.MISMATCH
    assert mismatch.actual_fingerprint == cert_a.fingerprint
    assert "SHA-256 mismatch" in mismatch.describe()


class ScriptedProbe:
    def __init__(self, *answers: ProbeResult) -> None:
        self.answers, self.calls = list(answers), []  # type: ignore[var-annotated]

    def __call__(self, endpoint: Endpoint, timeout_seconds: float) -> ProbeResult:
        self.calls.append((str(endpoint), timeout_seconds))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def test_retries_wait_with_exponential_backoff_capped_and_stop_on_a_match() -> None:
    waits: list[float] = []
    probe = ScriptedProbe(ProbeResult(True, "aa"), ProbeResult(True, "aa"), ProbeResult(True, "bb"))
    policy = VerifyPolicy(attempts=4, initial_backoff_seconds=0.01, max_backoff_seconds=0.08)
    result = verify_endpoint(Endpoint("h", 1), "BB", policy, probe=probe, sleep=waits.append)
    assert result.verified
    assert result.attempts == 3
    assert waits == [0.01, 0.02]
    assert VerifyPolicy(attempts=5, initial_backoff_seconds=0.01, max_backoff_seconds=0.03).waits() == [
        0.01,
        0.02,
        0.03,
        0.03,
    ]


def test_zeros_take_the_defaults() -> None:
    policy = VerifyPolicy(0, 0, 0, 0)
    assert (policy.attempts, policy.initial_backoff_seconds, policy.max_backoff_seconds) == (3, 1.0, 16.0)
    assert policy.timeout_seconds == 10.0
    assert policy.waits() == [1.0, 2.0]


def test_probe_errors_become_an_error_result_after_every_attempt() -> None:
    probe = ScriptedProbe(ProbeResult(False, error="dial h:1: timed out"))
    result = verify_endpoint(Endpoint("h", 1), "aa", VerifyPolicy(attempts=2), probe=probe, sleep=lambda s: None)
    assert result.status is VerifyStatus.ERROR
    assert result.attempts == 2
    assert len(probe.calls) == 2
    assert result.describe() == "TLS probe failed: dial h:1: timed out"
