"""Issuance under an intermediate: a tree-mode issuer signs leaves with its issuing CA and returns the full
chain, which validates (RFC 5280, name constraints included) with cryptography's verifier and openssl."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.verification import VerificationError

from certctl.certificates.processor import IssuanceProcessor, mark_certificate_failed
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.issuers.connectors import ConnectorRegistry
from certctl.jobs.service import JobQueue
from certctl.pki.local_ca import LocalCA
from tests.conftest import client_for
from tests.factories import seed_inventory
from tests.intermediates.helpers import load, make_root, openssl_verify, unchecked_leaf, verify_server_chain
from tests.pki.test_interop import assert_clean, lint, lint_chain

URL = "/api/v1/issuers/iss-local/intermediates"
BASE = {"owner_id": "o-alice", "team_id": "t-web", "issuer_id": "iss-local", "renewal_policy_id": "rp-default"}


@pytest.fixture
def tree(context_factory: Any) -> Any:
    """Root (permits corp.example, excludes bad.corp.example) → Policy CA → Issuing CA 1 (eng.corp.example),
    and iss-local in tree mode issuing with Issuing CA 1."""
    clock = FrozenClock()
    context: AppContext = context_factory(clock, keygen_mode="server")
    seed_inventory(context)
    registry = ConnectorRegistry(context.db, context.cipher, clock)
    queue = JobQueue(context.db, clock, on_terminal_failure=mark_certificate_failed)
    processor = IssuanceProcessor(context.db, clock, context.cipher, registry, queue, worker_id="w1")
    with client_for(context) as client:
        root_pem, key_pem = make_root(clock.now(), permitted=("corp.example",), excluded=("bad.corp.example",))
        root = client.post(URL, json={"name": "root", "root_cert_pem": root_pem, "key_pem": key_pem}).json()
        policy = client.post(URL, json={"name": "Policy CA", "parent_ca_id": root["id"], "algorithm": "ECDSA-P384"})
        assert policy.status_code == 201, policy.text
        issuing = client.post(
            URL,
            json={
                "name": "Issuing CA 1",
                "parent_ca_id": policy.json()["id"],
                "algorithm": "RSA-3072",
                "name_constraints": [{"permitted": ["eng.corp.example"], "excluded": ["bad.corp.example"]}],
                "ocsp_responder_url": "http://ocsp.corp.example/ica1",
            },
        )
        assert issuing.status_code == 201, issuing.text
        switched = client.put(
            "/api/v1/issuers/iss-local",
            json={"hierarchy_mode": "tree", "config": {"issuing_ca_id": issuing.json()["id"]}},
        )
        assert switched.status_code == 200, switched.text
        yield client, context, clock, processor, [root, policy.json(), issuing.json()]


def _issue(
    client: Any, processor: IssuanceProcessor, clock: FrozenClock, name: str, common_name: str
) -> dict[str, Any]:
    cert = client.post("/api/v1/certificates", json={"name": name, "common_name": common_name} | BASE).json()
    processor.run(clock.now())
    return dict(cert)


def test_leaf_is_signed_by_the_issuing_ca_with_the_full_chain(tree: Any, tmp_path: Path) -> None:
    client, _, clock, processor, (root, policy, issuing) = tree
    cert = _issue(client, processor, clock, "web", "web.eng.corp.example")
    assert client.get(f"/api/v1/certificates/{cert['id']}").json()["status"] == "Active"
    pem = client.get(f"/api/v1/certificates/{cert['id']}/export/pem").json()
    chain = load(pem["chain_pem"])
    expected = [load(ca["cert_pem"])[0] for ca in (issuing, policy, root)]
    assert chain == expected  # issuing CA → … → root
    leaf = load(pem["cert_pem"])[0]
    assert leaf.issuer == expected[0].subject

    verify_server_chain(leaf, chain[:-1], chain[-1], clock.now(), "web.eng.corp.example")
    intermediates = "".join(ca["cert_pem"] for ca in (issuing, policy))
    result = openssl_verify(tmp_path, root["cert_pem"], intermediates, pem["cert_pem"], clock.now())
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_leaf_outside_the_permitted_names_is_refused_naming_the_constraint(tree: Any) -> None:
    client, _, clock, processor, _ = tree
    cert = _issue(client, processor, clock, "evil", "evil.example")
    job = client.get("/api/v1/jobs", params={"certificate_id": cert["id"]}).json()["data"][0]
    assert job["status"] == "Failed"
    assert job["next_retry_at"] is None
    assert (
        'dNSName "evil.example" is outside the permitted subtree "eng.corp.example" of CA "Issuing CA 1"'
        in (job["last_error"])
    )
    excluded = _issue(client, processor, clock, "bad", "x.bad.corp.example")
    job = client.get("/api/v1/jobs", params={"certificate_id": excluded["id"]}).json()["data"][0]
    assert job["status"] == "Failed"
    assert "bad.corp.example" in job["last_error"]
    assert client.get(f"/api/v1/certificates/{cert['id']}").json()["status"] == "Failed"


def test_the_verifier_enforces_the_constraints_we_write(tree: Any) -> None:
    """A leaf signed past our check (straight with the issuing key) is refused by RFC 5280 validation too:
    the constraints are in the certificates, not only in certctl."""
    _, context, clock, _, (root, policy, issuing) = tree
    connector = context.connectors.get("iss-local")
    assert isinstance(connector, LocalCA)
    chain = [load(ca["cert_pem"])[0] for ca in (issuing, policy)]
    assert connector.certificate == chain[0]
    for outside in ("evil.example", "x.bad.corp.example", "www.corp.example"):
        leaf = unchecked_leaf(chain[0], connector.signing_key, outside, clock.now())
        with pytest.raises(VerificationError):
            verify_server_chain(leaf, chain, load(root["cert_pem"])[0], clock.now(), outside)
    inside = unchecked_leaf(chain[0], connector.signing_key, "api.eng.corp.example", clock.now())
    verify_server_chain(inside, chain, load(root["cert_pem"])[0], clock.now(), "api.eng.corp.example")


def test_retiring_the_issuing_ca_is_refused_while_it_issues(tree: Any) -> None:
    client, _, clock, processor, (_, _, issuing) = tree
    retire = f"/api/v1/intermediates/{issuing['id']}/retire"
    assert client.post(retire, json={}).json()["state"] == "retiring"
    blocked = client.post(retire, json={"confirm": True})
    assert blocked.status_code == 409
    assert "issuing CA" in blocked.json()["message"]
    # Retiring does not stop issuance while the issuer still points at it (drain, then switch).
    cert = _issue(client, processor, clock, "still", "still.eng.corp.example")
    assert client.get(f"/api/v1/certificates/{cert['id']}").json()["status"] == "Active"
    assert client.put("/api/v1/issuers/iss-local", json={"hierarchy_mode": "single"}).status_code == 200
    live = client.post(retire, json={"confirm": True})
    assert live.status_code == 409
    assert "1 unexpired, unrevoked certificate version" in live.json()["message"]


def test_pkilint_finds_no_errors_in_the_intermediates(tree: Any) -> None:
    _, _, _, _, cas = tree
    certs = [load(ca["cert_pem"])[0] for ca in cas]
    for issuer, subject in itertools.pairwise(certs):
        assert_clean(lint(subject))
        assert_clean(lint_chain(issuer, subject))
    with pytest.raises(x509.ExtensionNotFound):
        certs[1].extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    aia = certs[2].extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_location.value for d in aia] == ["http://ocsp.corp.example/ica1"]
