"""Two worker processes on one PostgreSQL queue: every certificate is issued once, by one shared CA."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from sqlalchemy import func, select

from certctl.certificates.models import CertificateVersion
from certctl.clock import SystemClock
from certctl.context import AppContext
from certctl.jobs.models import Job
from tests.conftest import TEST_ENCRYPTION_KEY, client_for
from tests.factories import seed_inventory

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE = {"owner_id": "o-alice", "team_id": "t-web", "issuer_id": "iss-local", "renewal_policy_id": "rp-default"}


def test_two_processes_issue_every_certificate_exactly_once(context_factory: Any, tmp_path: Path) -> None:
    context: AppContext = context_factory(SystemClock(), keygen_mode="server")
    if context.db.dialect != "postgresql":
        pytest.skip("the multi-replica guarantee is a PostgreSQL one; SQLite is single-node by design")
    url = context.db.engine.url.render_as_string(hide_password=False)
    seed_inventory(context)
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.certificates.issue_worker",
                url,
                f"proc-{i}",
                str(tmp_path / f"w{i}"),
                TEST_ENCRYPTION_KEY,
            ],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        with client_for(context) as client:
            for i in range(40):
                response = client.post(
                    "/api/v1/certificates", json={"name": f"c{i}", "common_name": f"c{i}.example.com"} | BASE
                )
                assert response.status_code == 201
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        done = []
        for worker in workers:
            out, _ = worker.communicate(timeout=120)
            assert worker.returncode == 0
            done.append(int(out.split()[0]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert sum(done) == 40
    with context.db.begin() as session:
        per_cert = session.execute(
            select(CertificateVersion.certificate_id, func.count()).group_by(CertificateVersion.certificate_id)
        ).all()
        assert len(per_cert) == 40
        assert {count for _, count in per_cert} == {1}
        assert set(session.scalars(select(Job.attempts))) == {1}
        chains = session.scalars(select(CertificateVersion.pem_chain)).all()
    issuers = {x509.load_pem_x509_certificates(c.encode())[1].fingerprint(hashes.SHA256()) for c in chains}
    assert len(issuers) == 1  # both processes raced to create the CA; one CA won and both signed with it
