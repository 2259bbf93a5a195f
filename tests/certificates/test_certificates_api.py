from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from certctl.clock import FrozenClock
from certctl.context import AppContext
from tests.conftest import client_for
from tests.factories import add_agent, add_profile, add_target, seed_inventory

BASE = {"owner_id": "o-alice", "team_id": "t-web", "issuer_id": "iss-local", "renewal_policy_id": "rp-default"}


@pytest.fixture
def api(context_factory: Any) -> Any:
    clock = FrozenClock()
    context: AppContext = context_factory(clock)
    seed_inventory(context)
    with client_for(context) as client:
        yield client, context, clock


def create(client: TestClient, name: str, **extra: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/certificates", json={"name": name, "common_name": f"{name}.example.com"} | BASE | extra
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def jobs_of(context: AppContext, cert_id: str) -> list[Any]:
    from sqlalchemy import select

    from certctl.jobs.models import Job

    with context.db.begin() as session:
        return list(session.scalars(select(Job).where(Job.certificate_id == cert_id).order_by(Job.created_at)))


def test_creating_a_certificate_starts_issuance(api: Any) -> None:
    client, context, _ = api
    cert = create(client, "web", sans=["web.example.com", "10.0.0.5"], tags={"env": "prod"})
    assert cert["id"].startswith("mc-")
    assert cert["status"] == "RenewalInProgress"
    assert cert["expires_at"] is None
    assert cert["source"] == "API"
    assert cert["sans"] == ["web.example.com", "10.0.0.5"]
    (job,) = jobs_of(context, cert["id"])
    assert (job.type.value, job.status.value, job.max_attempts) == ("Issuance", "AwaitingCSR", 4)


def test_profile_requiring_approval_leaves_the_certificate_pending(api: Any) -> None:
    client, context, _ = api
    add_profile(context, "prof-gated", requires_approval=True)
    cert = create(client, "gated", certificate_profile_id="prof-gated")
    assert cert["status"] == "Pending"
    assert jobs_of(context, cert["id"])[0].status.value == "AwaitingApproval"


def test_create_rejects_unknown_references_and_bad_names(api: Any) -> None:
    client, _, _ = api
    body = {"name": "x", "common_name": "x.example.com"} | BASE
    for field in ("owner_id", "team_id", "issuer_id", "renewal_policy_id"):
        response = client.post("/api/v1/certificates", json=body | {field: "nope"})
        assert response.status_code == 400
        assert field in response.json()["message"]
    bad_cn = client.post("/api/v1/certificates", json=body | {"common_name": "bad host!"})
    assert bad_cn.status_code == 400
    bidi = client.post("/api/v1/certificates", json=body | {"common_name": "a\u202eb.example.com"})
    assert bidi.status_code == 400
    create(client, "dup")
    assert client.post("/api/v1/certificates", json=body | {"name": "dup"}).status_code == 409


def test_status_is_owned_by_the_lifecycle(api: Any) -> None:
    client, _, _ = api
    cert = create(client, "owned")
    refused = client.put(f"/api/v1/certificates/{cert['id']}", json={"status": "Active"})
    assert refused.status_code == 400
    assert "lifecycle" in refused.json()["message"]
    ok = client.patch(f"/api/v1/certificates/{cert['id']}", json={"environment": "staging"})
    assert ok.json()["environment"] == "staging"


def test_target_mapping_rules(api: Any) -> None:
    client, context, _ = api
    add_agent(context, "ag-1")
    add_agent(context, "ag-2")
    add_target(context, "tgt-a", "ag-1")
    add_target(context, "tgt-b", "ag-1")
    add_target(context, "tgt-c", "ag-2")
    add_target(context, "tgt-old", "ag-1", retired=True)
    cert = create(client, "mapped", target_ids=["tgt-a"])
    assert cert["target_ids"] == ["tgt-a"]
    assert jobs_of(context, cert["id"])[0].agent_id == "ag-1"
    url = f"/api/v1/certificates/{cert['id']}/targets"
    assert client.post(url, json={"target_id": "tgt-b"}).status_code == 201
    assert client.post(url, json={"target_id": "tgt-b"}).status_code == 200
    spans = client.post(url, json={"target_id": "tgt-c"})
    assert spans.status_code == 400
    assert "different agents" in spans.json()["message"]
    assert client.put(url, json={"target_ids": ["tgt-old"]}).status_code == 400
    assert client.put(url, json={"target_ids": ["missing"]}).status_code == 400
    assert client.delete(f"{url}/tgt-a").status_code == 204
    assert client.get(f"/api/v1/certificates/{cert['id']}").json()["target_ids"] == ["tgt-b"]
    deployments = client.get(f"/api/v1/certificates/{cert['id']}/deployments").json()
    assert (deployments["total"], deployments["data"][0]["id"], deployments["data"][0]["agent_id"]) == (
        1,
        "tgt-b",
        "ag-1",
    )
    assert client.put(f"/api/v1/certificates/{cert['id']}", json={"target_ids": []}).json()["target_ids"] == []


def test_renew_rules(api: Any) -> None:
    client, context, _ = api
    cert = create(client, "renewme")
    url = f"/api/v1/certificates/{cert['id']}/renew"
    assert client.post(url).status_code == 409  # an issuance job is already open
    forced = client.post(url, json={"force": True})
    assert forced.status_code == 202
    assert forced.json()["status"] == "renewal_triggered"
    statuses = [j.status.value for j in jobs_of(context, cert["id"])]
    assert statuses == ["Cancelled", "AwaitingCSR"]
    assert client.delete(f"/api/v1/certificates/{cert['id']}").status_code == 204
    assert [j.status.value for j in jobs_of(context, cert["id"])] == ["Cancelled", "Cancelled"]
    assert client.get(f"/api/v1/certificates/{cert['id']}").json()["status"] == "Archived"
    assert client.post(url).status_code == 400


def test_filters_sort_and_sparse_fields(api: Any) -> None:
    client, _, clock = api
    for name, env in (("b", "prod"), ("a", "prod"), ("c", "dev")):
        create(client, name, environment=env)
        clock.advance(timedelta(seconds=1))
    prod = client.get("/api/v1/certificates", params={"environment": "prod", "sort": "name"}).json()
    assert [c["name"] for c in prod["data"]] == ["a", "b"]
    assert prod["total"] == 2
    newest = client.get("/api/v1/certificates", params={"sort": "-createdAt", "fields": "name"}).json()
    assert newest["data"] == [
        {"id": newest["data"][0]["id"], "name": "c"},
        {"id": newest["data"][1]["id"], "name": "a"},
        {"id": newest["data"][2]["id"], "name": "b"},
    ]
    assert client.get("/api/v1/certificates", params={"fields": "nope"}).status_code == 400
    assert client.get("/api/v1/certificates", params={"expires_before": "tomorrow"}).status_code == 400
    assert client.get("/api/v1/certificates", params={"per_page": 501}).status_code == 400


@pytest.mark.parametrize("sort", ["createdAt", "-createdAt", "name", "-name", "notAfter", "-notAfter"])
def test_cursor_walk_returns_every_row_once_in_order(api: Any, sort: str) -> None:
    client, context, clock = api
    from certctl.certificates.models import ManagedCertificate

    names = [f"c{i:02d}" for i in range(23)]
    for i, name in enumerate(names):
        create(client, name, status="Active")
        if i % 3:  # some rows share a timestamp, so the id tie-break matters
            clock.advance(timedelta(seconds=1))
    with context.db.begin() as session:  # mixed expiries, some NULL, some equal
        for i, cert in enumerate(session.query(ManagedCertificate).all()):
            cert.expires_at = None if i % 5 == 0 else clock.now() + timedelta(days=i % 4)
    walked: list[str] = []
    params: dict[str, Any] = {"sort": sort, "page_size": 5}
    while True:
        page = client.get("/api/v1/certificates", params=params).json()
        assert page["total"] == 23
        walked += [c["id"] for c in page["data"]]
        if "next_cursor" not in page:
            break
        params["cursor"] = page["next_cursor"]
    offset = client.get("/api/v1/certificates", params={"sort": sort, "per_page": 100}).json()
    assert walked == [c["id"] for c in offset["data"]]
    assert len(set(walked)) == 23


def test_import_existing_certificate_does_not_issue(api: Any, tmp_path: Any) -> None:
    client, context, _ = api
    import subprocess

    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "30",
            "-subj",
            "/CN=imported.example.com",
        ],
        check=True,
        capture_output=True,
    )
    cert = create(client, "imported", certificate_pem=crt.read_text())
    assert cert["status"] == "Active"
    assert cert["expires_at"] is not None
    assert jobs_of(context, cert["id"]) == []
    versions = client.get(f"/api/v1/certificates/{cert['id']}/versions").json()
    assert versions["total"] == 1
    assert versions["data"][0]["key_algorithm"] == "ECDSA"
    again = client.post(
        "/api/v1/certificates",
        json={"name": "again", "common_name": "imported.example.com", "certificate_pem": crt.read_text()} | BASE,
    )
    assert again.status_code == 409
