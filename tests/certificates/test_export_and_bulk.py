from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from fastapi.testclient import TestClient

from certctl.clock import FrozenClock
from certctl.context import AppContext
from tests.conftest import client_for
from tests.factories import seed_inventory

BASE = {"owner_id": "o-alice", "team_id": "t-web", "issuer_id": "iss-local", "renewal_policy_id": "rp-default"}


@pytest.fixture
def api(context_factory: Any) -> Any:
    clock = FrozenClock()
    context: AppContext = context_factory(clock, cert_export_rate_limit_per_actor_hr=2)
    seed_inventory(context)
    with client_for(context) as client:
        yield client, context, clock


def _chain(tmp_path: Path) -> str:
    """A CA and a leaf it signed, made by openssl, as leaf-then-chain PEM."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)

    run(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "30",
        "-subj",
        "/CN=Test CA",
    )
    run(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=leaf.example.com",
    )
    run(
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "10",
    )
    return (tmp_path / "leaf.pem").read_text() + (tmp_path / "ca.pem").read_text()


def _import(client: TestClient, name: str, pem: str) -> dict[str, Any]:
    response = client.post(
        "/api/v1/certificates", json={"name": name, "common_name": "leaf.example.com", "certificate_pem": pem} | BASE
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_pem_export_splits_leaf_and_chain(api: Any, tmp_path: Path) -> None:
    client, _, _ = api
    cert = _import(client, "leaf", _chain(tmp_path))
    body = client.get(f"/api/v1/certificates/{cert['id']}/export/pem").json()
    assert x509.load_pem_x509_certificate(body["cert_pem"].encode()).subject.rfc4514_string() == "CN=leaf.example.com"
    assert x509.load_pem_x509_certificate(body["chain_pem"].encode()).subject.rfc4514_string() == "CN=Test CA"
    assert body["full_pem"] == body["cert_pem"] + body["chain_pem"]
    download = client.get(f"/api/v1/certificates/{cert['id']}/export/pem", params={"download": "true"})
    assert download.headers["content-type"].startswith("application/x-pem-file")
    assert "attachment" in download.headers["content-disposition"]
    audit = client.get("/api/v1/audit", params={"action": "export_pem"}).json()
    assert audit["total"] == 2


def test_pkcs12_export_holds_certificates_only_and_is_rate_limited_per_actor(api: Any, tmp_path: Path) -> None:
    client, context, clock = api
    cert = _import(client, "p12", _chain(tmp_path))
    url = f"/api/v1/certificates/{cert['id']}/export/pkcs12"
    first = client.post(url, json={"password": "s3cret"})
    assert first.status_code == 200
    key, leaf, extra = pkcs12.load_key_and_certificates(first.content, b"s3cret")
    assert key is None  # a trust bundle: the private key never leaves certctl this way
    subjects = sorted(c.subject.rfc4514_string() for c in [*extra, *([leaf] if leaf else [])])
    assert subjects == ["CN=Test CA", "CN=leaf.example.com"]
    assert client.post(url, json={"password": ""}).status_code == 200
    limited = client.post(url, json={"password": ""})
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    with client_for(context, "operator") as other:  # another key has its own budget
        assert other.post(url, json={"password": ""}).status_code == 200
    from datetime import timedelta

    clock.advance(timedelta(hours=1))
    assert client.post(url, json={"password": ""}).status_code == 200


def test_export_without_a_version_is_404(api: Any) -> None:
    client, _, _ = api
    cert = client.post("/api/v1/certificates", json={"name": "fresh", "common_name": "fresh.example.com"} | BASE)
    assert client.get(f"/api/v1/certificates/{cert.json()['id']}/export/pem").status_code == 404


def test_bulk_renew_walks_every_match_and_skips_what_cannot_renew(api: Any, tmp_path: Path) -> None:
    client, _, _ = api
    for i in range(3):
        client.post(
            "/api/v1/certificates",
            json={"name": f"a{i}", "common_name": f"a{i}.example.com", "status": "Active"} | BASE,
        )
    busy = client.post("/api/v1/certificates", json={"name": "busy", "common_name": "busy.example.com"} | BASE)
    assert busy.json()["status"] == "RenewalInProgress"
    result = client.post("/api/v1/certificates/bulk-renew", json={"filter": {"owner_id": "o-alice"}}).json()
    assert (result["total_matched"], result["total_enqueued"], result["total_skipped"]) == (4, 3, 1)
    assert len(result["enqueued_jobs"]) == 3
    assert client.post("/api/v1/certificates/bulk-renew", json={}).status_code == 400


def test_bulk_reassign(api: Any) -> None:
    client, _, _ = api
    ids = [
        client.post(
            "/api/v1/certificates",
            json={"name": f"r{i}", "common_name": f"r{i}.example.com", "status": "Active"} | BASE,
        ).json()["id"]
        for i in range(2)
    ]
    client.post("/api/v1/owners", json={"id": "o-bob", "name": "Bob", "team_id": "t-web"})
    result = client.post(
        "/api/v1/certificates/bulk-reassign", json={"certificate_ids": [*ids, "missing"], "owner_id": "o-bob"}
    ).json()
    assert (result["total_matched"], result["total_reassigned"], result["total_failed"]) == (2, 2, 1)
    again = client.post("/api/v1/certificates/bulk-reassign", json={"certificate_ids": ids, "owner_id": "o-bob"})
    assert again.json()["total_skipped"] == 2
    unknown = client.post("/api/v1/certificates/bulk-reassign", json={"certificate_ids": ids, "owner_id": "nobody"})
    assert unknown.status_code == 400
