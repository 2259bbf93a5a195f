from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient


def test_create_get_update_delete_team(client: TestClient) -> None:
    created = client.post("/api/v1/teams", json={"name": "Platform", "description": "core infra"})
    assert created.status_code == 201
    team = created.json()
    assert team["id"].startswith("team-")
    assert client.get(f"/api/v1/teams/{team['id']}").json()["name"] == "Platform"

    updated = client.put(f"/api/v1/teams/{team['id']}", json={"description": "edge"})
    assert updated.status_code == 200
    assert updated.json() | {"updated_at": None} == team | {"description": "edge", "updated_at": None}

    assert client.delete(f"/api/v1/teams/{team['id']}").status_code == 204
    missing = client.get(f"/api/v1/teams/{team['id']}")
    assert missing.status_code == 404
    assert missing.json()["message"] == f"team {team['id']} not found"


def test_duplicate_team_name_is_a_conflict(client: TestClient) -> None:
    assert client.post("/api/v1/teams", json={"name": "sre"}).status_code == 201
    again = client.post("/api/v1/teams", json={"name": "sre"})
    assert again.status_code == 409
    assert set(again.json()) == {"error", "message", "request_id"}
    assert "already exists" in again.json()["message"]


def test_team_with_owners_cannot_be_deleted(client: TestClient) -> None:
    team = client.post("/api/v1/teams", json={"id": "t-web", "name": "web"}).json()
    client.post(
        "/api/v1/owners", json={"id": "o-alice", "name": "Alice", "email": "alice@example.com", "team_id": team["id"]}
    )
    refused = client.delete("/api/v1/teams/t-web")
    assert refused.status_code == 409
    assert "owners" in refused.json()["message"]
    assert client.get("/api/v1/owners/o-alice").status_code == 200


def test_list_is_paged_with_true_total(client: TestClient) -> None:
    for i in range(7):
        client.post("/api/v1/teams", json={"name": f"team-{i}"})
    page = client.get("/api/v1/teams", params={"page": 2, "per_page": 3}).json()
    assert page["total"] == 7
    assert (page["page"], page["per_page"]) == (2, 3)
    assert [t["name"] for t in page["data"]] == ["team-3", "team-4", "team-5"]


def test_viewer_can_read_but_not_write(make_client: Callable[..., TestClient]) -> None:
    with make_client("viewer") as viewer:
        assert viewer.get("/api/v1/teams").status_code == 200
        refused = viewer.post("/api/v1/teams", json={"name": "nope"})
        assert refused.status_code == 403
        assert refused.json()["error"] == "Forbidden"
