"""NGINX connector against a real nginx on a loopback port (A4 #43-#53, #78; stack.md §C.6, §C.7)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certctl.deploy.connectors import ConnectorDeps, DeployRequest, build_connector
from certctl.deploy.connectors.base import TargetConnector
from certctl.deploy.errors import ReloadFailed, TargetConfigError, ValidateFailed
from certctl.deploy.locks import TargetLocks
from certctl.deploy.metrics import ATTEMPTS, IDEMPOTENT_SKIPS, RELOAD_FAILURES, ROLLBACKS, DeployCounters
from certctl.deploy.result import DeployOutcome, DeployStage
from tests.deploy.conftest import RecordingRunner
from tests.deploy.material import Material, TestCA
from tests.deploy.servers import NginxServer, settled_fingerprint


@pytest.fixture
def nginx(tmp_path: Path, cert_a: Material) -> Iterator[NginxServer]:
    server = NginxServer(tmp_path / "nginx", cert_a)
    try:
        server.start(cert_a.fingerprint)
        yield server
    finally:
        server.stop()


def target(
    server: NginxServer,
    runner: RecordingRunner,
    counters: DeployCounters,
    *,
    precheck: bool = True,
    locks: TargetLocks | None = None,
    **overrides: Any,
) -> TargetConnector:
    config: dict[str, Any] = {
        "cert_path": str(server.cert_path),
        "key_path": str(server.key_path),
        "chain_path": str(server.chain_path),
        "validate_command": server.validate_command,
        "reload_command": server.reload_command,
        "post_deploy_verify": {"endpoint": f"127.0.0.1:{server.port}", "server_name": "localhost", "timeout": "2s"},
        "post_deploy_verify_attempts": 20,
        "post_deploy_verify_backoff": "20ms",
        "post_deploy_verify_max_backoff": "200ms",
    }
    config.update(overrides)
    deps = ConnectorDeps(runner=runner, counters=counters, target_locks=locks or TargetLocks(), precheck=precheck)
    connector = build_connector("NGINX", config, deps)
    connector.validate_config()
    return connector


def deploy(connector: TargetConnector, material: Material, target_id: str = "tgt-nginx") -> Any:
    return connector.deploy(DeployRequest(material.cert_pem, material.chain_pem, material.key_pem, target_id))


def wait_for_reloads(server: NginxServer, count: int) -> None:
    deadline = time.monotonic() + 5
    while server.reloads() < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.reloads() == count


def test_a_first_deploy_is_served_and_an_identical_redeploy_touches_nothing(
    nginx: NginxServer, cert_a: Material, cert_b: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    connector = target(nginx, runner, counters)
    result = deploy(connector, cert_b)

    assert result.success, result.message
    assert result.verification is not None
    assert result.verification.verified
    assert settled_fingerprint(nginx.port) == cert_b.fingerprint
    assert [call[1] for call in runner.calls] == ["-t", "-s"]  # validate, then reload
    wait_for_reloads(nginx, 1)
    assert result.applied is not None
    assert {"write", "validate", "reload", "verify"} <= result.applied.timings.keys()

    before = {p: os.stat(p) for p in (nginx.cert_path, nginx.key_path, nginx.chain_path)}
    again = deploy(connector, cert_b)
    assert again.outcome is DeployOutcome.UNCHANGED
    assert again.verification is None
    assert len(runner.calls) == 2  # no validate, no reload
    time.sleep(0.2)
    assert nginx.reloads() == 1
    for path, info in before.items():
        now = os.stat(path)
        assert (now.st_ino, now.st_mtime_ns) == (info.st_ino, info.st_mtime_ns)
    assert settled_fingerprint(nginx.port) == cert_b.fingerprint
    assert counters.value(ATTEMPTS, "NGINX", "success") == 2
    assert counters.value(IDEMPOTENT_SKIPS, "NGINX") == 1


def test_a_mismatched_key_is_refused_before_any_write_and_the_old_certificate_stays(
    nginx: NginxServer, cert_a: Material, cert_b: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    inode = os.stat(nginx.cert_path).st_ino
    result = deploy(target(nginx, runner, counters), cert_b.with_key(cert_a))
    assert isinstance(result.error, ValidateFailed)
    assert result.stage is DeployStage.PRECHECK
    assert runner.calls == []
    assert os.stat(nginx.cert_path).st_ino == inode
    assert nginx.cert_path.read_text() == cert_a.cert_pem
    assert not nginx.chain_path.exists()
    assert settled_fingerprint(nginx.port) == cert_a.fingerprint


def test_nginx_t_refuses_a_mismatched_pair_after_the_swap_and_every_file_is_restored_without_reload(
    nginx: NginxServer, cert_a: Material, cert_b: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    """Acceptance case 78: the pre-check is off, so nginx's own validation has to catch it."""
    result = deploy(target(nginx, runner, counters, precheck=False), cert_b.with_key(cert_a))
    assert isinstance(result.error, ValidateFailed)
    assert result.outcome is DeployOutcome.ROLLED_BACK
    assert "key values mismatch" in result.message
    assert [call[1] for call in runner.calls] == ["-t"]  # no reload
    assert nginx.cert_path.read_text() == cert_a.cert_pem
    assert nginx.key_path.read_text() == cert_a.key_pem
    assert not nginx.chain_path.exists()  # it was new: the rollback removes it
    assert nginx.reloads() == 0
    assert settled_fingerprint(nginx.port) == cert_a.fingerprint
    assert counters.value(ROLLBACKS, "NGINX", "restored") == 1


