"""Caddy connector against a real Caddy 2.6 (admin API and files) on loopback ports (A4 #60, #79).

Each test starts `caddy run` with its own admin port; the served certificate is checked with a TLS
handshake (SNI `localhost`), and the admin requests the connector made are read back from Caddy's
own log. One test needs an admin API that fails its GET, which real Caddy does not do on demand: a
ten-line HTTP stub stands in there.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from certctl.deploy.connectors import CaddyConnector, ConnectorDeps, DeployRequest, build_connector
from certctl.deploy.connectors.base import TargetConnector
from certctl.deploy.errors import (
    TargetConfigError,
    ValidateFailed,
    ValidateOnlyNotSupported,
    VerifyFailed,
    WriteFailed,
)
from certctl.deploy.locks import TargetLocks
from certctl.deploy.metrics import ATTEMPTS, IDEMPOTENT_SKIPS, ROLLBACKS, VALIDATE_FAILURES, DeployCounters
from certctl.deploy.plan import FileRole
from certctl.deploy.result import DeployOutcome, DeployStage
from tests.deploy.conftest import RecordingRunner
from tests.deploy.material import Material, TestCA
from tests.deploy.servers import CaddyServer, free_port, settled_fingerprint

CERTIFICATES = "/config/apps/tls/certificates"
OUR_TAG = "certctl-mc-web"


def pem_entry(material: Material, *tags: str) -> dict[str, object]:
    return {"certificate": material.cert_pem + material.chain_pem, "key": material.key_pem, "tags": list(tags)}


@pytest.fixture
def foreign(ca: TestCA) -> Material:
    """The operator's own certificate for another name, loaded from files: it must survive our deploys."""
    return ca.issue("other.example")


@pytest.fixture
def initial(tmp_path: Path, foreign: Material, cert_a: Material) -> dict[str, object]:
    files = tmp_path / "operator"
    files.mkdir()
    (files / "other.crt").write_text(foreign.cert_pem)
    (files / "other.key").write_text(foreign.key_pem)
    load_files = [{"certificate": str(files / "other.crt"), "key": str(files / "other.key"), "tags": ["operator"]}]
    return {"load_files": load_files, "load_pem": [pem_entry(cert_a, "certctl", OUR_TAG)]}


@pytest.fixture
def caddy(tmp_path: Path, initial: dict[str, object], cert_a: Material) -> Iterator[CaddyServer]:
    server = CaddyServer(tmp_path / "caddy", initial)
    try:
        server.start(cert_a.fingerprint)
        yield server
    finally:
        server.stop()


def connector(
    counters: DeployCounters, *, runner: RecordingRunner | None = None, precheck: bool = True, **config: Any
) -> TargetConnector:
    deps = ConnectorDeps(counters=counters, target_locks=TargetLocks(), precheck=precheck)
    if runner is not None:
        deps = ConnectorDeps(runner=runner, counters=counters, target_locks=TargetLocks(), precheck=precheck)
    built = build_connector("Caddy", config, deps)
    built.validate_config()
    return built


def verified(server: CaddyServer, server_name: str = "localhost") -> dict[str, Any]:
    return {
        "post_deploy_verify": {"endpoint": f"127.0.0.1:{server.port}", "server_name": server_name, "timeout": "2s"},
        "post_deploy_verify_attempts": 5,
        "post_deploy_verify_backoff": "50ms",
    }


def request(material: Material) -> DeployRequest:
    return DeployRequest(
        material.cert_pem, material.chain_pem, material.key_pem, "tgt-caddy", {"certificate_id": "mc-web"}
    )


# -- admin API mode -------------------------------------------------------------------------------------------


def test_the_api_replaces_our_entry_keeps_load_files_and_an_identical_redeploy_only_reads(
    caddy: CaddyServer, initial: dict[str, Any], cert_b: Material, counters: DeployCounters
) -> None:
    target = connector(counters, admin_api=caddy.admin_api, **verified(caddy))
    result = target.deploy(request(cert_b))
    assert result.success, result.message
    assert result.deployment_id.startswith("caddy-api-")
    assert result.metadata["method"] == "api"
    assert int(result.metadata["duration_ms"]) > 0
    assert settled_fingerprint(caddy.port) == cert_b.fingerprint
    current = caddy.current_certificates()
    assert isinstance(current, dict)
    assert current["load_files"] == initial["load_files"]  # the operator's entry is untouched
    assert current["load_pem"] == [pem_entry(cert_b, "certctl", OUR_TAG)]  # ours replaced, not duplicated
    assert caddy.admin_requests() == [("GET", CERTIFICATES), ("PATCH", CERTIFICATES)]

    again = target.deploy(request(cert_b))
    assert again.outcome is DeployOutcome.UNCHANGED
    assert again.metadata["idempotent"] == "true"
    assert again.deployment_id.startswith("caddy-api-idem-")
    assert caddy.admin_requests()[2:] == [("GET", CERTIFICATES)]  # 1 GET, 0 PATCH
    assert counters.value(ATTEMPTS, "Caddy", "success") == 2
    assert counters.value(IDEMPOTENT_SKIPS, "Caddy") == 1


