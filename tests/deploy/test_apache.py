"""Apache connector against a real Apache httpd on a loopback port (A4 #77; stack.md §C.6, §C.7)."""

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
from certctl.deploy.metrics import POST_VERIFY_FAILURES, ROLLBACKS, VALIDATE_FAILURES, DeployCounters
from certctl.deploy.result import DeployOutcome, DeployStage
from tests.deploy.conftest import RecordingRunner
from tests.deploy.material import Material
from tests.deploy.servers import ApacheServer, settled_fingerprint


@pytest.fixture
def apache(tmp_path: Path, cert_a: Material) -> Iterator[ApacheServer]:
    server = ApacheServer(tmp_path / "apache", cert_a)
    try:
        server.start(cert_a.fingerprint)
        yield server
    finally:
        server.stop()


def target(
    server: ApacheServer, runner: RecordingRunner, counters: DeployCounters, *, precheck: bool = True, **overrides: Any
) -> TargetConnector:
    config: dict[str, Any] = {
        "cert_path": str(server.cert_path),
        "key_path": str(server.key_path),
        "chain_path": str(server.chain_path),
        "validate_command": server.validate_command,
        "reload_command": server.reload_command,
        # A graceful restart serves the new certificate after about a second (stack.md §C.6).
        "post_deploy_verify": {"endpoint": f"127.0.0.1:{server.port}", "server_name": "localhost", "timeout": "2s"},
        "post_deploy_verify_attempts": 12,
        "post_deploy_verify_backoff": "50ms",
        "post_deploy_verify_max_backoff": "400ms",
    }
    config.update(overrides)
    deps = ConnectorDeps(runner=runner, counters=counters, target_locks=TargetLocks(), precheck=precheck)
    connector = build_connector("Apache", config, deps)
    connector.validate_config()
    return connector


def deploy(connector: TargetConnector, material: Material) -> Any:
    return connector.deploy(DeployRequest(material.cert_pem, material.chain_pem, material.key_pem, "tgt-apache"))


def test_a_graceful_deploy_is_served_and_an_identical_redeploy_is_unchanged(
    apache: ApacheServer, cert_b: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    os.chmod(apache.key_path, 0o640)
    connector = target(apache, runner, counters)
    result = deploy(connector, cert_b)
    assert result.success, result.message
    assert result.deployment_id.startswith("apache-")
    assert result.verification is not None
    assert settled_fingerprint(apache.port) == cert_b.fingerprint
    assert os.stat(apache.key_path).st_mode & 0o7777 == 0o600  # Apache's key rule
    calls = len(runner.calls)
    assert deploy(connector, cert_b).outcome is DeployOutcome.UNCHANGED
    assert len(runner.calls) == calls


def test_a_mismatched_key_is_refused_before_any_write_and_apache_keeps_serving(
    apache: ApacheServer, cert_a: Material, cert_b: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    """Acceptance case 77: `apache2 -t` would say "Syntax OK" and a graceful would stop the server."""
    result = deploy(target(apache, runner, counters), cert_b.with_key(cert_a))
    assert isinstance(result.error, ValidateFailed)
    assert result.stage is DeployStage.PRECHECK
    assert runner.calls == []
    assert apache.cert_path.read_text() == cert_a.cert_pem
    assert settled_fingerprint(apache.port) == cert_a.fingerprint
    assert counters.value(VALIDATE_FAILURES, "Apache") == 1


def test_without_the_precheck_a_bad_pair_stops_apache_and_the_rollback_graceful_starts_it_again(
    apache: ApacheServer, cert_a: Material, cert_b: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    """stack.md §C.7: configtest passes, graceful takes Apache down; the probe notices, the files are
    restored and the rollback's graceful ("httpd not running, trying to start") brings it back."""
    connector = target(apache, runner, counters, precheck=False, post_deploy_verify_attempts=6)
    result = deploy(connector, cert_b.with_key(cert_a))
    assert isinstance(result.error, VerifyFailed), result.message
    assert result.outcome is DeployOutcome.ROLLED_BACK
    assert [call[-1] for call in runner.calls] == [str(apache.conf), "graceful", "graceful"]  # -t, reload, rollback
    assert apache.cert_path.read_text() == cert_a.cert_pem
    assert apache.key_path.read_text() == cert_a.key_pem
    assert settled_fingerprint(apache.port) == cert_a.fingerprint
    assert counters.value(POST_VERIFY_FAILURES, "Apache") == 1
    assert counters.value(ROLLBACKS, "Apache", "restored") == 1