def test_a_failed_reload_rolls_back_and_the_old_certificate_is_still_served(
    nginx: NginxServer,
    tmp_path: Path,
    cert_a: Material,
    cert_b: Material,
    runner: RecordingRunner,
    counters: DeployCounters,
) -> None:
    marker = tmp_path / "fail-next-reload"
    marker.touch()
    script = tmp_path / "reload-nginx"
    script.write_text(
        f'#!/bin/sh\nif [ -e {marker} ]; then rm {marker}; echo "reload refused by test" >&2; exit 1; fi\n'
        f"exec {nginx.reload_command}\n"
    )
    script.chmod(0o755)
    result = deploy(target(nginx, runner, counters, reload_command=str(script)), cert_b)
    assert isinstance(result.error, ReloadFailed)
    assert "reload refused by test" in result.message
    assert result.applied is not None
    assert result.applied.rolled_back
    assert nginx.cert_path.read_text() == cert_a.cert_pem
    assert nginx.key_path.read_text() == cert_a.key_pem
    wait_for_reloads(nginx, 1)  # the rollback's reload, with the old files
    assert settled_fingerprint(nginx.port) == cert_a.fingerprint
    assert counters.value(RELOAD_FAILURES, "NGINX") == 1


def test_owner_group_and_mode_of_replaced_files_are_kept(
    nginx: NginxServer, cert_b: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    os.chmod(nginx.cert_path, 0o640)
    root = os.geteuid() == 0
    if root:
        os.chown(nginx.cert_path, 65534, 65534)
    result = deploy(target(nginx, runner, counters), cert_b)
    assert result.success, result.message
    cert, key, chain = (os.stat(p) for p in (nginx.cert_path, nginx.key_path, nginx.chain_path))
    assert cert.st_mode & 0o7777 == 0o640
    assert key.st_mode & 0o7777 == 0o640  # NGINX's key rule: 0640 unless key_file_mode says otherwise
    assert chain.st_mode & 0o7777 == 0o644  # a new certificate file
    if root:
        assert (cert.st_uid, cert.st_gid) == (65534, 65534)
        assert (key.st_uid, key.st_gid) == (0, 0)
        assert (chain.st_uid, chain.st_gid) == (33, 33)  # new files: www-data (there is no nginx user)
    assert settled_fingerprint(nginx.port) == cert_b.fingerprint


def test_backups_are_pruned_to_the_retention(
    nginx: NginxServer, ca: TestCA, runner: RecordingRunner, counters: DeployCounters
) -> None:
    connector = target(nginx, runner, counters, backup_retention=2, post_deploy_verify={"enabled": False})
    for _ in range(5):
        assert deploy(connector, ca.issue()).success
    certs = nginx.cert_path.parent
    assert len(list(certs.glob("cert.pem.certctl-bak.*"))) == 2
    assert len(list(certs.glob("key.pem.certctl-bak.*"))) == 2
    assert not list(certs.glob("*.certctl-tmp.*"))


def test_two_concurrent_deploys_to_one_target_are_serialised(
    nginx: NginxServer, tmp_path: Path, ca: TestCA, runner: RecordingRunner, counters: DeployCounters
) -> None:
    log = tmp_path / "reloads.log"
    script = tmp_path / "slow-reload"
    script.write_text(
        f"#!/bin/sh\necho start $(date +%s.%N) >> {log}\nsleep 0.2\n{nginx.reload_command}\nstatus=$?\n"
        f"echo end $(date +%s.%N) >> {log}\nexit $status\n"
    )
    script.chmod(0o755)
    locks = TargetLocks()
    first, second = ca.issue(), ca.issue()
    results: list[Any] = []

    def run(material: Material) -> None:
        results.append(deploy(target(nginx, runner, counters, locks=locks, reload_command=str(script)), material))

    threads = [threading.Thread(target=run, args=(m,)) for m in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert all(r.success for r in results), [r.message for r in results]
    events = [line.split() for line in log.read_text().splitlines()]
    assert [kind for kind, _ in events] == ["start", "end", "start", "end"]  # never interleaved
    served = settled_fingerprint(nginx.port)
    assert served in (first.fingerprint, second.fingerprint)
    on_disk = Material(nginx.cert_path.read_text(), nginx.key_path.read_text(), "")
    assert on_disk.fingerprint == served


@pytest.mark.parametrize(
    "command", ["nginx -s reload; rm -rf /", "nginx -s reload && curl evil", "nginx -s reload $(id)", "nginx `id`"]
)
def test_injection_in_a_command_is_refused_and_nothing_runs(
    nginx: NginxServer,
    cert_a: Material,
    cert_b: Material,
    runner: RecordingRunner,
    counters: DeployCounters,
    command: str,
) -> None:
    with pytest.raises(TargetConfigError, match="reload_command: command contains shell metacharacter"):
        target(nginx, runner, counters, reload_command=command)
    unchecked = build_connector(
        "NGINX",
        {"cert_path": str(nginx.cert_path), "validate_command": "nginx -t", "reload_command": command},
        ConnectorDeps(runner=runner, counters=counters),
    )
    with pytest.raises(TargetConfigError):
        unchecked.deploy(DeployRequest(cert_b.cert_pem, "", cert_b.key_pem))
    assert runner.calls == []
    assert nginx.cert_path.read_text() == cert_a.cert_pem
    assert settled_fingerprint(nginx.port) == cert_a.fingerprint
