"""Agent-level verification: endpoint resolution, reports, a real probe (§A1.10; A4 cases 26, 28)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from certctl.agent.verify import AgentVerifier, agent_endpoint, host_and_port
from certctl.deploy.verify import certificate_fingerprint
from certctl.security.tls import ensure_bootstrap_certificate
from tests.agent.conftest import ScriptedProbe


@pytest.mark.parametrize("key", ["host", "hostname", "target", "address"])
def test_each_host_key_works_and_the_port_defaults_to_443(key: str) -> None:
    endpoint = host_and_port({key: "web.example.com"})
    assert (endpoint.host, endpoint.port) == ("web.example.com", 443)


def test_the_first_non_empty_host_key_wins() -> None:
    assert host_and_port({"host": "", "hostname": "b", "address": "c", "port": 8443}).host == "b"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"host": "h", "port": 0}, "outside 1-65535"),
        ({"host": "h", "port": 70000}, "outside 1-65535"),
        ({"host": "h", "port": "443"}, "not a number"),
        ({"port": 443}, "none of"),
        ("{not json", "not JSON"),
    ],
)
def test_bad_host_and_port(config: dict[str, object] | str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        host_and_port(config)


def test_raw_json_configs_are_read() -> None:
    assert host_and_port('{"address": "10.0.0.9", "port": 8443}').port == 8443


def test_verify_endpoint_key_comes_first() -> None:
    endpoint = agent_endpoint("NGINX", {"verify_endpoint": "127.0.0.1:9443", "host": "other"})
    assert endpoint is not None
    assert (endpoint.host, endpoint.port) == ("127.0.0.1", 9443)


@pytest.mark.parametrize("target_type", ["F5", "SSH", "IIS", "AWSACM", "JavaKeystore"])
def test_management_hosts_are_not_probed(target_type: str) -> None:
    assert agent_endpoint(target_type, {"host": "bigip.example.com"}) is None


def test_no_endpoint_configured() -> None:
    assert agent_endpoint("NGINX", {"cert_path": "/etc/nginx/cert.pem"}) is None
    assert agent_endpoint("NGINX", None) is None


def test_a_null_target_id_skips_without_probing() -> None:
    probe = ScriptedProbe("aa")
    verifier = AgentVerifier(delay_seconds=0, timeout_seconds=1, probe=probe, sleep=lambda _: None)
    assert verifier.verify(None, "NGINX", {"host": "h"}, "aa", None) is None
    assert probe.calls == []


def test_probing_a_closed_port_reports_the_error_without_raising() -> None:
    verifier = AgentVerifier(delay_seconds=0, timeout_seconds=1, sleep=lambda _: None)
    report = verifier.verify("tgt-1", "NGINX", {"verify_endpoint": "127.0.0.1:1"}, "aa", None)
    assert report is not None
    assert report.verified is False
    assert report.actual_fingerprint == ""
    assert report.error.startswith("TLS probe failed: dial 127.0.0.1:1")


def test_a_mismatch_is_not_verified_and_names_both_fingerprints() -> None:
    waits: list[float] = []
    verifier = AgentVerifier(delay_seconds=0.5, timeout_seconds=1, probe=ScriptedProbe("bb"), sleep=waits.append)
    report = verifier.verify("tgt-1", "NGINX", {"host": "h"}, "aa", None)
    assert report is not None
    assert report.verified is False
    assert report.actual_fingerprint == "bb"
    assert "mismatch" in report.error
    assert waits == [0.5, 1.0, 2.0]  # the delay, then the retries' backoff


@pytest.fixture
def tls_port(tmp_path: Path) -> Iterator[tuple[int, str]]:
    cert, key, _ = ensure_bootstrap_certificate(tmp_path, ["localhost"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(raw, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], certificate_fingerprint(cert.read_text())
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_a_live_probe_of_a_tls_server_verifies(tls_port: tuple[int, str]) -> None:
    port, fingerprint = tls_port
    verifier = AgentVerifier(delay_seconds=0, timeout_seconds=2, sleep=lambda _: None)
    report = verifier.verify("tgt-1", "NGINX", {"verify_endpoint": f"127.0.0.1:{port}"}, fingerprint, None)
    assert report is not None
    assert report.verified is True
    assert report.expected_fingerprint == report.actual_fingerprint == fingerprint
    assert report.as_json() == {
        "target_id": "tgt-1",
        "expected_fingerprint": fingerprint,
        "actual_fingerprint": fingerprint,
        "verified": True,
        "error": "",
    }
