"""A child CA whose key is generated in a PKCS#11 token (SoftHSM, session fixtures from tests/hsm.py): it
signs leaves through a tree-mode issuer, the chain validates with cryptography's verifier and openssl, and
the database holds only the reference, never key bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from certctl.certificates.processor import IssuanceProcessor, mark_certificate_failed
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.intermediates.models import IntermediateCA
from certctl.issuers.connectors import ConnectorRegistry
from certctl.jobs.service import JobQueue
from certctl.pki.pkcs11 import load_signing_key
from tests.conftest import client_for
from tests.factories import seed_inventory
from tests.hsm import new_label, token_ref
from tests.intermediates.helpers import load, make_root, openssl_verify, verify_server_chain

URL = "/api/v1/issuers/iss-local/intermediates"
BASE = {"owner_id": "o-alice", "team_id": "t-web", "issuer_id": "iss-local", "renewal_policy_id": "rp-default"}


def test_child_ca_with_a_token_key_issues_a_chain_that_verifies(context_factory: Any, pin: str, tmp_path: Path) -> None:
    clock = FrozenClock()
    context: AppContext = context_factory(clock, keygen_mode="server")
    seed_inventory(context)
    queue = JobQueue(context.db, clock, on_terminal_failure=mark_certificate_failed)
    registry = ConnectorRegistry(context.db, context.cipher, clock)
    processor = IssuanceProcessor(context.db, clock, context.cipher, registry, queue, worker_id="w1")
    reference = token_ref(new_label())
    with client_for(context) as client:
        root_pem, key_pem = make_root(clock.now(), permitted=("corp.example",))
        root = client.post(URL, json={"name": "root", "root_cert_pem": root_pem, "key_pem": key_pem})
        assert root.status_code == 201, root.text
        created = client.post(
            URL,
            json={
                "name": "HSM Issuing CA",
                "parent_ca_id": root.json()["id"],
                "algorithm": "ECDSA-P256",
                "key_driver_id": reference,
                "name_constraints": [{"permitted": ["hsm.corp.example"]}],
            },
        )
        assert created.status_code == 201, created.text
        child = created.json()
        assert child["key_driver_id"] == reference
        child_cert = load(child["cert_pem"])[0]
        # The key was made in the token: the token's public half is the one certified.
        assert load_signing_key(reference).public_key() == child_cert.public_key()
        with context.db.read() as session:
            row = session.scalars(select(IntermediateCA).where(IntermediateCA.id == child["id"])).one()
            assert not row.encrypted_key  # NULL: no key byte in the database

        switched = client.put(
            "/api/v1/issuers/iss-local", json={"hierarchy_mode": "tree", "config": {"issuing_ca_id": child["id"]}}
        )
        assert switched.status_code == 200, switched.text
        cert = client.post(
            "/api/v1/certificates", json={"name": "web", "common_name": "web.hsm.corp.example"} | BASE
        ).json()
        processor.run(clock.now())
        assert client.get(f"/api/v1/certificates/{cert['id']}").json()["status"] == "Active"
        exported = client.get(f"/api/v1/certificates/{cert['id']}/export/pem").json()

    leaf = load(exported["cert_pem"])[0]
    chain = load(exported["chain_pem"])
    assert chain == [child_cert, load(root_pem)[0]]
    assert leaf.issuer == child_cert.subject
    verify_server_chain(leaf, chain[:-1], chain[-1], clock.now(), "web.hsm.corp.example")
    result = openssl_verify(tmp_path, root_pem, child["cert_pem"], exported["cert_pem"], clock.now())
    assert result.returncode == 0, result.stdout + result.stderr