def test_the_api_creates_the_certificates_object_when_caddy_has_no_tls_app(
    tmp_path: Path, cert_a: Material, counters: DeployCounters
) -> None:
    server = CaddyServer(tmp_path / "caddy", None)
    try:
        server.start(None)
        target = connector(counters, admin_api=server.admin_api, **verified(server))
        result = target.deploy(request(cert_a))
        assert result.success, result.message
        assert server.admin_requests() == [("GET", CERTIFICATES), ("PUT", CERTIFICATES)]
        assert server.current_certificates() == {"load_pem": [pem_entry(cert_a, "certctl", OUR_TAG)]}
        assert settled_fingerprint(server.port) == cert_a.fingerprint
    finally:
        server.stop()


def test_a_failed_probe_restores_the_previous_certificates_object(
    caddy: CaddyServer, initial: dict[str, Any], cert_a: Material, cert_b: Material, counters: DeployCounters
) -> None:
    # Probing with the operator's server name sees the operator's certificate, never ours: a mismatch.
    target = connector(counters, admin_api=caddy.admin_api, **verified(caddy, "other.example"))
    result = target.deploy(request(cert_b))
    assert isinstance(result.error, VerifyFailed)
    assert result.outcome is DeployOutcome.ROLLED_BACK
    assert result.as_report()["rollback_outcome"] == "restored"
    assert caddy.admin_requests() == [("GET", CERTIFICATES), ("PATCH", CERTIFICATES), ("PATCH", CERTIFICATES)]
    assert caddy.current_certificates() == initial
    assert settled_fingerprint(caddy.port) == cert_a.fingerprint
    assert counters.value(ROLLBACKS, "Caddy", "restored") == 1


def test_a_pair_caddy_refuses_fails_without_cert_dir_and_nothing_changes(
    caddy: CaddyServer, initial: dict[str, Any], cert_a: Material, cert_b: Material, counters: DeployCounters
) -> None:
    target = connector(counters, precheck=False, admin_api=caddy.admin_api)
    result = target.deploy(request(cert_b.with_key(cert_a)))
    assert isinstance(result.error, WriteFailed)
    assert "HTTP 500" in result.message
    assert "private key does not match public key" in result.message
    assert result.stage is DeployStage.WRITE
    assert caddy.current_certificates() == initial
    assert settled_fingerprint(caddy.port) == cert_a.fingerprint
    assert counters.value(ATTEMPTS, "Caddy", "failure") == 1


def test_the_precheck_refuses_a_mismatched_pair_before_any_admin_request(
    caddy: CaddyServer, cert_a: Material, cert_b: Material, counters: DeployCounters
) -> None:
    result = connector(counters, admin_api=caddy.admin_api).deploy(request(cert_b.with_key(cert_a)))
    assert isinstance(result.error, ValidateFailed)
    assert result.stage is DeployStage.PRECHECK
    assert caddy.admin_requests() == []
    assert counters.value(VALIDATE_FAILURES, "Caddy") == 1
    no_key = connector(counters, admin_api=caddy.admin_api).deploy(DeployRequest(cert_b.cert_pem, cert_b.chain_pem))
    assert "needs the private key" in no_key.message


