from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from certctl.context import AppContext
from certctl.issuers.models import Issuer
from certctl.security.masking import MASK
from tests.issuers.rows import insert_certificate

VAULT_CONFIG = {"addr": "https://vault.example.com:8200", "token": "hvs.real-vault-token", "mount": "pki"}


def stored(context: AppContext, issuer_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `config` column and the decrypted `encrypted_config` of one issuer row."""
    with context.db.begin() as session:
        row = session.get(Issuer, issuer_id)
        assert row is not None
        assert row.encrypted_config is not None
        return row.config, json.loads(context.cipher.decrypt(row.encrypted_config))


def create_vault(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/issuers", json={"name": "Vault", "type": "VaultPKI", "config": VAULT_CONFIG} | fields
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_secrets_are_masked_everywhere_but_the_encrypted_column(client: TestClient, context: AppContext) -> None:
    issuer = create_vault(client)
    masked = VAULT_CONFIG | {"token": MASK}

    assert issuer["id"].startswith("issuer-")
    assert issuer["config"] == masked
    assert "encrypted_config" not in issuer
    assert client.get(f"/api/v1/issuers/{issuer['id']}").json()["config"] == masked
    listed = client.get("/api/v1/issuers").json()
    assert [i["config"] for i in listed["data"]] == [masked]
    assert all("encrypted_config" not in i for i in listed["data"])

    column, decrypted = stored(context, issuer["id"])
    assert column == masked
    assert decrypted == VAULT_CONFIG


def test_create_shape_and_defaults(client: TestClient) -> None:
    issuer = create_vault(client, id="iss-vault", hierarchy_mode="tree")
    assert issuer | {"created_at": None, "updated_at": None} == {
        "id": "iss-vault",
        "name": "Vault",
        "type": "VaultPKI",
        "config": VAULT_CONFIG | {"token": MASK},
        "enabled": True,
        "last_tested_at": None,
        "test_status": "untested",
        "source": "database",
        "hierarchy_mode": "tree",
        "created_at": None,
        "updated_at": None,
    }


def test_api_created_issuers_start_enabled(client: TestClient) -> None:
    issuer = create_vault(client, enabled=False)
    assert (issuer["source"], issuer["enabled"]) == ("database", True)
    disabled = client.put(f"/api/v1/issuers/{issuer['id']}", json={"enabled": False})
    assert disabled.json()["enabled"] is False


@pytest.mark.parametrize(
    ("given", "expected"),
    [("local", "GenericCA"), ("LOCAL_CA", "GenericCA"), ("acme", "ACME"), ("step-ca", "StepCA"), ("vault", "VaultPKI")],
)
def test_type_is_case_insensitive_with_aliases(client: TestClient, given: str, expected: str) -> None:
    created = client.post("/api/v1/issuers", json={"name": f"by {given}", "type": given})
    assert created.status_code == 201
    assert created.json()["type"] == expected


def test_unknown_type_is_refused_listing_the_accepted_ones(client: TestClient) -> None:
    refused = client.post("/api/v1/issuers", json={"name": "x", "type": "LetsPretend"})
    assert refused.status_code == 400
    message = refused.json()["message"]
    assert "unknown issuer type 'LetsPretend'" in message
    assert "ACME" in message
    assert "GenericCA" in message
    assert client.get("/api/v1/issuers").json()["total"] == 0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "x", "type": "ACME", "config": ["a"]}, "config: must be a JSON object"),
        ({"name": "x", "type": "ACME", "config": "token=abc"}, "config: must be a JSON object"),
        ({"name": "x", "type": 7}, "type: must be a string"),
        ({"type": "ACME"}, "name is required"),
        ({"name": "x"}, "type is required"),
        ({"name": "x", "type": "ACME", "hierarchy_mode": "forest"}, "hierarchy_mode"),
        ({"name": "x", "type": "ACME", "encrypted_config": "AAAA"}, "unknown field 'encrypted_config'"),
        ({"name": "x", "type": "ACME", "config": {"password": MASK}}, "config.password"),
    ],
)
def test_bad_create_bodies_are_400_with_a_reason(client: TestClient, body: dict[str, Any], fragment: str) -> None:
    refused = client.post("/api/v1/issuers", json=body)
    assert refused.status_code == 400
    assert fragment in refused.json()["message"]


def test_duplicate_name_or_id_is_a_conflict(client: TestClient) -> None:
    create_vault(client, id="iss-vault")
    same_name = client.post("/api/v1/issuers", json={"name": "Vault", "type": "ACME"})
    assert same_name.status_code == 409
    assert same_name.json()["message"] == "issuer with name 'Vault' already exists"
    same_id = client.post("/api/v1/issuers", json={"id": "iss-vault", "name": "Other", "type": "ACME"})
    assert same_id.status_code == 409


def test_placeholder_keeps_the_stored_secret_while_other_keys_change(client: TestClient, context: AppContext) -> None:
    issuer = create_vault(client)
    update = {"config": {"addr": "https://vault2.example.com", "token": MASK, "mount": "pki2", "role": "web"}}
    response = client.put(f"/api/v1/issuers/{issuer['id']}", json=update)
    assert response.status_code == 200
    expected = {"addr": "https://vault2.example.com", "token": "hvs.real-vault-token", "mount": "pki2", "role": "web"}
    assert response.json()["config"] == expected | {"token": MASK}
    column, decrypted = stored(context, issuer["id"])
    assert decrypted == expected
    assert column == expected | {"token": MASK}


def test_a_new_secret_replaces_the_stored_one_and_omitted_keys_are_dropped(
    client: TestClient, context: AppContext
) -> None:
    issuer = create_vault(client)
    response = client.patch(f"/api/v1/issuers/{issuer['id']}", json={"config": {"token": "hvs.rotated"}})
    assert response.json()["config"] == {"token": MASK}
    assert stored(context, issuer["id"])[1] == {"token": "hvs.rotated"}


def test_placeholder_without_a_stored_value_is_refused(client: TestClient, context: AppContext) -> None:
    issuer = create_vault(client)
    refused = client.put(
        f"/api/v1/issuers/{issuer['id']}", json={"config": VAULT_CONFIG | {"token": MASK, "secret_id": MASK}}
    )
    assert refused.status_code == 400
    assert "config.secret_id" in refused.json()["message"]
    assert "send the real value" in refused.json()["message"]
    assert stored(context, issuer["id"])[1] == VAULT_CONFIG


def test_update_without_config_keeps_the_encrypted_blob(client: TestClient, context: AppContext) -> None:
    issuer = create_vault(client)
    with context.db.begin() as session:
        before = session.get(Issuer, issuer["id"])
        assert before is not None
        blob = before.encrypted_config
    renamed = client.put(f"/api/v1/issuers/{issuer['id']}", json={"name": "Vault prod", "type": "vault_pki"})
    assert renamed.status_code == 200
    assert renamed.json() | {"updated_at": None} == issuer | {"name": "Vault prod", "updated_at": None}
    with context.db.begin() as session:
        after = session.get(Issuer, issuer["id"])
        assert after is not None
        assert after.encrypted_config == blob


def test_bad_updates_are_refused(client: TestClient) -> None:
    issuer = create_vault(client)
    create_vault(client, name="Taken")
    url = f"/api/v1/issuers/{issuer['id']}"
    assert client.put(url, json={"name": "Taken"}).status_code == 409
    unknown_type = client.put(url, json={"type": "nope"})
    assert unknown_type.status_code == 400
    assert "unknown issuer type" in unknown_type.json()["message"]
    assert client.put(url, json={"name": None}).json()["message"] == "name may not be null"
    assert client.put(url, json={"config": None}).status_code == 400
    assert client.put(url, json={"source": "env"}).status_code == 400


def test_issuer_used_by_certificates_cannot_be_deleted(client: TestClient, context: AppContext) -> None:
    issuer = create_vault(client, id="iss-vault")
    insert_certificate(context, "iss-vault")
    refused = client.delete("/api/v1/issuers/iss-vault")
    assert refused.status_code == 409
    assert refused.json()["message"] == "issuer iss-vault is still referenced by 1 managed certificate"
    assert client.get(f"/api/v1/issuers/{issuer['id']}").status_code == 200


def test_delete_then_gone(client: TestClient) -> None:
    issuer = create_vault(client)
    assert client.delete(f"/api/v1/issuers/{issuer['id']}").status_code == 204
    missing = client.get(f"/api/v1/issuers/{issuer['id']}")
    assert missing.status_code == 404
    assert missing.json()["message"] == f"issuer {issuer['id']} not found"


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_unknown_issuer_is_404(client: TestClient, method: str) -> None:
    kwargs: dict[str, Any] = {"json": {"enabled": False}} if method in ("put", "patch") else {}
    response = client.request(method.upper(), "/api/v1/issuers/iss-nope", **kwargs)
    assert response.status_code == 404
    assert response.json()["message"] == "issuer iss-nope not found"


def test_list_is_paged_with_true_total(client: TestClient) -> None:
    for i in range(5):
        client.post("/api/v1/issuers", json={"name": f"ca-{i}", "type": "local"})
    page = client.get("/api/v1/issuers", params={"page": 2, "per_page": 2}).json()
    assert (page["total"], page["page"], page["per_page"]) == (5, 2, 2)
    assert [i["name"] for i in page["data"]] == ["ca-2", "ca-3"]
    assert client.get("/api/v1/issuers", params={"per_page": 501}).status_code == 400


def test_viewer_can_read_but_not_write(client: TestClient, make_client: Callable[..., TestClient]) -> None:
    create_vault(client)
    with make_client("viewer") as viewer:
        listed = viewer.get("/api/v1/issuers")
        assert listed.status_code == 200
        assert listed.json()["data"][0]["config"]["token"] == MASK
        assert viewer.post("/api/v1/issuers", json={"name": "n", "type": "ACME"}).status_code == 403
