"""Postfix and Dovecot connector against a real Postfix 3.7 and Dovecot 2.3 on loopback ports (A4 #62).

Postfix runs `postfix -c DIR start-fg` with smtpd on a STARTTLS port and an implicit-TLS port (like
465); the deploy validates with `postfix -c DIR check`, reloads with `postfix -c DIR reload` and probes
the implicit-TLS port. Dovecot runs with no mail protocol (only dovecot-core is installed) and its
doveadm service listening with TLS, which serves `ssl_cert`/`ssl_key` like imaps would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certctl.deploy.connectors import ConnectorDeps, DeployRequest, DovecotConnector, PostfixConnector, build_connector
from certctl.deploy.connectors.base import TargetConnector
from certctl.deploy.errors import TargetConfigError, VerifyFailed
from certctl.deploy.locks import TargetLocks
from certctl.deploy.metrics import ATTEMPTS, POST_VERIFY_FAILURES, ROLLBACKS, DeployCounters
from certctl.deploy.plan import FileRole
from certctl.deploy.result import DeployOutcome
from tests.deploy.conftest import RecordingRunner
from tests.deploy.material import Material
from tests.deploy.servers import DovecotServer, PostfixServer, settled_fingerprint, starttls_fingerprint


@pytest.fixture
def postfix(cert_a: Material) -> Iterator[PostfixServer]:
    server = PostfixServer(cert_a)
    try:
        server.start(cert_a.fingerprint)
        yield server
    finally:
        server.stop()


@pytest.fixture
def dovecot(cert_a: Material) -> Iterator[DovecotServer]:
    server = DovecotServer(cert_a)
    try:
        server.start(cert_a.fingerprint)
        yield server
    finally:
        server.stop()


def target(
    target_type: str,
    server: PostfixServer | DovecotServer,
    runner: RecordingRunner,
    counters: DeployCounters,
    *,
    precheck: bool = True,
    **overrides: Any,
) -> TargetConnector:
    config: dict[str, Any] = {
        "cert_path": str(server.cert_path),
        "key_path": str(server.key_path),
        "validate_command": server.validate_command,
        "reload_command": server.reload_command,
        "post_deploy_verify": {"endpoint": f"127.0.0.1:{server.port}", "server_name": "localhost", "timeout": "2s"},
        "post_deploy_verify_attempts": 10,
        "post_deploy_verify_backoff": "50ms",
        "post_deploy_verify_max_backoff": "400ms",
    }
    config.update(overrides)
    deps = ConnectorDeps(runner=runner, counters=counters, target_locks=TargetLocks(), precheck=precheck)
    connector = build_connector(target_type, config, deps)
    connector.validate_config()
    return connector


def deploy(connector: TargetConnector, material: Material) -> Any:
    return connector.deploy(DeployRequest(material.cert_pem, material.chain_pem, material.key_pem, "tgt-mail"))


def test_postfix_serves_the_new_certificate_with_its_chain_on_both_ports(
    postfix: PostfixServer, cert_b: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    os.chmod(postfix.key_path, 0o640)
    result = deploy(target("Postfix", postfix, runner, counters), cert_b)
    assert result.success, result.message
    assert result.deployment_id.startswith("postfix-")
    assert result.metadata["mode"] == "postfix"
    assert [call[1:] for call in runner.calls] == [
        ("-c", str(postfix.root), "check"),
        ("-c", str(postfix.root), "reload"),
    ]
    text = postfix.cert_path.read_text()
    assert text == cert_b.cert_pem + cert_b.chain_pem  # no chain_path: the chain rides in the certificate file
    assert text.count("-----BEGIN CERTIFICATE-----") == 2
    assert os.stat(postfix.key_path).st_mode & 0o7777 == 0o600  # forced over the old 0640
    assert settled_fingerprint(postfix.port) == cert_b.fingerprint  # implicit TLS (465-style)
    assert starttls_fingerprint(postfix.smtp_port) == cert_b.fingerprint  # STARTTLS on the SMTP port
    assert counters.value(ATTEMPTS, "Postfix", "success") == 1


def test_postfix_with_a_key_it_cannot_load_is_caught_by_the_probe_and_rolled_back(
    postfix: PostfixServer, cert_a: Material, cert_b: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    """`postfix check` does not read certificates and `postfix reload` succeeds; smtpd then cannot start
    TLS, which only the probe sees."""
    connector = target("Postfix", postfix, runner, counters, precheck=False, post_deploy_verify_attempts=4)
    result = deploy(connector, cert_b.with_key(cert_a))
    assert isinstance(result.error, VerifyFailed)
    assert result.outcome is DeployOutcome.ROLLED_BACK
    assert [call[-1] for call in runner.calls] == ["check", "reload", "reload"]  # the rollback reloads again
    assert postfix.cert_path.read_text() == cert_a.cert_pem
    assert postfix.key_path.read_text() == cert_a.key_pem
    assert settled_fingerprint(postfix.port) == cert_a.fingerprint
    assert counters.value(POST_VERIFY_FAILURES, "Postfix") == 1
    assert counters.value(ROLLBACKS, "Postfix", "restored") == 1


def test_dovecot_serves_the_new_certificate_after_doveadm_reload(
    dovecot: DovecotServer, cert_b: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    chain_path = dovecot.certs / "chain.pem"
    result = deploy(target("Dovecot", dovecot, runner, counters, chain_path=str(chain_path)), cert_b)
    assert result.success, result.message
    assert result.deployment_id.startswith("dovecot-")
    assert result.metadata["mode"] == "dovecot"
    assert dovecot.cert_path.read_text() == cert_b.cert_pem  # a chain_path keeps the chain out of the cert file
    assert chain_path.read_text() == cert_b.chain_pem
    assert [call[-1] for call in runner.calls] == ["-n", "reload"]
    assert settled_fingerprint(dovecot.port) == cert_b.fingerprint
    again = deploy(target("Dovecot", dovecot, runner, counters, chain_path=str(chain_path)), cert_b)
    assert again.outcome is DeployOutcome.UNCHANGED
    assert len(runner.calls) == 2


def test_dovecot_verify_failure_rolls_back_and_the_old_certificate_is_served_again(
    dovecot: DovecotServer, cert_a: Material, cert_b: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    """`doveconf -n` reads no certificate file and `doveadm reload` succeeds; Dovecot then disables TLS
    ("Key is for a different cert"), the probe fails, and the rollback's reload brings the old pair back."""
    # Without a usable key the doveadm listener accepts and never answers the handshake: keep probes short.
    short = {"endpoint": f"127.0.0.1:{dovecot.port}", "server_name": "localhost", "timeout": "500ms"}
    connector = target(
        "Dovecot", dovecot, runner, counters, precheck=False, post_deploy_verify=short, post_deploy_verify_attempts=3
    )
    result = deploy(connector, cert_b.with_key(cert_a))
    assert isinstance(result.error, VerifyFailed)
    assert "TLS probe failed" in result.message
    assert dovecot.cert_path.read_text() == cert_a.cert_pem
    assert settled_fingerprint(dovecot.port) == cert_a.fingerprint
    assert counters.value(ROLLBACKS, "Dovecot", "restored") == 1


