"""File connectors with a scripted runner and probe on real files (A4 #10, #43-#58, #71 in part).

The same connectors run against real nginx, Apache and HAProxy in test_nginx.py, test_apache.py and
test_haproxy.py; here the runner and the probe are small fakes so every failure is reachable.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from certctl.deploy.commands import CommandOutcome
from certctl.deploy.connectors import CONNECTORS, ConnectorDeps, DeployRequest, build_connector
from certctl.deploy.connectors.base import TargetConnector
from certctl.deploy.connectors.nginx import NginxConnector
from certctl.deploy.errors import (
    ReloadFailed,
    RollbackFailed,
    TargetConfigError,
    UnsupportedTargetType,
    ValidateFailed,
    ValidateOnlyNotSupported,
    VerifyFailed,
)
from certctl.deploy.locks import TargetLocks
from certctl.deploy.metrics import ATTEMPTS, VALIDATE_FAILURES, DeployCounters
from certctl.deploy.plan import FileRole
from certctl.deploy.result import DeployOutcome, DeployStage
from certctl.deploy.verify import Endpoint, ProbeResult
from certctl.targets.models import TargetType
from tests.deploy.material import Material

ORIGINAL = "ORIGINAL"


@dataclass
class FakeRunner:
    """Answers by program name: `failures[name]` runs fail (exit 1, `output`), the rest succeed."""

    failures: dict[str, int] = field(default_factory=dict)
    output: str = "nginx: [emerg] invalid SAN"
    delay: float = 0.0
    calls: list[tuple[str, ...]] = field(default_factory=list)
    envs: list[Mapping[str, str]] = field(default_factory=list)

    def run(self, argv: Sequence[str], *, env: Mapping[str, str], timeout_seconds: float) -> CommandOutcome:
        self.calls.append(tuple(argv))
        self.envs.append(dict(env))
        time.sleep(self.delay)
        if self.failures.get(argv[0], 0) > 0:
            self.failures[argv[0]] -= 1
            return CommandOutcome(tuple(argv), 1, self.output, 0.0)
        return CommandOutcome(tuple(argv), 0, "", 0.0)

    def ran(self, program: str) -> int:
        return sum(1 for call in self.calls if call[0] == program)


@dataclass
class FakeProbe:
    fingerprints: list[str]  # served on successive probes; the last repeats
    error: str = ""
    calls: list[tuple[str, float]] = field(default_factory=list)

    def __call__(self, endpoint: Endpoint, timeout_seconds: float) -> ProbeResult:
        self.calls.append((str(endpoint), timeout_seconds))
        if self.error:
            return ProbeResult(False, error=self.error)
        fingerprint = self.fingerprints.pop(0) if len(self.fingerprints) > 1 else self.fingerprints[0]
        return ProbeResult(True, fingerprint)


@dataclass
class Rig:
    """A target directory with ORIGINAL files, a fake runner and probe, and fresh counters."""

    directory: Path
    runner: FakeRunner = field(default_factory=FakeRunner)
    probe: FakeProbe = field(default_factory=lambda: FakeProbe(["unused"]))
    counters: DeployCounters = field(default_factory=DeployCounters)
    sleeps: list[float] = field(default_factory=list)
    locks: TargetLocks = field(default_factory=TargetLocks)

    def deps(self, *, precheck: bool = True) -> ConnectorDeps:
        return ConnectorDeps(
            runner=self.runner,
            probe=self.probe,
            counters=self.counters,
            target_locks=self.locks,
            sleep=self.sleeps.append,
            precheck=precheck,
        )

    def path(self, name: str) -> Path:
        return self.directory / name

    def original(self, *names: str, mode: int = 0o644) -> None:
        for name in names:
            self.path(name).write_text(ORIGINAL)
            os.chmod(self.path(name), mode)

    def connector(self, target_type: str = "NGINX", *, precheck: bool = True, **config: Any) -> TargetConnector:
        connector = build_connector(target_type, config, self.deps(precheck=precheck))
        connector.validate_config()
        return connector

    def nginx(self, *, precheck: bool = True, **overrides: Any) -> TargetConnector:
        config: dict[str, Any] = {
            "cert_path": str(self.path("cert.pem")),
            "chain_path": str(self.path("chain.pem")),
            "key_path": str(self.path("key.pem")),
            "validate_command": "validate-cmd -t",
            "reload_command": "reload-cmd -s reload",
        }
        config.update(overrides)
        return self.connector("NGINX", precheck=precheck, **config)

    def mode(self, name: str) -> int:
        return os.stat(self.path(name)).st_mode & 0o7777


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def request(material: Material, *, key: bool = True, chain: bool = True, target_id: str | None = None) -> DeployRequest:
    return DeployRequest(
        material.cert_pem,
        material.chain_pem if chain else "",
        material.key_pem if key else None,
        target_id=target_id,
        metadata={"certificate_id": "mc-web", "job_id": "job-1"},
    )


# -- factory ------------------------------------------------------------------------------------------


def test_every_registered_type_is_a_target_type_or_ours() -> None:
    assert set(CONNECTORS) <= {t.value for t in TargetType} | {"Files"}


@pytest.mark.parametrize("target_type", ["NGINX", "Apache", "HAProxy", "Files"])
def test_a_null_or_empty_config_builds_and_invalid_json_does_not(target_type: str) -> None:
    build_connector(target_type, None)
    build_connector(target_type, "")
    with pytest.raises(TargetConfigError, match=f"invalid {target_type} config: not JSON"):
        build_connector(target_type, "{invalid json}")


@pytest.mark.parametrize("target_type", ["MagicBox", "nginx", "HAPROXY"])
def test_unknown_or_miscased_types_are_unsupported(target_type: str) -> None:
    with pytest.raises(UnsupportedTargetType, match=f"unsupported target type: {target_type}"):
        build_connector(target_type, {})


def test_json_text_is_accepted_with_go_wire_forms(rig: Rig) -> None:
    raw = json.dumps(
        {
            "cert_path": str(rig.path("cert.pem")),
            "reload_command": "r",
            "validate_command": "v",
            "key_file_mode": 416,  # Go encodes 0640 as decimal 416
            "post_deploy_verify": {"endpoint": "127.0.0.1:8443", "timeout": 2_000_000_000},
            "post_deploy_verify_backoff": "250ms",
        }
    )
    connector = build_connector("NGINX", raw)
    connector.validate_config()
    assert isinstance(connector, NginxConnector)
    assert connector.config.files[FileRole.KEY].mode == 0o640
    assert connector.config.verify.policy.timeout_seconds == 2.0
    assert connector.config.verify.policy.initial_backoff_seconds == 0.25


# -- validate_config (A4 #56, #71) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field_name", "problem"),
    [
        ({"cert_path": ""}, "cert_path", "is required"),
        ({"reload_command": None}, "reload_command", "is required"),
        ({"validate_command": ""}, "validate_command", "is required"),
        ({"cert_path": "relative/cert.pem"}, "cert_path", "absolute"),
        ({"cert_path": "/nonexistent-certctl/cert.pem"}, "cert_path", "does not exist"),
        ({"reload_command": "nginx -s reload; rm -rf /"}, "reload_command", "';'"),
        ({"reload_command": "nginx -s reload | cat"}, "reload_command", "'|'"),
        ({"validate_command": "nginx -t $(id)"}, "validate_command", "'$'"),
        ({"validate_command": "nginx -t `id`"}, "validate_command", "'`'"),
        ({"validate_command": "check {pem_path}"}, "validate_command", "{pem_path} names no file"),
        ({"key_file_mode": "rw-r-----"}, "key_file_mode", "octal"),
        ({"key_file_mode": 0o17777}, "key_file_mode", "outside"),
        ({"cert_file_owner": "www-data"}, "cert_file_owner", "or neither"),
        ({"post_deploy_verify": {"endpoint": "host:99999"}}, "post_deploy_verify.endpoint", "outside"),
        ({"post_deploy_verify": {"timeout": "soon"}}, "post_deploy_verify.timeout", "Go-style duration"),
        ({"post_deploy_verify": "yes"}, "post_deploy_verify", "must be an object"),
        ({"backup_retention": -2}, "backup_retention", "-1"),
        ({"key_path": ""}, None, None),
    ],
)
def test_nginx_config_checks_name_the_field(
    rig: Rig, overrides: dict[str, Any], field_name: str | None, problem: str | None
) -> None:
    if field_name is None:
        rig.nginx(**overrides)
        return
    with pytest.raises(TargetConfigError) as caught:
        rig.nginx(**overrides)
    assert caught.value.field == field_name
    assert problem is not None
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"invalid NGINX config: {field_name}: ")


def test_apache_also_requires_the_chain_path_and_haproxy_the_pem_path(rig: Rig) -> None:
    with pytest.raises(TargetConfigError, match="chain_path: is required"):
        rig.connector("Apache", cert_path=str(rig.path("c.pem")), reload_command="r", validate_command="v", key_path="")
    with pytest.raises(TargetConfigError, match="pem_path: is required"):
        rig.connector("HAProxy", reload_command="r", cert_path=str(rig.path("c.pem")))
    with pytest.raises(TargetConfigError, match="reload_command: is required"):
        rig.connector("HAProxy", pem_path=str(rig.path("site.pem")))
    with pytest.raises(TargetConfigError, match="at least one of"):
        rig.connector("Files", reload_command="r")


def test_an_injected_command_stops_the_deploy_before_anything_runs(rig: Rig, cert_a: Material) -> None:
    rig.original("cert.pem")
    connector = build_connector(
        "NGINX",
        {"cert_path": str(rig.path("cert.pem")), "validate_command": "v", "reload_command": "r; reboot"},
        rig.deps(),
    )
    with pytest.raises(TargetConfigError, match="reload_command"):
        connector.deploy(request(cert_a))
    assert rig.runner.calls == []
    assert rig.path("cert.pem").read_text() == ORIGINAL


# -- deploy (A4 #43-#54) ------------------------------------------------------------------------------


def test_cert_chain_and_key_are_written_exactly_with_the_result_metadata(rig: Rig, cert_a: Material) -> None:
    rig.original("cert.pem", "chain.pem", "key.pem")
    result = rig.nginx().deploy(request(cert_a))
    assert result.success
    assert result.error is None
    assert result.outcome is DeployOutcome.SUCCESS
    assert rig.path("cert.pem").read_text() == cert_a.cert_pem
    assert rig.path("chain.pem").read_text() == cert_a.chain_pem
    assert rig.path("key.pem").read_text() == cert_a.key_pem
    assert result.deployment_id.startswith("nginx-")
    assert result.deployed_at is not None
    assert result.metadata["idempotent"] == "false"
    assert int(result.metadata["duration_ms"]) >= 0
    assert result.metadata["cert_path"] == str(rig.path("cert.pem"))
    assert result.metadata["chain_path"] == str(rig.path("chain.pem"))
    assert [c[0] for c in rig.runner.calls] == ["validate-cmd", "reload-cmd"]
    report = result.as_report()
    assert report["stage"] == "done"
    assert report["reloaded"] is True
    assert report["rolled_back"] is False
    assert isinstance(report["duration_ms"], int)
    assert report["deployment_id"] == result.deployment_id
    assert report["post_verify_failed"] is False


def test_a_failing_validate_command_restores_the_files_and_never_reloads(rig: Rig, cert_a: Material) -> None:
    rig.original("cert.pem", "chain.pem", "key.pem")
    rig.runner.failures["validate-cmd"] = 1
    result = rig.nginx().deploy(request(cert_a))
    assert isinstance(result.error, ValidateFailed)
    assert not result.success
    assert "nginx -t failed: exit status 1 (output: nginx: [emerg] invalid SAN)" in result.message
    assert rig.path("cert.pem").read_text() == ORIGINAL
    assert rig.runner.ran("reload-cmd") == 0
    assert result.outcome is DeployOutcome.ROLLED_BACK
    assert result.stage is DeployStage.VALIDATE
    with pytest.raises(ValidateFailed):
        result.raise_for_error()


def test_a_reload_failing_once_rolls_back_and_reloads_twice(rig: Rig, cert_a: Material) -> None:
    rig.original("cert.pem", "chain.pem", "key.pem")
    rig.runner.failures["reload-cmd"] = 1
    rig.runner.output = "nginx: [error] open() failed"
    result = rig.nginx().deploy(request(cert_a))
    assert isinstance(result.error, ReloadFailed)
    assert "open() failed" in result.message
    assert rig.path("cert.pem").read_text() == ORIGINAL
    assert rig.runner.ran("reload-cmd") == 2
    assert result.as_report()["rollback_outcome"] == "restored"


def test_a_reload_that_always_fails_is_a_rollback_failure(rig: Rig, cert_a: Material) -> None:
    rig.original("cert.pem", "chain.pem", "key.pem")
    rig.runner.failures["reload-cmd"] = 9
    result = rig.nginx().deploy(request(cert_a))
    assert isinstance(result.error, RollbackFailed)
    assert "nginx -s reload failed" in result.message
    assert result.as_report()["rollback_outcome"] == "also_failed"


def test_a_verify_mismatch_restores_the_files_and_reloads_again(rig: Rig, cert_a: Material) -> None:
    rig.original("cert.pem", "chain.pem", "key.pem")
    rig.probe.fingerprints = ["0" * 64]
    connector = rig.nginx(post_deploy_verify={"endpoint": "127.0.0.1:8443"}, post_deploy_verify_attempts=1)
    result = connector.deploy(request(cert_a))
    assert isinstance(result.error, VerifyFailed)
    assert "SHA-256 mismatch" in result.message
    assert rig.path("cert.pem").read_text() == ORIGINAL
    assert rig.runner.ran("reload-cmd") == 2
    assert result.verification is not None
    assert result.verification.actual_fingerprint == "0" * 64
    assert result.as_report()["post_verify_failed"] is True


def test_a_probe_that_cannot_connect_is_a_verify_failure(rig: Rig, cert_a: Material) -> None:
    rig.original("cert.pem", "chain.pem", "key.pem")
    rig.probe.error = "dial 127.0.0.1:8443: timed out"
    result = rig.nginx(post_deploy_verify={"endpoint": "127.0.0.1:8443"}).deploy(request(cert_a))
    assert isinstance(result.error, VerifyFailed)
    assert "TLS probe failed: dial" in result.message
    assert rig.path("cert.pem").read_text() == ORIGINAL
    assert len(rig.probe.calls) == 3


def test_verify_retries_with_backoff_until_the_new_certificate_is_served(rig: Rig, cert_a: Material) -> None:
    rig.probe.fingerprints = ["old", "old", cert_a.fingerprint]
    connector = rig.nginx(
        post_deploy_verify={"endpoint": "specific-host:8443"},
        post_deploy_verify_attempts=4,
        post_deploy_verify_backoff="10ms",
        post_deploy_verify_max_backoff=80_000_000,
    )
    result = connector.deploy(request(cert_a))
    assert result.success
    assert result.verification is not None
    assert result.verification.attempts == 3
    assert rig.sleeps == [0.01, 0.02]
    assert rig.probe.calls[0] == ("specific-host:8443", 10.0)  # the exact address; 10 s by default
    assert result.target_address == "specific-host:8443"
    assert result.metadata["served_fingerprint"] == cert_a.fingerprint


def test_verify_is_skipped_without_an_endpoint_or_when_disabled(rig: Rig, cert_a: Material, cert_b: Material) -> None:
    assert rig.nginx(post_deploy_verify={"enabled": True}).deploy(request(cert_a)).success
    disabled = rig.nginx(post_deploy_verify={"enabled": False, "endpoint": "127.0.0.1:1"})
    assert disabled.deploy(request(cert_b)).success
    assert rig.probe.calls == []


def test_identical_files_are_unchanged_with_no_command_and_no_probe(rig: Rig, cert_a: Material) -> None:
    connector = rig.nginx(post_deploy_verify={"endpoint": "127.0.0.1:8443"})
    rig.probe.fingerprints = [cert_a.fingerprint]
    assert connector.deploy(request(cert_a)).success
    rig.runner.calls.clear()
    rig.probe.calls.clear()
    result = connector.deploy(request(cert_a))
    assert result.outcome is DeployOutcome.UNCHANGED
    assert result.metadata["idempotent"] == "true"
    assert rig.runner.calls == []
    assert rig.probe.calls == []
    assert result.as_report()["idempotent"] is True


def test_only_the_cert_identical_is_a_full_deploy(rig: Rig, cert_a: Material) -> None:
    rig.path("cert.pem").write_text(cert_a.cert_pem)
    result = rig.nginx().deploy(request(cert_a))
    assert result.outcome is DeployOutcome.SUCCESS
    assert rig.runner.ran("reload-cmd") == 1


def test_nginx_key_is_0640_even_over_an_existing_0600_unless_configured(
    rig: Rig, cert_a: Material, cert_b: Material
) -> None:
    rig.original("key.pem", mode=0o600)
    rig.nginx().deploy(request(cert_a))
    assert rig.mode("key.pem") == 0o640
    rig.nginx(key_file_mode="0600").deploy(request(cert_b))
    assert rig.mode("key.pem") == 0o600


def test_apache_key_defaults_to_0600_and_a_new_cert_to_0644_while_an_existing_cert_keeps_0640(
    rig: Rig, cert_a: Material
) -> None:
    rig.original("chain.pem", mode=0o640)
    connector = rig.connector(
        "Apache",
        cert_path=str(rig.path("cert.pem")),
        chain_path=str(rig.path("chain.pem")),
        key_path=str(rig.path("key.pem")),
        validate_command="validate-cmd configtest",
        reload_command="reload-cmd graceful",
    )
    assert connector.deploy(request(cert_a)).deployment_id.startswith("apache-")
    assert (rig.mode("cert.pem"), rig.mode("chain.pem"), rig.mode("key.pem")) == (0o644, 0o640, 0o600)


def test_haproxy_writes_one_pem_in_cert_chain_key_order_and_forces_0600(rig: Rig, cert_a: Material) -> None:
    rig.original("site.pem", mode=0o640)
    connector = rig.connector("HAProxy", pem_path=str(rig.path("site.pem")), reload_command="reload-cmd")
    result = connector.deploy(request(cert_a))
    assert result.success
    assert result.deployment_id.startswith("haproxy-")
    assert rig.runner.ran("reload-cmd") == 1
    text = rig.path("site.pem").read_text()
    blocks = [line for line in text.splitlines() if line.startswith("-----BEGIN")]
    assert blocks == ["-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATE-----", "-----BEGIN PRIVATE KEY-----"]
    assert text == cert_a.cert_pem + cert_a.chain_pem + cert_a.key_pem
    assert rig.mode("site.pem") == 0o600


def test_haproxy_pem_file_mode_is_honoured(rig: Rig, cert_a: Material) -> None:
    connector = rig.connector(
        "HAProxy", pem_path=str(rig.path("site.pem")), reload_command="reload-cmd", pem_file_mode="0640"
    )
    connector.deploy(request(cert_a))
    assert rig.mode("site.pem") == 0o640


def test_no_chain_path_or_no_key_in_the_request_means_no_such_file(rig: Rig, cert_a: Material) -> None:
    rig.nginx(chain_path="").deploy(request(cert_a))
    assert not rig.path("chain.pem").exists()
    assert rig.path("key.pem").exists()
    rig.path("key.pem").unlink()
    rig.nginx().deploy(request(cert_a, key=False))
    assert not rig.path("key.pem").exists()


def test_an_empty_certificate_fails_cleanly(rig: Rig) -> None:
    result = rig.nginx().deploy(DeployRequest(""))
    assert isinstance(result.error, ValidateFailed)
    assert result.stage is DeployStage.PRECHECK
    assert rig.runner.calls == []
    assert not rig.path("cert.pem").exists()


def test_a_mismatched_key_is_refused_by_the_precheck_and_counted(rig: Rig, cert_a: Material, cert_b: Material) -> None:
    rig.original("cert.pem", "chain.pem", "key.pem")
    result = rig.nginx().deploy(request(cert_a.with_key(cert_b)))
    assert isinstance(result.error, ValidateFailed)
    assert "does not match" in result.message
    assert result.stage is DeployStage.PRECHECK
    assert result.as_report()["validate_ok"] is False
    assert rig.runner.calls == []
    assert rig.path("key.pem").read_text() == ORIGINAL
    assert rig.counters.value(VALIDATE_FAILURES, "NGINX") == 1
    assert rig.counters.value(ATTEMPTS, "NGINX", "failure") == 1


def test_a_staged_validate_command_gets_the_temp_paths_before_the_swap(rig: Rig, cert_a: Material) -> None:
    rig.original("cert.pem", "chain.pem", "key.pem")
    result = rig.nginx(validate_command="validate-cmd {cert_path} {key_path}").deploy(request(cert_a))
    assert result.success
    (validate,) = [call for call in rig.runner.calls if call[0] == "validate-cmd"]
    assert validate[1].startswith(str(rig.path("cert.pem")) + ".certctl-tmp.")
    assert validate[2].startswith(str(rig.path("key.pem")) + ".certctl-tmp.")
    assert rig.runner.envs[0]["CERTCTL_STAGED_CERT"] == validate[1]


def test_a_staged_validate_failure_leaves_the_live_files_untouched(rig: Rig, cert_a: Material) -> None:
    rig.original("cert.pem", "chain.pem", "key.pem")
    inodes = os.stat(rig.path("cert.pem")).st_ino
    rig.runner.failures["validate-cmd"] = 1
    result = rig.nginx(validate_command="validate-cmd {cert_path}").deploy(request(cert_a))
    assert isinstance(result.error, ValidateFailed)
    assert result.outcome is DeployOutcome.FAILED
    assert os.stat(rig.path("cert.pem")).st_ino == inodes
    assert rig.runner.ran("reload-cmd") == 0


def test_the_generic_connector_writes_a_fullchain_and_a_combined_pem(rig: Rig, cert_a: Material) -> None:
    connector = rig.connector(
        "Files",
        fullchain_path=str(rig.path("fullchain.pem")),
        key_path=str(rig.path("privkey.pem")),
        pem_path=str(rig.path("combined.pem")),
    )
    result = connector.deploy(request(cert_a))
    assert result.success
    assert rig.runner.calls == []
    assert rig.path("fullchain.pem").read_text() == cert_a.cert_pem + cert_a.chain_pem
    assert rig.path("combined.pem").read_text() == cert_a.cert_pem + cert_a.chain_pem + cert_a.key_pem
    assert (rig.mode("fullchain.pem"), rig.mode("privkey.pem"), rig.mode("combined.pem")) == (0o644, 0o600, 0o600)


def test_backup_retention_comes_from_the_config_or_the_agent_default(rig: Rig, ca: Any) -> None:
    connector = rig.nginx(backup_retention=2)
    for _ in range(5):
        connector.deploy(request(ca.issue()))
    assert len(list(rig.directory.glob("cert.pem.certctl-bak.*"))) == 2
    deps = ConnectorDeps(runner=rig.runner, counters=rig.counters, default_backup_retention=1)
    config = {"cert_path": str(rig.path("cert.pem")), "validate_command": "v", "reload_command": "r"}
    build_connector("NGINX", config, deps).deploy(request(ca.issue()))
    assert len(list(rig.directory.glob("cert.pem.certctl-bak.*"))) == 1


# -- mutex, dry runs, test target ------------------------------------------------------------------------


def test_a_held_target_lock_blocks_that_target_only(rig: Rig, cert_a: Material, cert_b: Material) -> None:
    other = rig.directory / "other"
    other.mkdir()

    def connector(directory: Path) -> TargetConnector:
        config = {"cert_path": str(directory / "cert.pem"), "validate_command": "v", "reload_command": "r"}
        return build_connector("NGINX", config, rig.deps())

    held = rig.locks.lock_for("tgt-1")
    assert held is not None
    done = threading.Event()

    def deploy_first() -> None:
        connector(rig.directory).deploy(request(cert_a, target_id="tgt-1"))
        done.set()

    with held:  # as if another deploy to tgt-1 were running
        worker = threading.Thread(target=deploy_first)
        worker.start()
        assert connector(other).deploy(request(cert_b, target_id="tgt-2")).success  # not held up
        assert not done.wait(0.2)
        assert not rig.path("cert.pem").exists()
    worker.join(5)
    assert done.is_set()
    assert rig.path("cert.pem").read_text() == cert_a.cert_pem


def test_two_deploys_to_one_target_never_overlap(rig: Rig, ca: Any) -> None:
    rig.runner.delay = 0.05  # wide enough for a second deploy to slip in between, were it not locked
    results = []

    def deploy() -> None:
        results.append(rig.nginx().deploy(request(ca.issue(), target_id="tgt-1")))

    threads = [threading.Thread(target=deploy) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert [r.success for r in results] == [True, True, True]
    # each deploy runs validate then reload; serialised, they come in pairs
    assert [call[0] for call in rig.runner.calls] == ["validate-cmd", "reload-cmd"] * 3


def test_validate_only_runs_the_command_or_says_it_cannot(rig: Rig, cert_a: Material) -> None:
    rig.original("cert.pem")
    rig.nginx().validate_only(request(cert_a))
    assert [c[0] for c in rig.runner.calls] == ["validate-cmd"]
    rig.runner.failures["validate-cmd"] = 1
    with pytest.raises(ValidateFailed, match=r"nginx -t \(ValidateOnly\) failed: .*invalid SAN"):
        rig.nginx().validate_only(request(cert_a))
    haproxy = rig.connector("HAProxy", pem_path=str(rig.path("site.pem")), reload_command="r")
    with pytest.raises(ValidateOnlyNotSupported):
        haproxy.validate_only(request(cert_a))
    assert rig.path("cert.pem").read_text() == ORIGINAL


def test_validate_only_with_placeholders_checks_staged_copies(rig: Rig, cert_a: Material) -> None:
    rig.original("cert.pem")
    rig.nginx(validate_command="validate-cmd {cert_path}").validate_only(request(cert_a))
    (call,) = rig.runner.calls
    assert ".certctl-tmp." in call[1]
    assert not Path(call[1]).exists()
    assert rig.path("cert.pem").read_text() == ORIGINAL


def test_the_target_test_checks_directories_and_the_validate_command(rig: Rig) -> None:
    check = rig.nginx().test()
    assert check.ok
    assert [i.name for i in check.items] == [
        "config",
        "cert_path",
        "chain_path",
        "key_path",
        "validate_command",
    ]
    rig.runner.failures["validate-cmd"] = 1
    failed = rig.nginx().test()
    assert not failed.ok
    assert "invalid SAN" in failed.items[-1].message
    broken = build_connector("NGINX", {"cert_path": "/nonexistent-certctl/c.pem"}, rig.deps()).test()
    assert not broken.ok
    assert broken.items[0].name == "config"
    assert list(rig.directory.iterdir()) == []  # the write probes clean up after themselves
