from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from certctl.context import AppContext
from certctl.security.masking import MASK
from certctl.targets.models import DeploymentTarget
from tests.issuers.rows import insert_certificate
from tests.targets.rows import insert_agent, map_certificate, mappings_of

NGINX_CONFIG = {
    "cert_path": "/etc/nginx/ssl/web.crt",
    "chain_path": "/etc/nginx/ssl/chain.pem",
    "reload_command": "systemctl reload nginx",
    "validate_command": "nginx -t",
}
F5_CONFIG = {"host": "bigip.example.com", "username": "admin", "password": "f5-real-password", "partition": "Common"}


@pytest.fixture
def agents(context: AppContext) -> dict[str, str]:
    return {
        "live": insert_agent(context, "ag-web"),
        "other": insert_agent(context, "ag-db"),
        "retired": insert_agent(context, "ag-old", retired=True),
    }


def stored(context: AppContext, target_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `config` column and the decrypted `encrypted_config` of one target row."""
    with context.db.begin() as session:
        row = session.get(DeploymentTarget, target_id)
        assert row is not None
        assert row.encrypted_config is not None
        return row.config, json.loads(context.cipher.decrypt(row.encrypted_config))


def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "edge-lb", "type": "F5", "agent_id": "ag-web", "config": F5_CONFIG} | fields
    response = client.post("/api/v1/targets", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_secrets_are_masked_everywhere_but_the_encrypted_column(
    client: TestClient, context: AppContext, agents: dict[str, str]
) -> None:
    target = create(client)
    masked = F5_CONFIG | {"password": MASK}

    assert target["id"].startswith("target-")
    assert target["config"] == masked
    assert "encrypted_config" not in target
    assert client.get(f"/api/v1/targets/{target['id']}").json()["config"] == masked
    listed = client.get("/api/v1/targets").json()
    assert [t["config"] for t in listed["data"]] == [masked]
    assert all("encrypted_config" not in t for t in listed["data"])

    column, decrypted = stored(context, target["id"])
    assert column == masked
    assert decrypted == F5_CONFIG


def test_create_shape_and_defaults(client: TestClient, agents: dict[str, str]) -> None:
    target = create(client, id="tgt-nginx", name="web", type="nginx", config=NGINX_CONFIG, enabled=False)
    assert target | {"created_at": None, "updated_at": None} == {
        "id": "tgt-nginx",
        "name": "web",
        "type": "NGINX",
        "agent_id": "ag-web",
        "config": NGINX_CONFIG,
        "enabled": False,
        "last_tested_at": None,
        "test_status": "untested",
        "source": "database",
        "retired_at": None,
        "retired_reason": None,
        "deploy_success_count": 0,
        "deploy_failure_count": 0,
        "last_deploy_at": None,
        "last_deploy_status": None,
        "created_at": None,
        "updated_at": None,
    }


@pytest.mark.parametrize(
    ("agent_id", "fragment"),
    [("ag-ghost", "agent_id 'ag-ghost' does not exist"), ("ag-old", "agent ag-old is retired")],
)
def test_unknown_or_retired_agent_is_refused(
    client: TestClient, agents: dict[str, str], agent_id: str, fragment: str
) -> None:
    refused = client.post(
        "/api/v1/targets", json={"name": "t", "type": "NGINX", "agent_id": agent_id, "config": NGINX_CONFIG}
    )
    assert refused.status_code == 400
    assert fragment in refused.json()["message"]


def test_connector_rules_are_checked_at_create_without_looking_at_this_host(
    client: TestClient, agents: dict[str, str]
) -> None:
    missing = client.post("/api/v1/targets", json={"name": "t", "type": "NGINX", "agent_id": "ag-web", "config": {}})
    assert missing.status_code == 400
    assert "cert_path: is required" in missing.json()["message"]
    injected = NGINX_CONFIG | {"reload_command": "nginx -s reload; rm -rf /"}
    refused = client.post(
        "/api/v1/targets", json={"name": "t", "type": "NGINX", "agent_id": "ag-web", "config": injected}
    )
    assert refused.status_code == 400
    assert "reload_command" in refused.json()["message"]
    # /etc/nginx/ssl exists on the agent's host, not necessarily here: the agent checks directories.
    assert create(client, name="t", type="NGINX", config=NGINX_CONFIG)["type"] == "NGINX"


def test_agent_is_required(client: TestClient, agents: dict[str, str]) -> None:
    refused = client.post("/api/v1/targets", json={"name": "t", "type": "NGINX"})
    assert refused.status_code == 400
    assert refused.json()["message"] == "agent_id is required"


def test_unknown_type_is_refused_listing_the_accepted_ones(client: TestClient, agents: dict[str, str]) -> None:
    refused = client.post("/api/v1/targets", json={"name": "t", "type": "lighttpd", "agent_id": "ag-web"})
    assert refused.status_code == 400
    assert "unknown target type 'lighttpd'" in refused.json()["message"]
    assert "KubernetesSecrets" in refused.json()["message"]


def test_name_is_unique_per_agent(client: TestClient, agents: dict[str, str]) -> None:
    create(client, name="web")
    again = client.post(
        "/api/v1/targets", json={"name": "web", "type": "NGINX", "agent_id": "ag-web", "config": NGINX_CONFIG}
    )
    assert again.status_code == 409
    assert again.json()["message"] == "target on agent ag-web with name 'web' already exists"
    create(client, name="web", agent_id="ag-db")


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"reload_command": "systemctl reload nginx; rm -rf /"}, "config.reload_command: command contains shell "),
        ({"validate_command": "nginx -t && curl evil"}, "config.validate_command"),
        ({"command": "echo $(id)"}, "'$'"),
        ({"post_deploy_cmd": "reload `id`"}, "config.post_deploy_cmd"),
        ({"Reload_Command": "a | b"}, "config.Reload_Command"),
        ({"winrm": {"reload_command": "iisreset > x"}}, "config.winrm.reload_command"),
        ({"hooks": [{"command": "x\ny"}]}, "config.hooks[0].command"),
        ({"reload_command": ["systemctl", "reload"]}, "config.reload_command must be a string"),
        ({"reload_command": "x" * 1025}, "the limit is 1024"),
    ],
)
def test_shell_injection_in_commands_is_refused(
    client: TestClient, agents: dict[str, str], config: dict[str, Any], fragment: str
) -> None:
    refused = client.post(
        "/api/v1/targets", json={"name": "t", "type": "NGINX", "agent_id": "ag-web", "config": config}
    )
    assert refused.status_code == 400
    assert fragment in refused.json()["message"]
    assert client.get("/api/v1/targets").json()["total"] == 0


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"cert_path": "ssl/web.crt"}, "config.cert_path must be an absolute path"),
        ({"key_path": "../etc/shadow"}, "config.key_path must be an absolute path"),
        ({"cert_path": "/etc/nginx/../shadow"}, "config.cert_path must not contain '..'"),
        ({"chain_path": 5}, "config.chain_path must be a string"),
    ],
)
def test_relative_or_odd_paths_are_refused(
    client: TestClient, agents: dict[str, str], config: dict[str, Any], fragment: str
) -> None:
    refused = client.post(
        "/api/v1/targets", json={"name": "t", "type": "NGINX", "agent_id": "ag-web", "config": config}
    )
    assert refused.status_code == 400
    assert fragment in refused.json()["message"]


def test_windows_paths_and_empty_optional_values_are_accepted(client: TestClient, agents: dict[str, str]) -> None:
    config = {"pfx_path": "C:\\certs\\site.pfx", "chain_path": "", "validate_command": "", "reload_command": None}
    assert create(client, type="IIS", config=config)["config"] == config


def test_placeholder_keeps_the_stored_secret_while_other_keys_change(
    client: TestClient, context: AppContext, agents: dict[str, str]
) -> None:
    target = create(client)
    update = {"config": F5_CONFIG | {"password": MASK, "partition": "Prod", "ssl_profile": "clientssl"}}
    response = client.put(f"/api/v1/targets/{target['id']}", json=update)
    assert response.status_code == 200
    expected = F5_CONFIG | {"partition": "Prod", "ssl_profile": "clientssl"}
    assert response.json()["config"] == expected | {"password": MASK}
    column, decrypted = stored(context, target["id"])
    assert decrypted == expected
    assert column == expected | {"password": MASK}


def test_placeholder_without_a_stored_value_is_refused(
    client: TestClient, context: AppContext, agents: dict[str, str]
) -> None:
    target = create(client)
    refused = client.patch(f"/api/v1/targets/{target['id']}", json={"config": {"api_token": MASK}})
    assert refused.status_code == 400
    assert "config.api_token" in refused.json()["message"]
    assert stored(context, target["id"])[1] == F5_CONFIG


def test_updates_are_validated_like_creates(client: TestClient, agents: dict[str, str]) -> None:
    target = create(client, type="NGINX", config=NGINX_CONFIG)
    create(client, agent_id="ag-db")  # another "edge-lb", on the other agent
    url = f"/api/v1/targets/{target['id']}"

    injected = client.put(url, json={"config": NGINX_CONFIG | {"reload_command": "nginx -s reload & id"}})
    assert injected.status_code == 400
    assert "config.reload_command" in injected.json()["message"]
    assert client.put(url, json={"agent_id": "ag-old"}).status_code == 400
    assert client.put(url, json={"agent_id": "ag-ghost"}).status_code == 400
    assert client.put(url, json={"type": "lighttpd"}).status_code == 400
    clash = client.put(url, json={"agent_id": "ag-db"})
    assert clash.status_code == 409
    assert clash.json()["message"] == "target on agent ag-db with name 'edge-lb' already exists"
    assert client.put(url, json={"retired_at": None}).status_code == 400

    moved = client.put(url, json={"agent_id": "ag-db", "name": "web-2", "type": "apache", "enabled": False})
    assert moved.status_code == 200
    assert {k: moved.json()[k] for k in ("agent_id", "name", "type", "enabled", "config")} == {
        "agent_id": "ag-db",
        "name": "web-2",
        "type": "Apache",
        "enabled": False,
        "config": NGINX_CONFIG,
    }


def test_list_filters_by_agent_and_type(client: TestClient, agents: dict[str, str]) -> None:
    create(client, name="a", type="NGINX", config=NGINX_CONFIG)
    create(client, name="b", type="F5")
    create(client, name="c", type="nginx", agent_id="ag-db", config=NGINX_CONFIG)

    def names(**params: str) -> list[str]:
        page = client.get("/api/v1/targets", params=params).json()
        assert page["total"] == len(page["data"])
        return [t["name"] for t in page["data"]]

    assert names() == ["a", "b", "c"]
    assert names(agent_id="ag-web") == ["a", "b"]
    assert names(type="NGINX") == ["a", "c"]
    assert names(type="nginx", agent_id="ag-db") == ["c"]
    assert names(agent_id="ag-ghost") == []
    bad = client.get("/api/v1/targets", params={"type": "lighttpd"})
    assert bad.status_code == 400
    assert "unknown target type" in bad.json()["message"]


def test_delete_is_hard_and_takes_the_certificate_mappings_along(
    client: TestClient, context: AppContext, agents: dict[str, str]
) -> None:
    target = create(client)
    issuer = client.post("/api/v1/issuers", json={"id": "iss-local", "name": "Local", "type": "local"}).json()
    map_certificate(context, insert_certificate(context, issuer["id"]), target["id"])
    assert mappings_of(context, target["id"]) == 1

    assert client.delete(f"/api/v1/targets/{target['id']}").status_code == 204
    assert client.get(f"/api/v1/targets/{target['id']}").status_code == 404
    assert mappings_of(context, target["id"]) == 0
    with context.db.begin() as session:
        assert session.get(DeploymentTarget, target["id"]) is None


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_unknown_target_is_404(client: TestClient, method: str) -> None:
    kwargs: dict[str, Any] = {"json": {"enabled": False}} if method in ("put", "patch") else {}
    response = client.request(method.upper(), "/api/v1/targets/tgt-nope", **kwargs)
    assert response.status_code == 404
    assert response.json()["message"] == "target tgt-nope not found"
