"""CSR, Deployment and Validation jobs against the in-memory control plane, with real files and real
connectors (§A1.5-§A1.7; A4 cases 5, 6, 19-22, 71, 73)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from certctl.agent.jobs import split_chain
from certctl.agent.keys import generate_private_key, private_key_pem
from certctl.agent.protocol import WorkItem
from certctl.agent.verify import VerifyReport
from certctl.deploy.verify import certificate_fingerprint
from tests.agent.conftest import Harness


def csr_item(**overrides: Any) -> WorkItem:
    values: dict[str, Any] = {
        "id": "job-csr",
        "type": "Issuance",
        "status": "AwaitingCSR",
        "certificate_id": "mc-test-cert",
        "common_name": "test.example.com",
        "sans": ["test.example.com", "alt.example.com", "alice@example.com"],
    }
    return WorkItem.model_validate(values | overrides)


def deploy_item(root: Path, **overrides: Any) -> WorkItem:
    site = root / "site"
    site.mkdir(exist_ok=True)
    config = {
        "cert_path": str(site / "cert.pem"),
        "chain_path": str(site / "chain.pem"),
        "key_path": str(site / "key.pem"),
    }
    values: dict[str, Any] = {
        "id": "job-deploy",
        "type": "Deployment",
        "status": "Running",
        "certificate_id": "mc-test-cert",
        "target_id": "tgt-files",
        "target_type": "Files",
        "target_config": config,
    }
    return WorkItem.model_validate(values | overrides)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def issue_with_agent_key(h: Harness) -> str:
    """Run a CSR job; the fake server signs it. Returns the leaf + chain PEM."""
    h.jobs.run(csr_item())
    return h.server.certificates["mc-test-cert"]


# -- split_chain (A4 case 6) ------------------------------------------------------------------------------


def test_split_chain(harness: Harness) -> None:
    leaf = harness.server.ca.sign(generate_private_key().public_key(), "web")
    cert, chain = split_chain(leaf + harness.server.ca.cert_pem)
    assert "CERTIFICATE" in cert
    assert "CERTIFICATE" in chain
    assert cert != chain
    assert split_chain(leaf) == (leaf, "")
    assert split_chain("not pem at all") == ("not pem at all", "")


# -- CSR job (A4 cases 19-21, 73, 74) ------------------------------------------------------------------------


def test_csr_job_happy_path(harness: Harness) -> None:
    harness.jobs.run(csr_item())
    (call,) = harness.server.calls("csr")
    assert "CERTIFICATE REQUEST" in call.body["csr_pem"]
    assert call.body["certificate_id"] == "mc-test-cert"
    key_path = harness.keys.key_path("mc-test-cert")
    assert mode_of(key_path) == 0o600
    assert mode_of(harness.keys.key_dir) == 0o700
    assert key_path.read_text().startswith("-----BEGIN EC PRIVATE KEY-----")
    csr = x509.load_pem_x509_csr(call.body["csr_pem"].encode())
    key = load_pem_private_key(key_path.read_bytes(), None)
    assert csr.public_key() == key.public_key()
    assert harness.server.calls("status") == []  # the server moves a CSR job on by itself
    assert harness.journal.pending_csr("job-csr") is None


def test_csr_job_with_an_empty_common_name_fails_before_any_key(harness: Harness) -> None:
    harness.jobs.run(csr_item(common_name="  "))
    assert harness.server.statuses("job-csr")[-1] == {"status": "Failed", "error": "empty common name"}
    assert not harness.keys.key_dir.exists() or not any(harness.keys.key_dir.iterdir())
    assert harness.server.calls("csr") == []


def test_a_rejected_csr_fails_the_job_and_restores_the_deployed_key(harness: Harness) -> None:
    deployed = private_key_pem(generate_private_key())
    harness.keys.install("mc-test-cert", deployed)
    harness.server.fail["csr"] = 400
    harness.server.fail_body["csr"] = {"error": "Bad Request", "message": "profile allows RSA only"}
    harness.jobs.run(csr_item())
    last = harness.server.statuses("job-csr")[-1]
    assert last["status"] == "Failed"
    assert "CSR rejected" in last["error"]
    assert "profile allows RSA only" in last["error"]
    assert harness.keys.key_path("mc-test-cert").read_bytes() == deployed
    assert not harness.keys.previous_path("mc-test-cert").exists()


def test_a_lost_csr_answer_sends_the_same_csr_again_with_the_same_key(harness: Harness) -> None:
    from certctl.agent.errors import ServerUnreachable

    harness.server.down = True
    with pytest.raises(ServerUnreachable):
        harness.jobs.run(csr_item())
    key_after_first = harness.keys.key_path("mc-test-cert").read_bytes()
    harness.server.down = False
    harness.jobs.run(csr_item())
    first, second = harness.server.calls("csr")
    assert first.body["csr_pem"] == second.body["csr_pem"]
    assert harness.keys.key_path("mc-test-cert").read_bytes() == key_after_first
    assert not harness.keys.previous_path("mc-test-cert").exists()
    assert harness.journal.pending_csr("job-csr") is None


@pytest.mark.parametrize(
    ("algorithm", "kind", "size"),
    [("ECDSA-P384", ec.EllipticCurvePrivateKey, 384), ("RSA-2048", rsa.RSAPrivateKey, 2048)],
)
def test_the_work_items_key_algorithm_is_used(harness: Harness, algorithm: str, kind: type, size: int) -> None:
    harness.jobs.run(csr_item(key_algorithm=algorithm))
    key = load_pem_private_key(harness.keys.key_path("mc-test-cert").read_bytes(), None)
    assert isinstance(key, kind)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    assert key.key_size == size


def test_an_unknown_key_algorithm_fails_the_job(harness: Harness) -> None:
    harness.jobs.run(csr_item(key_algorithm="DSA-1024"))
    assert "key generation failed" in harness.server.statuses("job-csr")[-1]["error"]
    assert harness.server.calls("csr") == []


def test_a_certificate_id_with_path_tricks_fails_without_writing(harness: Harness) -> None:
    harness.jobs.run(csr_item(certificate_id="../../etc/cron.d/x"))
    assert "not usable as a key file name" in harness.server.statuses("job-csr")[-1]["error"]


# -- Deployment job (A4 cases 22, 71, 73) -----------------------------------------------------------------


def test_deployment_happy_path(harness: Harness) -> None:
    pem = issue_with_agent_key(harness)
    item = deploy_item(harness.root)
    harness.jobs.run(item)
    site = harness.root / "site"
    leaf, chain = split_chain(pem)
    assert (site / "cert.pem").read_text() == leaf
    assert (site / "chain.pem").read_text() == chain
    assert (site / "key.pem").read_bytes() == harness.keys.key_path("mc-test-cert").read_bytes()
    assert mode_of(site / "key.pem") == 0o600
    statuses = harness.server.statuses("job-deploy")
    assert [s["status"] for s in statuses] == ["Running", "Completed"]
    result = statuses[-1]["result"]
    assert result["stage"] == "done"
    assert result["idempotent"] is False
    assert result["rolled_back"] is False
    assert harness.server.calls("verify") == []  # no endpoint configured: nothing to verify
    assert list(harness.journal.claimed_work()) == []


def test_a_second_deployment_of_the_same_certificate_is_idempotent(harness: Harness) -> None:
    issue_with_agent_key(harness)
    harness.jobs.run(deploy_item(harness.root))
    harness.jobs.run(deploy_item(harness.root, id="job-again"))
    assert harness.server.statuses("job-again")[-1]["result"]["idempotent"] is True


def test_deployment_verifies_the_endpoint_and_reports_it(harness: Harness) -> None:
    pem = issue_with_agent_key(harness)
    expected = certificate_fingerprint(pem)
    harness.probe.fingerprint = expected
    item = deploy_item(harness.root)
    config = dict(item.target_config) | {"host": "web.example.com", "port": 8443}  # type: ignore[arg-type]
    harness.jobs.run(deploy_item(harness.root, target_config=config))
    (verify,) = harness.server.calls("verify")
    assert verify.path == "/api/v1/jobs/job-deploy/verify"
    assert verify.body == VerifyReport("tgt-files", expected, expected, True).as_json()
    assert harness.probe.calls[0].host == "web.example.com"
    assert harness.probe.calls[0].port == 8443
    assert harness.sleeps[0] == 2.0  # CERTCTL_VERIFY_DELAY before the probe
    routes = [r.route for r in harness.server.requests if r.route in ("verify", "status")]
    assert routes[-2:] == ["verify", "status"]  # verified before Completed


def test_a_failed_probe_is_reported_too(harness: Harness) -> None:
    issue_with_agent_key(harness)
    config = dict(deploy_item(harness.root).target_config) | {"verify_endpoint": "127.0.0.1:1"}  # type: ignore[arg-type]
    harness.jobs.run(deploy_item(harness.root, target_config=config))
    (verify,) = harness.server.calls("verify")
    assert verify.body["verified"] is False
    assert verify.body["actual_fingerprint"] == ""
    assert "connection refused" in verify.body["error"]
    assert harness.server.statuses("job-deploy")[-1]["status"] == "Completed"  # best effort


def test_cert_fetch_failure_fails_the_job(harness: Harness) -> None:
    harness.server.fail["certificate"] = 500
    harness.jobs.run(deploy_item(harness.root))
    assert harness.server.statuses("job-deploy")[-1]["error"].startswith("cert fetch failed: server returned 500")


def test_a_missing_key_fails_the_job(harness: Harness) -> None:
    leaf = harness.server.ca.sign(generate_private_key().public_key(), "web")
    harness.server.certificates["mc-test-cert"] = leaf
    harness.jobs.run(deploy_item(harness.root))
    assert harness.server.statuses("job-deploy")[-1]["error"].startswith("key read failed")


def test_an_unknown_target_type_fails_the_job(harness: Harness) -> None:
    issue_with_agent_key(harness)
    harness.jobs.run(deploy_item(harness.root, target_type="frobnicator-9000"))
    error = harness.server.statuses("job-deploy")[-1]["error"]
    assert error == "connector init failed: unsupported target type: frobnicator-9000"


def test_an_injected_reload_command_is_refused_without_running_anything(harness: Harness) -> None:
    issue_with_agent_key(harness)
    site = harness.root / "site"
    site.mkdir()
    config = {
        "cert_path": str(site / "cert.pem"),
        "key_path": str(site / "key.pem"),
        "validate_command": "nginx -t",
        "reload_command": "nginx -s reload; rm -rf /",
    }
    harness.jobs.run(deploy_item(harness.root, target_type="NGINX", target_config=config))
    last = harness.server.statuses("job-deploy")[-1]
    assert last["status"] == "Failed"
    assert last["error"].startswith("invalid target config: ")
    assert "reload_command" in last["error"]
    assert harness.runner.calls == []
    assert not (site / "cert.pem").exists()


def test_a_failing_validate_command_rolls_back_and_reports_the_result(harness: Harness) -> None:
    issue_with_agent_key(harness)
    site = harness.root / "site"
    site.mkdir()
    (site / "cert.pem").write_text("ORIGINAL\n")
    config = {"cert_path": str(site / "cert.pem"), "validate_command": "false"}
    harness.jobs.run(deploy_item(harness.root, target_config=config))
    last = harness.server.statuses("job-deploy")[-1]
    assert last["status"] == "Failed"
    assert last["error"].startswith("deployment failed: ")
    assert last["result"]["stage"] == "validate"
    assert last["result"]["validate_ok"] is False
    assert (site / "cert.pem").read_text() == "ORIGINAL\n"


def test_after_a_failed_renewal_the_deployed_certificate_redeploys_with_prev(harness: Harness) -> None:
    """A4 case 73: a new CSR moves the key to .prev; issuance fails; the live cert still deploys."""
    first_pem = issue_with_agent_key(harness)
    harness.jobs.run(deploy_item(harness.root))
    first_key = harness.keys.key_path("mc-test-cert").read_bytes()

    harness.jobs.run(csr_item(id="job-renew", type="Renewal"))  # signed: new key in .key, old one in .key.prev
    assert harness.keys.previous_path("mc-test-cert").read_bytes() == first_key
    assert mode_of(harness.keys.previous_path("mc-test-cert")) == 0o600
    harness.server.certificates["mc-test-cert"] = first_pem  # the server redeploys the version still live
    (harness.root / "site" / "cert.pem").write_text("DRIFTED\n")
    harness.jobs.run(deploy_item(harness.root, id="job-redeploy"))
    assert harness.server.statuses("job-redeploy")[-1]["status"] == "Completed"
    assert (harness.root / "site" / "key.pem").read_bytes() == first_key


def test_a_stale_job_is_dropped_without_deploying(harness: Harness) -> None:
    issue_with_agent_key(harness)
    harness.server.stale_jobs.add("job-deploy")
    harness.journal.save_work("job-deploy", {"id": "job-deploy"})
    harness.jobs.run(deploy_item(harness.root))
    assert [s["status"] for s in harness.server.statuses("job-deploy")] == ["Running"]
    assert harness.server.calls("certificate") == []
    assert list(harness.journal.claimed_work()) == []


def test_a_server_generated_key_is_written_0600_and_used(harness: Harness) -> None:
    key = generate_private_key()
    harness.server.certificates["mc-test-cert"] = harness.server.ca.sign(key.public_key(), "web")
    harness.server.delivered_keys["mc-test-cert"] = private_key_pem(key).decode()
    harness.jobs.run(deploy_item(harness.root, private_key_available=True))
    assert harness.server.statuses("job-deploy")[-1]["status"] == "Completed"
    assert mode_of(harness.keys.key_path("mc-test-cert")) == 0o600
    assert (harness.root / "site" / "key.pem").read_bytes() == private_key_pem(key)


def test_a_deployment_without_target_type_completes_after_the_key_check(harness: Harness) -> None:
    issue_with_agent_key(harness)
    harness.jobs.run(deploy_item(harness.root, target_type=None, target_config=None))
    assert [s["status"] for s in harness.server.statuses("job-deploy")] == ["Running", "Completed"]


def test_unknown_job_types_are_ignored(harness: Harness) -> None:
    harness.jobs.run(WorkItem(id="job-x", type="Revocation", status="Pending"))
    assert harness.server.requests == []


# -- Validation job ----------------------------------------------------------------------------------------


def test_a_valid_target_passes_its_checks(harness: Harness) -> None:
    item = deploy_item(harness.root, id="job-test", type="Validation")
    harness.jobs.run(item)
    last = harness.server.statuses("job-test")[-1]
    assert last["status"] == "Completed"
    names = [c["name"] for c in last["result"]["checks"]]
    assert names[0] == "config"
    assert all(c["ok"] for c in last["result"]["checks"])


def test_an_invalid_target_fails_its_checks(harness: Harness) -> None:
    config = {"cert_path": "relative/cert.pem"}
    harness.jobs.run(deploy_item(harness.root, id="job-test", type="Validation", target_config=config))
    last = harness.server.statuses("job-test")[-1]
    assert last["status"] == "Failed"
    assert last["result"]["checks"] == [
        {"name": "config", "ok": False, "message": last["result"]["checks"][0]["message"]}
    ]
    assert "cert_path" in last["error"]


def test_validation_probes_the_endpoint_when_one_is_known(harness: Harness) -> None:
    config = dict(deploy_item(harness.root).target_config) | {"verify_endpoint": "127.0.0.1:1"}  # type: ignore[arg-type]
    harness.jobs.run(deploy_item(harness.root, id="job-test", type="Validation", target_config=config))
    last = harness.server.statuses("job-test")[-1]
    assert last["status"] == "Failed"
    assert last["result"]["checks"][-1]["name"] == "tls_probe"
