"""Traefik connector on real files (A4 #59; agent-targets-discovery.md §A2.5).

Traefik is in neither Debian nor PyPI, so there is no server to probe: these tests check the files the
file provider reads — the certificate and key, and the dynamic configuration parsed back as YAML and
TOML, the two formats Traefik accepts — with a scripted probe for the verify paths.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import pytest

from certctl.deploy.connectors import ConnectorDeps, DeployRequest, TraefikConnector, build_connector
from certctl.deploy.connectors.base import TargetConnector
from certctl.deploy.errors import PlanInvalid, TargetConfigError, ValidateOnlyNotSupported, VerifyFailed
from certctl.deploy.locks import TargetLocks
from certctl.deploy.metrics import ATTEMPTS, IDEMPOTENT_SKIPS, POST_VERIFY_FAILURES, ROLLBACKS, DeployCounters
from certctl.deploy.plan import FileRole
from certctl.deploy.result import DeployOutcome
from tests.deploy.material import Material
from tests.deploy.test_connectors import FakeProbe

yaml = pytest.importorskip("yaml")

ORIGINAL = "ORIGINAL"


@pytest.fixture
def probe() -> FakeProbe:
    return FakeProbe(["unused"])


def traefik(directory: Path, probe: FakeProbe, counters: DeployCounters, **config: Any) -> TargetConnector:
    deps = ConnectorDeps(probe=probe, counters=counters, target_locks=TargetLocks(), sleep=lambda _: None)
    connector = build_connector("Traefik", {"cert_dir": str(directory), **config}, deps)
    connector.validate_config()
    return connector


def request(material: Material) -> DeployRequest:
    return DeployRequest(material.cert_pem, material.chain_pem, material.key_pem, metadata={"certificate_id": "mc-1"})


def mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o7777


def test_cert_and_chain_go_in_one_file_the_key_in_another_with_forced_modes(
    tmp_path: Path, probe: FakeProbe, counters: DeployCounters, cert_a: Material
) -> None:
    (tmp_path / "cert.pem").write_text(ORIGINAL)
    os.chmod(tmp_path / "cert.pem", 0o640)
    result = traefik(tmp_path, probe, counters).deploy(request(cert_a))
    assert result.success, result.message
    assert result.deployment_id.startswith("traefik-")
    assert (tmp_path / "cert.pem").read_text() == cert_a.cert_pem + cert_a.chain_pem
    assert (tmp_path / "key.pem").read_text() == cert_a.key_pem
    assert (mode(tmp_path / "cert.pem"), mode(tmp_path / "key.pem")) == (0o644, 0o600)  # 0644 over the old 0640
    assert result.metadata["cert_path"] == str(tmp_path / "cert.pem")
    assert result.metadata["idempotent"] == "false"
    assert len(list(tmp_path.glob("cert.pem.certctl-bak.*"))) == 1
    assert probe.calls == []  # no endpoint, nothing probed
    assert counters.value(ATTEMPTS, "Traefik", "success") == 1


def test_the_dynamic_configuration_lists_the_files_under_tls_certificates_in_yaml_and_toml(
    tmp_path: Path, probe: FakeProbe, counters: DeployCounters, cert_a: Material
) -> None:
    certs, dynamic = tmp_path / "certs", tmp_path / "dynamic"
    certs.mkdir()
    dynamic.mkdir()
    yml = traefik(certs, probe, counters, dynamic_config_path=str(dynamic / "certctl.yml"))
    assert yml.deploy(request(cert_a)).success
    parsed = yaml.safe_load((dynamic / "certctl.yml").read_text())
    assert parsed == {
        "tls": {"certificates": [{"certFile": str(certs / "cert.pem"), "keyFile": str(certs / "key.pem")}]}
    }
    assert mode(dynamic / "certctl.yml") == 0o644

    odd = tmp_path / "odd dir 'quoted'"
    odd.mkdir()
    toml = traefik(odd, probe, counters, dynamic_config_path=str(dynamic / "certctl.toml"), cert_file="site.crt")
    result = toml.deploy(request(cert_a))
    assert result.metadata["dynamic_config_path"] == str(dynamic / "certctl.toml")
    entries = tomllib.loads((dynamic / "certctl.toml").read_text())["tls"]["certificates"]
    assert entries == [{"certFile": str(odd / "site.crt"), "keyFile": str(odd / "key.pem")}]


def test_an_unwritable_key_destination_stops_the_deploy_and_the_cert_keeps_its_bytes(
    tmp_path: Path, probe: FakeProbe, counters: DeployCounters, cert_a: Material
) -> None:
    (tmp_path / "cert.pem").write_text(ORIGINAL)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "key.pem").mkdir()  # a directory where the key should go: even root cannot replace it
    result = traefik(tmp_path, probe, counters, key_file="keys/key.pem").deploy(request(cert_a))
    assert isinstance(result.error, PlanInvalid)
    assert "not a regular file" in result.message
    assert (tmp_path / "cert.pem").read_text() == ORIGINAL
    assert [p.name for p in tmp_path.iterdir() if ".certctl-tmp." in p.name] == []
    assert counters.value(ATTEMPTS, "Traefik", "failure") == 1


def test_identical_files_are_skipped_without_a_probe_and_a_new_key_alone_is_deployed_and_verified(
    tmp_path: Path, probe: FakeProbe, counters: DeployCounters, cert_a: Material
) -> None:
    verified = {"post_deploy_verify": {"enabled": True, "endpoint": "127.0.0.1:8443"}}
    probe.fingerprints = [cert_a.fingerprint]
    connector = traefik(tmp_path, probe, counters, **verified)
    assert connector.deploy(request(cert_a)).success
    assert len(probe.calls) == 1
    unchanged = connector.deploy(request(cert_a))
    assert unchanged.outcome is DeployOutcome.UNCHANGED
    assert unchanged.metadata["idempotent"] == "true"
    assert len(probe.calls) == 1
    assert counters.value(IDEMPOTENT_SKIPS, "Traefik") == 1

    (tmp_path / "key.pem").write_text(ORIGINAL)  # only the key differs: both files are deployed and verified
    again = connector.deploy(request(cert_a))
    assert again.outcome is DeployOutcome.SUCCESS
    assert (tmp_path / "key.pem").read_text() == cert_a.key_pem
    assert len(probe.calls) == 2


def test_a_verify_mismatch_restores_both_files_and_the_dynamic_configuration(
    tmp_path: Path, probe: FakeProbe, counters: DeployCounters, cert_a: Material
) -> None:
    dynamic = tmp_path / "dynamic.yaml"
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text(ORIGINAL)
    dynamic.write_text("# the operator's previous file\n")
    probe.fingerprints = ["0" * 64]
    connector = traefik(
        tmp_path,
        probe,
        counters,
        dynamic_config_path=str(dynamic),
        post_deploy_verify={"enabled": True, "endpoint": "traefik.internal:443"},
        post_deploy_verify_attempts=2,
    )
    result = connector.deploy(request(cert_a))
    assert isinstance(result.error, VerifyFailed)
    assert "SHA-256 mismatch" in result.message
    assert [p[0] for p in probe.calls] == ["traefik.internal:443"] * 2
    assert (tmp_path / "cert.pem").read_text() == ORIGINAL
    assert (tmp_path / "key.pem").read_text() == ORIGINAL
    assert dynamic.read_text() == "# the operator's previous file\n"
    assert counters.value(POST_VERIFY_FAILURES, "Traefik") == 1
    assert counters.value(ROLLBACKS, "Traefik", "restored") == 1


def test_verify_runs_only_when_enabled_explicitly(
    tmp_path: Path, probe: FakeProbe, counters: DeployCounters, cert_a: Material
) -> None:
    connector = traefik(tmp_path, probe, counters, post_deploy_verify={"endpoint": "127.0.0.1:8443"})
    assert connector.deploy(request(cert_a)).success
    assert probe.calls == []  # the original's Traefik probes only with enabled: true


def test_validate_only_is_not_supported_and_the_check_reports_the_directory(
    tmp_path: Path, probe: FakeProbe, counters: DeployCounters, cert_a: Material
) -> None:
    connector = traefik(tmp_path, probe, counters, dynamic_config_path=str(tmp_path / "d.yml"))
    with pytest.raises(ValidateOnlyNotSupported):
        connector.validate_only(request(cert_a))
    check = connector.test()
    assert check.ok
    assert [item.name for item in check.items] == ["config", "cert_path", "key_path", "dynamic_config_path"]


def test_defaults_are_applied_when_the_config_is_read(tmp_path: Path) -> None:
    connector = TraefikConnector.from_config({"cert_dir": str(tmp_path)})
    assert connector.config.paths == {
        FileRole.CERT: str(tmp_path / "cert.pem"),
        FileRole.KEY: str(tmp_path / "key.pem"),
    }
    assert not connector.config.verify.enabled
    build_connector("Traefik", None)
    with pytest.raises(TargetConfigError, match="not JSON"):
        build_connector("Traefik", "{invalid json}")


@pytest.mark.parametrize(
    ("overrides", "field_name", "problem"),
    [
        ({"cert_dir": ""}, "cert_dir", "is required"),
        ({"cert_dir": "relative/certs"}, "cert_dir", "absolute"),
        ({"cert_dir": "/nonexistent-certctl"}, "cert_dir", "does not exist"),
        ({"cert_file": "../escape.pem"}, "cert_file", "'..'"),
        ({"key_file": "/etc/key.pem"}, "key_file", "relative"),
        ({"key_file": "missing/key.pem"}, "key_file", "does not exist"),
        ({"key_file": "cert.pem"}, "key_file", "two files"),
        ({"dynamic_config_path": "dynamic.yml"}, "dynamic_config_path", "absolute"),
        ({"dynamic_config_path": "/tmp/dynamic.json"}, "dynamic_config_path", ".toml"),
        ({"key_file_mode": "rw"}, "key_file_mode", "octal"),
        ({"post_deploy_verify": {"enabled": True, "endpoint": "h:0"}}, "post_deploy_verify.endpoint", "outside"),
    ],
)
def test_config_errors_name_the_field(tmp_path: Path, overrides: dict[str, Any], field_name: str, problem: str) -> None:
    config = {"cert_dir": str(tmp_path), **overrides}
    with pytest.raises(TargetConfigError) as caught:
        build_connector("Traefik", config).validate_config()
    assert caught.value.field == field_name
    assert problem in str(caught.value)


def test_a_subdirectory_name_is_allowed_and_the_control_plane_skips_host_checks(tmp_path: Path) -> None:
    (tmp_path / "private").mkdir()
    build_connector("Traefik", {"cert_dir": str(tmp_path), "key_file": "private/key.pem"}).validate_config()
    server_side = ConnectorDeps(host_checks=False)
    build_connector("Traefik", {"cert_dir": "/srv/traefik/certs"}, server_side).validate_config()
