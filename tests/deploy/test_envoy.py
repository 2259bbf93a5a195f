"""Envoy connector on real files (A4 #61; agent-targets-discovery.md §A2.5).

Envoy is in neither Debian nor PyPI: these tests read back what its file-based SDS would read — the
certificate, key and chain files, and `sds.json` as the v3 `Secret` resource Envoy's
`path_config_source` parses — with a scripted probe for the verify paths.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from certctl.deploy.connectors import ConnectorDeps, DeployRequest, EnvoyConnector, build_connector
from certctl.deploy.connectors.base import TargetConnector
from certctl.deploy.errors import PlanInvalid, TargetConfigError, ValidateOnlyNotSupported, VerifyFailed
from certctl.deploy.locks import TargetLocks
from certctl.deploy.metrics import ATTEMPTS, ROLLBACKS, DeployCounters
from certctl.deploy.plan import FileRole
from certctl.deploy.result import DeployOutcome
from tests.deploy.material import Material
from tests.deploy.test_connectors import FakeProbe

SENTINEL = "SENTINEL"
SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


@pytest.fixture
def probe() -> FakeProbe:
    return FakeProbe(["unused"])


def envoy(
    directory: Path, probe: FakeProbe, counters: DeployCounters, sleeps: list[float] | None = None, **config: Any
) -> TargetConnector:
    deps = ConnectorDeps(
        probe=probe, counters=counters, target_locks=TargetLocks(), sleep=(sleeps if sleeps is not None else []).append
    )
    connector = build_connector("Envoy", {"cert_dir": str(directory), **config}, deps)
    connector.validate_config()
    return connector


def request(material: Material) -> DeployRequest:
    return DeployRequest(material.cert_pem, material.chain_pem, material.key_pem)


def mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o7777


def test_the_cert_file_carries_the_chain_unless_a_chain_file_is_named(
    tmp_path: Path, probe: FakeProbe, counters: DeployCounters, cert_a: Material
) -> None:
    result = envoy(tmp_path, probe, counters).deploy(request(cert_a))
    assert result.success, result.message
    assert result.deployment_id.startswith("envoy-")
    assert (tmp_path / "cert.pem").read_text() == cert_a.cert_pem + cert_a.chain_pem
    assert (tmp_path / "key.pem").read_text() == cert_a.key_pem
    assert (mode(tmp_path / "cert.pem"), mode(tmp_path / "key.pem")) == (0o644, 0o600)

    separate = tmp_path / "separate"
    separate.mkdir()
    connector = envoy(separate, probe, counters, cert_filename="leaf.pem", chain_filename="chain.pem")
    assert connector.deploy(request(cert_a)).success
    assert (separate / "leaf.pem").read_text() == cert_a.cert_pem  # not appended
    assert (separate / "chain.pem").read_text() == cert_a.chain_pem
    assert mode(separate / "chain.pem") == 0o644


def test_sds_json_is_the_v3_secret_envoy_reads_and_is_backed_up_when_replaced(
    tmp_path: Path, probe: FakeProbe, counters: DeployCounters, cert_a: Material, cert_b: Material
) -> None:
    connector = envoy(tmp_path, probe, counters, sds_config=True)
    first = connector.deploy(request(cert_a))
    assert first.metadata["sds_config_path"] == str(tmp_path / "sds.json")
    document = json.loads((tmp_path / "sds.json").read_text())
    assert document == {
        "resources": [
            {
                "@type": SECRET_TYPE,
                "name": "server_cert",
                "tls_certificate": {
                    "certificate_chain": {"filename": str(tmp_path / "cert.pem")},
                    "private_key": {"filename": str(tmp_path / "key.pem")},
                },
            }
        ]
    }
    assert mode(tmp_path / "sds.json") == 0o644
    assert not list(tmp_path.glob("sds.json.certctl-bak.*"))

    assert connector.deploy(request(cert_b)).success  # sds.json is rewritten with the certificates
    (backup,) = tmp_path.glob("sds.json.certctl-bak.*")
    assert json.loads(backup.read_text()) == document
    assert (tmp_path / "cert.pem").read_text() == cert_b.cert_pem + cert_b.chain_pem


def test_verify_is_off_by_default_even_with_an_endpoint(
    tmp_path: Path, probe: FakeProbe, counters: DeployCounters, cert_a: Material
) -> None:
    connector = envoy(tmp_path, probe, counters, post_deploy_verify={"endpoint": "127.0.0.1:10000"})
    assert connector.deploy(request(cert_a)).success
    assert probe.calls == []


def test_verify_retries_with_backoff_until_the_new_certificate_is_served(
    tmp_path: Path, probe: FakeProbe, counters: DeployCounters, cert_a: Material
) -> None:
    probe.fingerprints = ["1" * 64, "2" * 64, cert_a.fingerprint]
    sleeps: list[float] = []
    connector = envoy(
        tmp_path,
        probe,
        counters,
        sleeps,
        post_deploy_verify={"enabled": True, "endpoint": "envoy.internal:10000"},
        post_deploy_verify_attempts=4,
        post_deploy_verify_backoff=10_000_000,  # Go's nanoseconds: 10 ms
        post_deploy_verify_max_backoff="80ms",
    )
    result = connector.deploy(request(cert_a))
    assert result.success, result.message
    assert len(probe.calls) == 3
    assert sleeps == [0.01, 0.02]
    assert result.metadata["served_fingerprint"] == cert_a.fingerprint


def test_a_verify_that_never_matches_restores_every_file(
    tmp_path: Path, probe: FakeProbe, counters: DeployCounters, cert_a: Material
) -> None:
    for name in ("cert.pem", "key.pem", "chain.pem", "sds.json"):
        (tmp_path / name).write_text(SENTINEL)
    probe.fingerprints = ["0" * 64]
    connector = envoy(
        tmp_path,
        probe,
        counters,
        chain_filename="chain.pem",
        sds_config=True,
        post_deploy_verify={"enabled": True, "endpoint": "envoy.internal:10000"},
    )
    result = connector.deploy(request(cert_a))
    assert isinstance(result.error, VerifyFailed)
    assert result.outcome is DeployOutcome.ROLLED_BACK
    for name in ("cert.pem", "key.pem", "chain.pem", "sds.json"):
        assert (tmp_path / name).read_text() == SENTINEL, name
    assert counters.value(ROLLBACKS, "Envoy", "restored") == 1


def test_one_plan_a_file_that_cannot_be_written_leaves_every_previous_byte(
    tmp_path: Path, probe: FakeProbe, counters: DeployCounters, cert_a: Material
) -> None:
    (tmp_path / "cert.pem").write_text(SENTINEL)
    (tmp_path / "chain.pem").mkdir()  # the last file of the plan cannot be replaced
    result = envoy(tmp_path, probe, counters, chain_filename="chain.pem").deploy(request(cert_a))
    assert isinstance(result.error, PlanInvalid)
    assert (tmp_path / "cert.pem").read_text() == SENTINEL
    assert not (tmp_path / "key.pem").exists()
    assert counters.value(ATTEMPTS, "Envoy", "failure") == 1


def test_defaults_apply_when_read_and_validate_only_is_not_supported(tmp_path: Path, cert_a: Material) -> None:
    connector = EnvoyConnector.from_config({"cert_dir": str(tmp_path)})
    assert connector.config.paths == {
        FileRole.CERT: str(tmp_path / "cert.pem"),
        FileRole.KEY: str(tmp_path / "key.pem"),
    }
    assert not connector.sds_config
    build_connector("Envoy", None)  # a null config parses; validate_config then asks for cert_dir
    with pytest.raises(ValidateOnlyNotSupported):
        connector.validate_only(request(cert_a))
    assert connector.test().ok


@pytest.mark.parametrize(
    ("overrides", "field_name", "problem"),
    [
        ({"cert_filename": "sub/cert.pem"}, "cert_filename", "'/'"),
        ({"key_filename": "..\\key.pem"}, "key_filename", "'\\'"),
        ({"chain_filename": "../chain.pem"}, "chain_filename", "'/'"),
        ({"cert_filename": "sds.json", "sds_config": True}, "cert_filename", "SDS"),
        ({"cert_dir": None}, "cert_dir", "is required"),
        ({"sds_config": "yes"}, "sds_config", "true or false"),
    ],
)
def test_config_errors_name_the_field(tmp_path: Path, overrides: dict[str, Any], field_name: str, problem: str) -> None:
    with pytest.raises(TargetConfigError) as caught:
        build_connector("Envoy", {"cert_dir": str(tmp_path), **overrides}).validate_config()
    assert caught.value.field == field_name
    assert problem in str(caught.value)
