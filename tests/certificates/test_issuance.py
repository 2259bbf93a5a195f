"""End to end: a certificate created through the API is issued by the local CA (server key generation)."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from sqlalchemy import select

from certctl.certificates.models import CertificateVersion
from certctl.certificates.processor import IssuanceProcessor, mark_certificate_failed
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.issuers.connectors import ConnectorRegistry
from certctl.jobs.service import JobQueue
from tests.conftest import client_for
from tests.factories import add_profile, seed_inventory

BASE = {"owner_id": "o-alice", "team_id": "t-web", "issuer_id": "iss-local", "renewal_policy_id": "rp-default"}


@pytest.fixture
def setup(context_factory: Any) -> Any:
    clock = FrozenClock()
    context: AppContext = context_factory(clock, keygen_mode="server")
    seed_inventory(context)
    registry = ConnectorRegistry(context.db, context.cipher, clock, public_url="https://pki.example.test")
    queue = JobQueue(context.db, clock, on_terminal_failure=mark_certificate_failed)
    processor = IssuanceProcessor(context.db, clock, context.cipher, registry, queue, worker_id="w1")
    with client_for(context) as client:
        yield client, context, clock, processor, registry


def test_created_certificate_is_issued_by_the_local_ca_and_verifies(setup: Any, tmp_path: Path) -> None:
    client, context, _, processor, _ = setup
    cert = client.post(
        "/api/v1/certificates",
        json={"name": "web", "common_name": "web.example.com", "sans": ["web.example.com", "10.1.2.3"]} | BASE,
    ).json()
    assert cert["status"] == "RenewalInProgress"
    summary = processor.run(context.clock.now())
    assert (summary.claimed, summary.completed) == (1, 1)

    issued = client.get(f"/api/v1/certificates/{cert['id']}").json()
    assert issued["status"] == "Active"
    assert issued["expires_at"] is not None
    versions = client.get(f"/api/v1/certificates/{cert['id']}/versions").json()
    assert versions["total"] == 1
    assert "encrypted_private_key" not in versions["data"][0]
    assert "PRIVATE KEY" not in str(versions)
    with context.db.begin() as session:  # the key is kept, but only encrypted
        stored = session.scalars(select(CertificateVersion)).one()
        assert stored.encrypted_private_key is not None
        assert b"PRIVATE KEY" in context.cipher.decrypt(stored.encrypted_private_key)

    pem = client.get(f"/api/v1/certificates/{cert['id']}/export/pem").json()
    (tmp_path / "leaf.pem").write_text(pem["cert_pem"])
    (tmp_path / "ca.pem").write_text(pem["chain_pem"])
    at = str(int(context.clock.now().timestamp()))  # verify at the injected clock's time
    verify = subprocess.run(
        ["openssl", "verify", "-attime", at, "-CAfile", "ca.pem", "leaf.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    leaf = x509.load_pem_x509_certificate(pem["cert_pem"].encode())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["web.example.com"]
    assert format(leaf.serial_number, "x") == versions["data"][0]["serial_number"]
    jobs = client.get("/api/v1/jobs", params={"certificate_id": cert["id"]}).json()
    assert [(j["status"], j["attempts"]) for j in jobs["data"]] == [("Completed", 1)]


def test_the_ca_survives_a_restart(setup: Any, context_factory: Any) -> None:
    client, context, clock, processor, _ = setup
    for name in ("one", "two"):
        client.post("/api/v1/certificates", json={"name": name, "common_name": f"{name}.example.com"} | BASE)
        if name == "one":
            processor.run(clock.now())
    fresh = ConnectorRegistry(context.db, context.cipher, clock)  # a new process: nothing cached
    second = IssuanceProcessor(context.db, clock, context.cipher, fresh, JobQueue(context.db, clock), worker_id="w2")
    second.run(clock.now())
    chains = {
        v["certificate_id"]: v["pem_chain"]
        for c in client.get("/api/v1/certificates").json()["data"]
        for v in client.get(f"/api/v1/certificates/{c['id']}/versions").json()["data"]
    }
    issuers = {x509.load_pem_x509_certificates(p.encode())[1].fingerprint(hashes.SHA256()) for p in chains.values()}
    assert len(chains) == 2
    assert len(issuers) == 1


def test_profile_violation_fails_the_job_for_good_and_the_certificate(setup: Any) -> None:
    client, context, clock, processor, _ = setup
    add_profile(context, "prof-internal")
    with context.db.begin() as session:
        from certctl.profiles.models import CertificateProfile

        session.get(CertificateProfile, "prof-internal").required_san_patterns = [r".*\.internal\.example\.com"]
    cert = client.post(
        "/api/v1/certificates",
        json={"name": "bad", "common_name": "bad.example.com", "certificate_profile_id": "prof-internal"} | BASE,
    ).json()
    processor.run(clock.now())
    job = client.get("/api/v1/jobs", params={"certificate_id": cert["id"]}).json()["data"][0]
    assert job["status"] == "Failed"
    assert job["next_retry_at"] is None
    assert "required SAN pattern of profile 'prof-internal'" in job["last_error"]
    failed = client.get(f"/api/v1/certificates/{cert['id']}").json()
    assert failed["status"] == "Failed"
    clock.advance(timedelta(days=1))
    assert client.post(f"/api/v1/jobs/{job['id']}/retry").status_code == 200
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 200
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 409
