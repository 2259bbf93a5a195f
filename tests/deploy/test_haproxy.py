"""HAProxy connector against a real master-worker HAProxy on a loopback port (A4 #58; stack.md §C.6, §C.7)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certctl.deploy.connectors import ConnectorDeps, DeployRequest, build_connector
from certctl.deploy.connectors.base import TargetConnector
from certctl.deploy.errors import ValidateFailed, VerifyFailed
from certctl.deploy.locks import TargetLocks
from certctl.deploy.metrics import ATTEMPTS, POST_VERIFY_FAILURES, ROLLBACKS, VALIDATE_FAILURES, DeployCounters
from certctl.deploy.result import DeployOutcome, DeployStage
from tests.deploy.conftest import RecordingRunner
from tests.deploy.material import Material
from tests.deploy.servers import HAProxyServer, settled_fingerprint


@pytest.fixture
def haproxy(tmp_path: Path, cert_a: Material) -> Iterator[HAProxyServer]:
    server = HAProxyServer(tmp_path / "haproxy", cert_a)
    try:
        server.start(cert_a.fingerprint)
        yield server
    finally:
        server.stop()


def target(
    server: HAProxyServer, runner: RecordingRunner, counters: DeployCounters, *, precheck: bool = True, **overrides: Any
) -> TargetConnector:
    config: dict[str, Any] = {
        "pem_path": str(server.pem_path),
        "reload_command": server.reload_command,
        "post_deploy_verify": {"endpoint": f"127.0.0.1:{server.port}", "server_name": "localhost", "timeout": "2s"},
        "post_deploy_verify_attempts": 8,
        "post_deploy_verify_backoff": "25ms",
        "post_deploy_verify_max_backoff": "200ms",
    }
    config.update(overrides)
    deps = ConnectorDeps(runner=runner, counters=counters, target_locks=TargetLocks(), precheck=precheck)
    connector = build_connector("HAProxy", config, deps)
    connector.validate_config()
    return connector


def deploy(connector: TargetConnector, material: Material) -> Any:
    return connector.deploy(DeployRequest(material.cert_pem, material.chain_pem, material.key_pem, "tgt-haproxy"))


def test_the_combined_pem_is_served_in_cert_chain_key_order_and_an_identical_redeploy_is_unchanged(
    haproxy: HAProxyServer, cert_b: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    os.chmod(haproxy.pem_path, 0o640)
    connector = target(haproxy, runner, counters, validate_command=haproxy.validate_command)
    result = deploy(connector, cert_b)
    assert result.success, result.message
    assert settled_fingerprint(haproxy.port) == cert_b.fingerprint
    text = haproxy.pem_path.read_text()
    assert [line for line in text.splitlines() if line.startswith("-----BEGIN")] == [
        "-----BEGIN CERTIFICATE-----",
        "-----BEGIN CERTIFICATE-----",
        "-----BEGIN PRIVATE KEY-----",
    ]
    assert text.index(cert_b.cert_pem) < text.index(cert_b.chain_pem) < text.index(cert_b.key_pem)
    assert os.stat(haproxy.pem_path).st_mode & 0o7777 == 0o600  # forced, even over the old 0640
    assert [call[0] for call in runner.calls] == [haproxy.binary, "kill"]
    inode = os.stat(haproxy.pem_path).st_ino
    assert deploy(connector, cert_b).outcome is DeployOutcome.UNCHANGED
    assert len(runner.calls) == 2
    assert os.stat(haproxy.pem_path).st_ino == inode


def test_a_refused_reload_is_caught_by_the_probe_and_rolled_back(
    haproxy: HAProxyServer, cert_a: Material, cert_b: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    """`kill -USR2` succeeds although the master refuses the bad PEM and keeps its old worker: only the
    post-deploy probe can tell (stack.md §C.7)."""
    result = deploy(target(haproxy, runner, counters, precheck=False), cert_b.with_key(cert_a))
    assert isinstance(result.error, VerifyFailed)
    assert "SHA-256 mismatch" in result.message
    assert result.verification is not None
    assert result.verification.actual_fingerprint == cert_a.fingerprint
    assert [call[0] for call in runner.calls] == ["kill", "kill"]  # the reload, then the rollback's reload
    assert haproxy.pem_path.read_text() == cert_a.cert_pem + cert_a.key_pem
    assert settled_fingerprint(haproxy.port) == cert_a.fingerprint
    assert haproxy.process is not None
    assert haproxy.process.poll() is None
    assert counters.value(POST_VERIFY_FAILURES, "HAProxy") == 1
    assert counters.value(ROLLBACKS, "HAProxy", "restored") == 1


def test_a_staged_config_validates_the_new_pem_before_it_replaces_the_live_one(
    haproxy: HAProxyServer, cert_a: Material, cert_b: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    # A copy of the config that loads the PEM named by an environment variable: the validate command
    # sets it to the staged file with the {pem_path} placeholder (agent-targets-discovery.md §A2.1).
    staged_config = haproxy.root / "haproxy-staged.cfg"
    staged_config.write_text(haproxy.config('"${CERTCTL_PEM}"'))
    validate = f"CERTCTL_PEM={{pem_path}} {haproxy.binary} -c -f {staged_config}"
    connector = target(haproxy, runner, counters, precheck=False, validate_command=validate)
    inode = os.stat(haproxy.pem_path).st_ino

    refused = deploy(connector, cert_b.with_key(cert_a))
    assert isinstance(refused.error, ValidateFailed)
    assert refused.outcome is DeployOutcome.FAILED
    assert refused.stage is DeployStage.VALIDATE
    assert "inconsistencies between private key and certificate" in refused.message
    assert [call[0] for call in runner.calls] == [haproxy.binary]  # no reload
    assert os.stat(haproxy.pem_path).st_ino == inode
    assert not list(haproxy.pem_path.parent.glob("*.certctl-*.*[0-9]"))
    assert ".certctl-tmp." in runner.envs[0]["CERTCTL_PEM"]

    accepted = deploy(connector, cert_b)
    assert accepted.success, accepted.message
    assert settled_fingerprint(haproxy.port) == cert_b.fingerprint
    assert counters.value(VALIDATE_FAILURES, "HAProxy") == 1
    assert counters.value(ATTEMPTS, "HAProxy", "success") == 1
