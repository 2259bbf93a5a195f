from __future__ import annotations

from fastapi.testclient import TestClient


def test_pages_beyond_the_documented_range_are_a_400_not_a_database_error(client: TestClient) -> None:
    for path in ("/api/v1/teams", "/api/v1/issuers", "/api/v1/audit", "/api/v1/certificates"):
        response = client.get(path, params={"page": 10**27})
        assert response.status_code == 400, path
        assert response.json()["message"].startswith("page must be between 1 and")
    assert client.get("/api/v1/teams", params={"page": 10_000_000}).status_code == 200


def test_health_answers_head_probes(client: TestClient) -> None:
    assert client.head("/health").status_code == 200


def test_the_openapi_document_promises_400_for_validation_errors_never_422(client: TestClient) -> None:
    document = client.get("/api/v1/openapi.json").json()
    for path in document["paths"].values():
        for operation in path.values():
            assert "422" not in operation["responses"]