def test_the_mode_presets_fill_paths_and_commands(tmp_path: Path) -> None:
    dovecot = DovecotConnector.from_config({})
    assert dovecot.mode == "dovecot"
    assert dovecot.config.paths[FileRole.CERT] == "/etc/dovecot/certs/cert.pem"
    assert dovecot.config.paths[FileRole.KEY] == "/etc/dovecot/certs/key.pem"
    assert (dovecot.config.validate_command, dovecot.config.reload_command) == ("doveconf -n", "doveadm reload")
    postfix = PostfixConnector.from_config({"cert_path": str(tmp_path / "c.pem")})
    assert postfix.config.paths[FileRole.KEY] == "/etc/postfix/certs/key.pem"
    assert (postfix.config.validate_command, postfix.config.reload_command) == ("postfix check", "postfix reload")
    as_dovecot = build_connector("Postfix", {"mode": "Dovecot", "cert_path": str(tmp_path / "c.pem")})
    assert isinstance(as_dovecot, PostfixConnector)
    assert as_dovecot.mode == "dovecot"
    assert as_dovecot.config.reload_command == "doveadm reload"
    # validate_config on the control plane: the presets pass, host paths are the agent's business
    build_connector("Dovecot", None, ConnectorDeps(host_checks=False)).validate_config()


@pytest.mark.parametrize(
    ("target_type", "overrides", "field_name", "problem"),
    [
        ("Postfix", {"mode": "exim"}, "mode", "postfix, dovecot"),
        ("Dovecot", {"reload_command": "doveadm reload; rm -rf /"}, "reload_command", "';'"),
        ("Postfix", {"validate_command": "postfix check $(id)"}, "validate_command", "'$'"),
        ("Postfix", {"cert_path": "/nonexistent-certctl/cert.pem"}, "cert_path", "does not exist"),
        ("Dovecot", {"key_file_mode": "0x600"}, "key_file_mode", "octal"),
    ],
)
def test_config_errors_name_the_field(
    tmp_path: Path, target_type: str, overrides: dict[str, Any], field_name: str, problem: str
) -> None:
    config = {"cert_path": str(tmp_path / "cert.pem"), "key_path": str(tmp_path / "key.pem"), **overrides}
    with pytest.raises(TargetConfigError) as caught:
        build_connector(target_type, config).validate_config()
    assert caught.value.field == field_name
    assert problem in str(caught.value)
