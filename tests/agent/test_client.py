"""The agent's HTTPS client: requests, typed errors, TLS set-up against a real TLS server (A4 cases 1, 4,
11-13, 15)."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from certctl.agent.client import AgentClient, client_ssl_context
from certctl.agent.errors import (
    AgentConfigError,
    AgentRetired,
    BadResponse,
    ServerRejected,
    ServerUnreachable,
    StaleJob,
)
from certctl.agent.protocol import HostInfo, ReportedStatus
from certctl.security.tls import ensure_bootstrap_certificate
from tests.agent.fakes import AGENT_ID, API_KEY, FakeControlPlane

HOST = HostInfo("web-1", "linux", "amd64", "10.0.0.5", "9.9.9")


@pytest.fixture
def server() -> FakeControlPlane:
    return FakeControlPlane()


def test_heartbeat_request(server: FakeControlPlane) -> None:
    server.client(agent_id="a-test-agent").heartbeat(HOST)
    (call,) = server.calls("heartbeat")
    assert (call.method, call.path) == ("POST", "/api/v1/agents/a-test-agent/heartbeat")
    assert call.headers["authorization"] == f"Bearer {API_KEY}"
    assert call.headers["content-type"] == "application/json"
    assert call.body == {
        "version": "9.9.9",
        "hostname": "web-1",
        "os": "linux",
        "architecture": "amd64",
        "ip_address": "10.0.0.5",
    }


def test_an_empty_poll(server: FakeControlPlane) -> None:
    assert server.client().poll() == []
    (call,) = server.requests
    assert (call.method, call.path, call.body) == ("GET", f"/api/v1/agents/{AGENT_ID}/work", None)


def test_poll_parses_work_items_and_tolerates_unknown_fields(server: FakeControlPlane) -> None:
    server.work = [
        {"id": "job-1", "type": "Issuance", "status": "AwaitingCSR", "certificate_id": "mc-1", "sans": None},
        {"id": "job-2", "type": "Deployment", "status": "Running", "certificate_id": "mc-1", "surprise": 1},
    ]
    first, second = server.client().poll()
    assert first.awaits_csr
    assert not first.claimed
    assert first.sans == []
    assert second.claimed
    assert not second.awaits_csr


def test_certificate_fetch(server: FakeControlPlane) -> None:
    server.certificates["mc-001"] = "PEM"
    bundle = server.client(agent_id="a-test").fetch_certificate("mc-001", "cv-7")
    assert bundle.certificate_pem == "PEM"
    (call,) = server.requests
    assert call.path == "/api/v1/agents/a-test/certificates/mc-001"
    assert call.params == {"version_id": "cv-7"}


def test_certificate_fetch_404_is_an_error(server: FakeControlPlane) -> None:
    with pytest.raises(ServerRejected, match="404") as caught:
        server.client().fetch_certificate("mc-absent")
    assert caught.value.permanent


def test_status_report_without_error(server: FakeControlPlane) -> None:
    server.client().report_status("job-1", ReportedStatus.COMPLETED)
    (call,) = server.requests
    assert call.path == f"/api/v1/agents/{AGENT_ID}/jobs/job-1/status"
    assert call.body == {"status": "Completed"}


def test_status_report_with_error(server: FakeControlPlane) -> None:
    server.client().report_status("job-1", ReportedStatus.FAILED, "reload failed")
    assert server.requests[0].body == {"status": "Failed", "error": "reload failed"}


def test_status_report_non_200_is_an_error(server: FakeControlPlane) -> None:
    server.fail["status"] = 500
    with pytest.raises(ServerRejected, match="500"):
        server.client().report_status("job-1", ReportedStatus.COMPLETED)


def test_a_409_on_a_status_report_means_the_job_is_stale(server: FakeControlPlane) -> None:
    server.stale_jobs.add("job-1")
    with pytest.raises(StaleJob):
        server.client().report_status("job-1", ReportedStatus.RUNNING)


def test_410_means_retired_with_the_servers_reason(server: FakeControlPlane) -> None:
    server.fail["heartbeat"] = 410
    server.fail_body["heartbeat"] = {"error": "Gone", "message": "Agent has been retired: host decommissioned"}
    with pytest.raises(AgentRetired, match="host decommissioned"):
        server.client().heartbeat(HOST)


def test_no_answer_is_server_unreachable(server: FakeControlPlane) -> None:
    server.down = True
    with pytest.raises(ServerUnreachable, match="ConnectError"):
        server.client().poll()


def test_a_body_that_is_not_the_protocol_is_a_bad_response() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"jobs": "nope"}))
    client = AgentClient("https://cp.test", agent_id="a", credential="k", transport=transport)
    with pytest.raises(BadResponse, match="work poll"):
        client.poll()


def test_registration_uses_the_bootstrap_token(server: FakeControlPlane) -> None:
    registration = server.client(agent_id="", credential=None).register("web-1", HOST, "boot-token")
    assert (registration.id, registration.api_key) == (AGENT_ID, API_KEY)
    (call,) = server.requests
    assert call.headers["authorization"] == "Bearer boot-token"
    assert call.body["name"] == "web-1"
    assert call.body["hostname"] == "web-1"
    assert "boot-token" not in repr(registration)
    assert API_KEY not in repr(registration)


def test_agent_routes_need_an_agent_id(server: FakeControlPlane) -> None:
    with pytest.raises(AgentConfigError, match="register"):
        server.client(agent_id="").poll()


def test_an_invalid_url_is_an_error() -> None:
    client = AgentClient("https://bad host:99999", agent_id="a", credential="k")
    with pytest.raises((AgentConfigError, ServerUnreachable)):
        client.poll()


# -- TLS (A4 case 15) ---------------------------------------------------------------------------------------


def test_tls_13_is_the_minimum(tmp_path: Path) -> None:
    cert, _, _ = ensure_bootstrap_certificate(tmp_path, ["localhost"])
    assert client_ssl_context(None).minimum_version is ssl.TLSVersion.TLSv1_3
    assert client_ssl_context(cert).minimum_version is ssl.TLSVersion.TLSv1_3
    assert client_ssl_context(None, insecure_skip_verify=True).minimum_version is ssl.TLSVersion.TLSv1_3


def test_the_bundle_is_the_only_set_of_roots(tmp_path: Path) -> None:
    cert, _, _ = ensure_bootstrap_certificate(tmp_path, ["localhost"])
    context = client_ssl_context(cert)
    assert context.cert_store_stats()["x509"] == 1
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname


def test_a_missing_bundle_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="reading CA bundle at"):
        client_ssl_context(tmp_path / "absent.pem")


def test_a_garbage_bundle_is_an_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not a certificate\n")
    with pytest.raises(AgentConfigError, match="contains no valid PEM-encoded certificates"):
        client_ssl_context(garbage)


class _Heartbeats(BaseHTTPRequestHandler):
    count = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        json.loads(self.rfile.read(length))
        type(self).count += 1
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve_tls(tmp_path: Path, maximum: ssl.TLSVersion | None = None) -> Iterator[tuple[int, Path]]:
    cert, key, _ = ensure_bootstrap_certificate(tmp_path / "tls", ["localhost"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if maximum is not None:
        context.maximum_version = maximum
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Heartbeats)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], cert
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    _Heartbeats.count = 0
    yield from _serve_tls(tmp_path)


@pytest.fixture
def tls12_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    yield from _serve_tls(tmp_path, ssl.TLSVersion.TLSv1_2)


def test_a_heartbeat_over_real_tls_with_the_bundle(tls_server: tuple[int, Path]) -> None:
    port, cert = tls_server
    client = AgentClient(
        f"https://localhost:{port}", agent_id="a", credential="k", ssl_context=client_ssl_context(cert)
    )
    client.heartbeat(HOST)
    assert _Heartbeats.count == 1


def test_a_server_outside_the_bundle_is_refused(tls_server: tuple[int, Path], tmp_path: Path) -> None:
    port, _ = tls_server
    other, _, _ = ensure_bootstrap_certificate(tmp_path / "other", ["localhost"])
    client = AgentClient(
        f"https://localhost:{port}", agent_id="a", credential="k", ssl_context=client_ssl_context(other)
    )
    with pytest.raises(ServerUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        client.heartbeat(HOST)
    assert _Heartbeats.count == 0


def test_a_tls_12_only_server_is_refused(tls12_server: tuple[int, Path]) -> None:
    port, cert = tls12_server
    client = AgentClient(
        f"https://localhost:{port}", agent_id="a", credential="k", ssl_context=client_ssl_context(cert)
    )
    with pytest.raises(ServerUnreachable):
        client.heartbeat(HOST)
