"""The intermediate CA hierarchy through the API (pki.md §A1.6), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography import x509
from fastapi.testclient import TestClient
from sqlalchemy import select

from certctl.audit.models import AuditEvent
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.intermediates.models import IntermediateCA
from certctl.pki.keys import SigningKey
from tests.conftest import client_for
from tests.factories import seed_inventory
from tests.intermediates.helpers import load, make_root

URL = "/api/v1/issuers/iss-local/intermediates"


@pytest.fixture
def setup(context_factory: Any) -> Any:
    clock = FrozenClock()
    context: AppContext = context_factory(clock)
    seed_inventory(context)
    with client_for(context) as client:
        yield client, context, clock


def _root(client: TestClient, clock: FrozenClock, **options: Any) -> dict[str, Any]:
    cert_pem, key_pem = make_root(clock.now(), **options)
    response = client.post(URL, json={"name": "root", "root_cert_pem": cert_pem, "key_pem": key_pem})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _child(client: TestClient, parent: dict[str, Any], name: str, **body: Any) -> Any:
    return client.post(URL, json={"name": name, "parent_ca_id": parent["id"]} | body)


def test_register_the_issuers_own_ca_as_root_and_only_one_active_root(setup: Any) -> None:
    client, context, _ = setup
    response = client.post(URL, json={})
    assert response.status_code == 201, response.text
    root = response.json()
    assert root["key_driver_id"] == "issuer"
    assert root["state"] == "active"
    assert root["parent_ca_id"] is None
    assert root["name"] == "CertCtl Local CA"
    assert "key" not in {k for k in root if k.endswith("key")}
    assert "encrypted_key" not in root
    assert "PRIVATE KEY" not in response.text
    # The issuer's own CA certificate is the root that was registered.
    issuer_chain = context.connectors.get("iss-local").get_ca_chain()
    assert load(root["cert_pem"])[0] == issuer_chain[0]

    again = client.post(URL, json={"name": "second"})
    assert again.status_code == 409
    assert "already has an active root" in again.json()["message"]
    listed = client.get(URL).json()
    assert listed["total"] == 1
    assert listed["data"][0]["id"] == root["id"]
    assert "PRIVATE KEY" not in client.get(f"/api/v1/intermediates/{root['id']}").text
    with context.db.read() as session:
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.resource_id == root["id"])).all()
    assert actions == ["intermediate_ca_root_created"]


def test_register_a_supplied_root_reads_path_length_and_name_constraints(setup: Any) -> None:
    client, context, clock = setup
    root = _root(client, clock, path_length=3, permitted=("corp.example",), excluded=("bad.corp.example",))
    assert root["key_driver_id"] == "db"
    assert root["path_len_constraint"] == 3
    assert root["name_constraints"] == [{"permitted": ["corp.example"], "excluded": ["bad.corp.example"]}]
    with context.db.read() as session:
        stored = session.get(IntermediateCA, root["id"])
        assert stored is not None
        assert stored.encrypted_key is not None
        assert b"PRIVATE KEY" not in stored.encrypted_key  # encrypted at rest
        assert b"PRIVATE KEY" in context.cipher.decrypt(stored.encrypted_key)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not-ca", "not a CA certificate"),
        ("not-self-signed", "not self-signed"),
        ("key-mismatch", "does not match"),
        ("garbage", "not a PEM certificate"),
        ("no-key", "needs its key"),
    ],
)
def test_a_bad_root_is_refused_with_400(setup: Any, case: str, message: str) -> None:
    client, _, clock = setup
    cert_pem, key_pem = make_root(clock.now())
    body = {"root_cert_pem": cert_pem, "key_pem": key_pem}
    if case == "not-ca":
        body["root_cert_pem"], body["key_pem"] = make_root(clock.now(), ca=False)
    elif case == "not-self-signed":
        body["root_cert_pem"], body["key_pem"] = make_root(clock.now(), issuer_key=SigningKey.generate())
    elif case == "key-mismatch":
        body["key_pem"] = make_root(clock.now())[1]
    elif case == "garbage":
        body["root_cert_pem"] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    else:
        del body["key_pem"]
    response = client.post(URL, json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]


def test_pkcs11_driver_without_support_is_a_clear_400(setup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    client, _, clock = setup
    monkeypatch.setitem(sys.modules, "certctl.pki.pkcs11", None)  # as if the module were not installed
    cert_pem, _ = make_root(clock.now())
    response = client.post(URL, json={"root_cert_pem": cert_pem, "key_driver_id": "pkcs11:token=ca;object=root"})
    assert response.status_code == 400
    assert "PKCS#11 support not installed" in response.json()["message"]


def test_children_shrink_the_path_length_at_every_level(setup: Any) -> None:
    client, _, clock = setup
    root = _root(client, clock, path_length=2)
    too_long = _child(client, root, "too-long", path_len_constraint=2)
    assert too_long.status_code == 400
    assert "must be smaller than the parent CA's path length constraint 2" in too_long.json()["message"]

    child = _child(client, root, "Policy CA", algorithm="RSA-2048")
    assert child.status_code == 201, child.text
    child_body = child.json()
    assert child_body["path_len_constraint"] == 1
    grandchild = _child(
        client,
        child_body,
        "Issuing CA 1",
        subject={"common_name": "Issuing CA 1", "organization": ["Corp"], "country": ["de"]},
    )
    assert grandchild.status_code == 201, grandchild.text
    grand = grandchild.json()
    assert grand["path_len_constraint"] == 0
    assert grand["subject"] == "CN=Issuing CA 1,O=Corp,C=DE"
    great = _child(client, grand, "too-deep")
    assert great.status_code == 400
    assert "path length constraint 0" in great.json()["message"]

    # The certificates say what the rows say, and each is signed by its parent.
    root_cert, child_cert, grand_cert = (load(ca["cert_pem"])[0] for ca in (root, child_body, grand))
    for cert, expected in ((child_cert, 1), (grand_cert, 0)):
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical
        assert constraints.value.ca
        assert constraints.value.path_length == expected
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical
        assert usage.value.key_cert_sign
        assert usage.value.crl_sign
    child_cert.verify_directly_issued_by(root_cert)
    grand_cert.verify_directly_issued_by(child_cert)
    assert grand_cert.not_valid_after_utc <= child_cert.not_valid_after_utc <= root_cert.not_valid_after_utc
    assert (grand_cert.not_valid_after_utc - grand_cert.not_valid_before_utc).days == 5 * 365


def test_an_unconstrained_parent_leaves_the_child_unconstrained(setup: Any) -> None:
    client, _, clock = setup
    root = _root(client, clock, path_length=None)
    free = _child(client, root, "free").json()
    assert free["path_len_constraint"] is None
    assert _child(client, root, "pinned", path_len_constraint=0).json()["path_len_constraint"] == 0


def test_name_constraints_must_be_a_subset_of_the_parents(setup: Any) -> None:
    client, _, clock = setup
    root = _root(client, clock, permitted=("corp.example", "10.0.0.0/8"), excluded=("bad.corp.example",))
    outside = _child(
        client, root, "outside", name_constraints=[{"permitted": ["other.example"], "excluded": ["bad.corp.example"]}]
    )
    assert outside.status_code == 400
    assert "'other.example'" in outside.json()["message"]
    wide_ip = _child(
        client, root, "wide-ip", name_constraints=[{"permitted": ["0.0.0.0/0"], "excluded": ["bad.corp.example"]}]
    )
    assert wide_ip.status_code == 400
    assert "0.0.0.0/0" in wide_ip.json()["message"]
    dropped = _child(client, root, "dropped", name_constraints=[{"permitted": ["eng.corp.example"]}])
    assert dropped.status_code == 400
    assert "excludes DNS name 'bad.corp.example'" in dropped.json()["message"]
    bad_entry = _child(client, root, "bad", name_constraints=[{"permitted": [".corp.example"]}])
    assert bad_entry.status_code == 400
    assert "leading dot" in bad_entry.json()["message"]

    narrower = _child(
        client,
        root,
        "eng",
        name_constraints=[{"permitted": ["eng.corp.example", "10.1.0.0/16"], "excluded": ["corp.example"]}],
    )
    assert narrower.status_code == 201, narrower.text
    inherited = _child(client, root, "inherits").json()
    assert inherited["name_constraints"] == root["name_constraints"]
    cert = load(narrower.json()["cert_pem"])[0]
    extension = cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert extension.critical
    assert x509.DNSName("eng.corp.example") in (extension.value.permitted_subtrees or [])


def test_retire_drains_first(setup: Any) -> None:
    client, context, clock = setup
    root = _root(client, clock)
    child = _child(client, root, "child").json()
    retire = f"/api/v1/intermediates/{root['id']}/retire"

    first = client.post(retire, json={"note": "rotating"})
    assert first.status_code == 200
    assert first.json()["state"] == "retiring"
    assert _child(client, root, "late").status_code == 409  # a retiring CA signs no new CAs
    unconfirmed = client.post(retire, json={})
    assert unconfirmed.status_code == 400
    assert "confirm=true" in unconfirmed.json()["message"]
    blocked = client.post(retire, json={"confirm": True})
    assert blocked.status_code == 409
    assert "1 active child CA" in blocked.json()["message"]

    child_retire = f"/api/v1/intermediates/{child['id']}/retire"
    assert client.post(child_retire, json={}).json()["state"] == "retiring"
    assert client.post(child_retire, json={"confirm": True}).json()["state"] == "retired"
    assert client.post(retire, json={"confirm": True, "note": "done"}).json()["state"] == "retired"
    again = client.post(retire, json={"confirm": True})
    assert again.status_code == 409
    assert "already retired" in again.json()["message"]
    # With the old root retired, a new root may be registered.
    assert client.post(URL, json={"name": "new root"}).status_code == 201
    with context.db.read() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.resource_id == root["id"]).order_by(AuditEvent.timestamp)
        ).all()
    assert sorted(actions) == ["intermediate_ca_retired", "intermediate_ca_retiring", "intermediate_ca_root_created"]


@pytest.mark.parametrize("role", ["operator", "viewer", "auditor"])
def test_every_operation_is_admin_only(setup: Any, role: str) -> None:
    admin, context, clock = setup
    root = _root(admin, clock)
    with client_for(context, role) as client:
        assert client.get(URL).status_code == 403
        assert client.post(URL, json={"name": "x", "parent_ca_id": root["id"]}).status_code == 403
        assert client.get(f"/api/v1/intermediates/{root['id']}").status_code == 403
        assert client.post(f"/api/v1/intermediates/{root['id']}/retire", json={}).status_code == 403
    assert admin.get(f"/api/v1/intermediates/{root['id']}").json()["state"] == "active"


def test_unknown_issuer_parent_and_ca_are_reported(setup: Any) -> None:
    client, _, clock = setup
    assert client.get("/api/v1/issuers/nope/intermediates").status_code == 404
    assert client.get("/api/v1/intermediates/ica-nope").status_code == 404
    assert client.post("/api/v1/intermediates/ica-nope/retire", json={}).status_code == 404
    missing = client.post(URL, json={"name": "x", "parent_ca_id": "ica-nope"})
    assert missing.status_code == 400
    assert "ica-nope" in missing.json()["message"]
    root = _root(client, clock)
    duplicate = _child(client, root, "root")
    assert duplicate.status_code == 409
    assert client.post(URL, json={"name": "x", "parent_ca_id": root["id"], "algorithm": "Ed25519"}).status_code == 400


def test_hierarchy_changes_are_counted_on_the_metrics_endpoint(setup: Any) -> None:
    client, _, _ = setup

    def counted(kind: str) -> float:
        text = client.get("/metrics").text
        prefix = f'certctl_intermediate_ca_operations_total{{issuer_id="iss-local",kind="{kind}"}} '
        return next((float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)), 0.0)

    roots, children = counted("create_root"), counted("create_child")  # the counters are per process
    root = client.post(URL, json={}).json()
    child = _child(client, root, "issuing", subject={"common_name": "Issuing CA"})
    assert child.status_code == 201, child.text
    assert (counted("create_root"), counted("create_child")) == (roots + 1, children + 1)