def test_an_unreachable_admin_api_falls_back_to_files_only_with_a_cert_dir(
    tmp_path: Path, cert_a: Material, counters: DeployCounters
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    failed = connector(counters, admin_api=dead, timeout="2s").deploy(request(cert_a))
    assert isinstance(failed.error, WriteFailed)
    assert dead in failed.message

    result = connector(counters, admin_api=dead, cert_dir=str(tmp_path)).deploy(request(cert_a))
    assert result.success, result.message
    assert result.metadata["method"] == "file-fallback"
    assert result.deployment_id.startswith("caddy-file-")
    assert any("admin API failed" in warning for warning in result.warnings)
    assert (tmp_path / "cert.pem").read_text() == cert_a.cert_pem + cert_a.chain_pem
    assert (tmp_path / "key.pem").read_text() == cert_a.key_pem


class _FailingGet(BaseHTTPRequestHandler):
    """An admin API whose GET fails with 500 and which accepts (and records) every write."""

    writes: list[tuple[str, str, object]]

    def do_GET(self) -> None:
        self._answer(500, b'{"error":"busy"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.writes.append(("POST", self.path, json.loads(self.rfile.read(length))))
        self._answer(200, b"")

    do_PATCH = do_PUT = do_POST

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def test_when_the_get_fails_our_entry_is_appended_which_drops_nothing(
    cert_a: Material, counters: DeployCounters
) -> None:
    handler = type("Handler", (_FailingGet,), {"writes": []})
    stub = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=stub.serve_forever, daemon=True)
    thread.start()
    try:
        target = connector(counters, admin_api=f"http://127.0.0.1:{stub.server_address[1]}")
        result = target.deploy(request(cert_a))
    finally:
        stub.shutdown()
        stub.server_close()
    assert result.success, result.message
    assert handler.writes == [("POST", f"{CERTIFICATES}/load_pem", pem_entry(cert_a, "certctl", OUR_TAG))]


# -- file mode ----------------------------------------------------------------------------------------------


def test_file_mode_writes_both_files_and_caddy_serves_them_after_its_reload(
    tmp_path: Path, cert_a: Material, cert_b: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    certs = tmp_path / "caddy" / "certs"
    certs.mkdir(parents=True)
    (certs / "cert.pem").write_text(cert_a.cert_pem)
    (certs / "key.pem").write_text(cert_a.key_pem)
    load_files = [{"certificate": str(certs / "cert.pem"), "key": str(certs / "key.pem")}]
    server = CaddyServer(tmp_path / "caddy", {"load_files": load_files})
    try:
        server.start(cert_a.fingerprint)
        target = connector(
            counters, runner=runner, mode="file", cert_dir=str(certs), reload_command=server.reload_command
        )
        result = target.deploy(request(cert_b))
        assert result.success, result.message
        assert result.deployment_id.startswith("caddy-file-")
        assert result.metadata["method"] == "file"
        assert (certs / "cert.pem").read_text() == cert_b.cert_pem + cert_b.chain_pem
        assert os.stat(certs / "cert.pem").st_mode & 0o7777 == 0o644
        assert os.stat(certs / "key.pem").st_mode & 0o7777 == 0o600
        assert len(list(certs.glob("cert.pem.certctl-bak.*"))) == 1  # the file that existed was backed up
        assert settled_fingerprint(server.port) == cert_b.fingerprint
        assert [call[1] for call in runner.calls] == ["reload"]
        assert target.deploy(request(cert_b)).outcome is DeployOutcome.UNCHANGED
        assert len(runner.calls) == 1
    finally:
        server.stop()


# -- dry runs, target test, config --------------------------------------------------------------------------


def test_validate_only_and_the_target_test_ask_the_admin_api(
    caddy: CaddyServer, tmp_path: Path, cert_a: Material, counters: DeployCounters
) -> None:
    api = connector(counters, admin_api=caddy.admin_api)
    api.validate_only(request(cert_a))
    assert caddy.admin_requests() == [("GET", "/config/")]
    check = api.test()
    assert check.ok
    assert [item.name for item in check.items] == ["config", "admin_api"]

    dead = connector(counters, admin_api=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ValidateFailed, match="admin API"):
        dead.validate_only(request(cert_a))
    assert not dead.test().ok
    with pytest.raises(ValidateOnlyNotSupported):
        connector(counters, mode="file", cert_dir=str(tmp_path)).validate_only(request(cert_a))


def test_defaults_are_applied_when_the_config_is_read(tmp_path: Path) -> None:
    target = CaddyConnector.from_config({"cert_dir": str(tmp_path)})
    assert target.settings.mode == "api"
    assert target.settings.admin_api == "http://localhost:2019"
    assert target.settings.timeout_seconds == 10.0
    assert target.config.paths == {FileRole.CERT: str(tmp_path / "cert.pem"), FileRole.KEY: str(tmp_path / "key.pem")}
    build_connector("Caddy", None).validate_config()  # API mode on localhost:2019 needs nothing else
    with pytest.raises(TargetConfigError, match="not JSON"):
        build_connector("Caddy", "{invalid json}")


@pytest.mark.parametrize(
    ("config", "field_name", "problem"),
    [
        ({"mode": "magic"}, "mode", "api, file"),
        ({"mode": "file"}, "cert_dir", "is required"),
        ({"mode": "file", "cert_dir": "/nonexistent-certctl"}, "cert_dir", "does not exist"),
        ({"mode": "file", "cert_dir": "{dir}", "cert_file": "../x.pem"}, "cert_file", "'..'"),
        ({"admin_api": "localhost:2019"}, "admin_api", "http(s)://"),
        ({"admin_api": "ftp://localhost:2019"}, "admin_api", "http(s)://"),
        ({"mode": "file", "cert_dir": "{dir}", "reload_command": "caddy reload; id"}, "reload_command", "';'"),
        ({"timeout": "soon"}, "timeout", "duration"),
    ],
)
def test_config_errors_name_the_field(tmp_path: Path, config: dict[str, Any], field_name: str, problem: str) -> None:
    config = {key: str(tmp_path) if value == "{dir}" else value for key, value in config.items()}
    with pytest.raises(TargetConfigError) as caught:
        build_connector("Caddy", config).validate_config()
    assert caught.value.field == field_name
    assert problem in str(caught.value)
