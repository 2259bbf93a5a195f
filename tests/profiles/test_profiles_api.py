from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

URL = "/api/v1/profiles"


def _create(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post(URL, json=body)
    assert response.status_code == 201, response.json()
    created: dict[str, Any] = response.json()
    return created


def _refusal(client: TestClient, **body: Any) -> str:
    response = client.post(URL, json={"name": "p", **body})
    assert response.status_code == 400, response.json()
    message: str = response.json()["message"]
    return message


def test_create_applies_the_documented_defaults(client: TestClient) -> None:
    profile = _create(client, name="Standard TLS")
    assert profile["id"].startswith("prof-")
    assert {k: v for k, v in profile.items() if k not in {"id", "created_at", "updated_at"}} == {
        "name": "Standard TLS",
        "description": "",
        "allowed_key_algorithms": [{"algorithm": "ECDSA", "min_size": 256}, {"algorithm": "RSA", "min_size": 2048}],
        "max_ttl_seconds": 0,
        "allowed_ekus": ["serverAuth"],
        "required_san_patterns": [],
        "spiffe_uri_pattern": "",
        "allow_short_lived": False,
        "must_staple": False,
        "required_csr_attributes": [],
        "acme_auth_mode": "trust_authenticated",
        "requires_approval": False,
        "enabled": True,
    }
    assert client.get(f"{URL}/{profile['id']}").json() == profile


def test_every_field_round_trips(client: TestClient) -> None:
    body = {
        "id": "prof-short-lived",
        "name": "short lived workloads",
        "description": "5 minute SPIFFE certs",
        "allowed_key_algorithms": [{"algorithm": "ECDSA", "min_size": 384}, {"algorithm": "Ed25519", "min_size": 0}],
        "max_ttl_seconds": 300,
        "allowed_ekus": ["serverAuth", "clientAuth"],
        "required_san_patterns": [r"^[a-z0-9-]+\.internal\.example\.com$"],
        "spiffe_uri_pattern": "spiffe://example.com/workload/*",
        "allow_short_lived": True,
        "must_staple": True,
        "required_csr_attributes": ["serialNumber", "deviceSerialNumber"],
        "acme_auth_mode": "challenge",
        "requires_approval": True,
        "enabled": False,
    }
    profile = _create(client, **body)
    assert {k: v for k, v in profile.items() if k not in {"created_at", "updated_at"}} == body


def test_empty_lists_mean_the_defaults(client: TestClient) -> None:
    profile = _create(client, name="p", allowed_key_algorithms=[], allowed_ekus=[])
    assert profile["allowed_key_algorithms"] == [
        {"algorithm": "ECDSA", "min_size": 256},
        {"algorithm": "RSA", "min_size": 2048},
    ]
    assert profile["allowed_ekus"] == ["serverAuth"]


def test_an_omitted_min_size_is_the_algorithms_minimum(client: TestClient) -> None:
    profile = _create(
        client,
        name="p",
        allowed_key_algorithms=[{"algorithm": "RSA"}, {"algorithm": "ECDSA"}, {"algorithm": "Ed25519"}],
    )
    assert [rule["min_size"] for rule in profile["allowed_key_algorithms"]] == [2048, 256, 0]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"algorithm": "DSA", "min_size": 2048}], "allowed_key_algorithms[0]: invalid key algorithm 'DSA'"),
        ([{"algorithm": "rsa", "min_size": 2048}], "invalid key algorithm 'rsa' (allowed: RSA, ECDSA, Ed25519)"),
        (
            [{"algorithm": "ECDSA", "min_size": 256}, {"algorithm": "RSA", "min_size": 1024}],
            "allowed_key_algorithms[1]: RSA min_size must be between 2048 and 16384, got 1024",
        ),
        ([{"algorithm": "RSA", "min_size": 32768}], "RSA min_size must be between 2048 and 16384, got 32768"),
        ([{"algorithm": "ECDSA", "min_size": 224}], "ECDSA min_size must be a curve size (256, 384, 521), got 224"),
        ([{"algorithm": "ECDSA", "min_size": 300}], "ECDSA min_size must be a curve size (256, 384, 521), got 300"),
        ([{"algorithm": "Ed25519", "min_size": 512}], "min_size must be between 0 and 256, got 512"),
        (
            [{"algorithm": "RSA", "min_size": 2048, "max_size": 4096}],
            "unknown field 'allowed_key_algorithms.0.max_size'",
        ),
        ([{"min_size": 2048}], "allowed_key_algorithms.0.algorithm is required"),
    ],
)
def test_key_algorithm_rules_are_validated(client: TestClient, rules: list[dict[str, Any]], message: str) -> None:
    assert message in _refusal(client, allowed_key_algorithms=rules)


def test_accepted_key_sizes(client: TestClient) -> None:
    rules = [
        {"algorithm": "RSA", "min_size": 2048},
        {"algorithm": "RSA", "min_size": 3072},
        {"algorithm": "ECDSA", "min_size": 256},
        {"algorithm": "ECDSA", "min_size": 384},
        {"algorithm": "ECDSA", "min_size": 521},
        {"algorithm": "Ed25519", "min_size": 256},
    ]
    assert _create(client, name="p", allowed_key_algorithms=rules)["allowed_key_algorithms"] == rules


def test_ekus_are_validated_and_the_valid_names_are_listed(client: TestClient) -> None:
    message = _refusal(client, allowed_ekus=["serverAuth", "ocspSigning"])
    assert message == (
        "allowed_ekus: invalid EKU 'ocspSigning' "
        "(allowed: serverAuth, clientAuth, codeSigning, emailProtection, timeStamping)"
    )
    every = ["serverAuth", "clientAuth", "codeSigning", "emailProtection", "timeStamping"]
    assert _create(client, name="all", allowed_ekus=every)["allowed_ekus"] == every


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        (["^ok$", "(["], "required_san_patterns[1] '([' is not a valid regex"),
        (["*.example.com"], "required_san_patterns[0] '*.example.com' is not a valid regex"),
        ([""], "required_san_patterns[0] is empty"),
    ],
)
def test_san_patterns_must_compile(client: TestClient, patterns: list[str], message: str) -> None:
    assert message in _refusal(client, required_san_patterns=patterns)


def test_spiffe_pattern_must_be_a_spiffe_uri(client: TestClient) -> None:
    message = _refusal(client, spiffe_uri_pattern="https://example.com/*")
    assert message == "spiffe_uri_pattern must start with 'spiffe://', got 'https://example.com/*'"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"max_ttl_seconds": -1}, "max_ttl_seconds must be between 0 (no cap) and 2147483647, got -1"),
        ({"max_ttl_seconds": 2**31}, "max_ttl_seconds must be between 0 (no cap) and 2147483647, got 2147483648"),
        (
            {"allow_short_lived": True, "max_ttl_seconds": 3600},
            "allow_short_lived needs max_ttl_seconds between 1 and 3599",
        ),
        ({"allow_short_lived": True}, "allow_short_lived needs max_ttl_seconds between 1 and 3599"),
        ({"acme_auth_mode": "none"}, "acme_auth_mode: Input should be 'trust_authenticated' or 'challenge'"),
        ({"required_csr_attributes": [" "]}, "required_csr_attributes[0] is empty"),
        ({"max_ttl_seconds": "300"}, "max_ttl_seconds: Input should be a valid integer"),
        ({"enabled": 1}, "enabled: Input should be a valid boolean"),
        ({"name": ""}, "name: String should have at least 1 character"),
        ({"name": "n" * 256}, "name: String should have at most 255 characters"),
        ({"ttl": 300}, "unknown field 'ttl'"),
    ],
)
def test_invalid_fields_are_refused_naming_the_rule(client: TestClient, body: dict[str, Any], message: str) -> None:
    assert message in _refusal(client, **body)
    assert client.get(URL).json()["total"] == 0


def test_name_is_required(client: TestClient) -> None:
    refused = client.post(URL, json={"description": "nameless"})
    assert refused.status_code == 400
    assert refused.json()["message"] == "name is required"


def test_short_lived_profile_just_under_an_hour_is_accepted(client: TestClient) -> None:
    profile = _create(client, name="p", allow_short_lived=True, max_ttl_seconds=3599)
    assert (profile["allow_short_lived"], profile["max_ttl_seconds"]) == (True, 3599)


def test_duplicate_name_or_id_is_a_conflict(client: TestClient) -> None:
    first = _create(client, id="prof-web", name="web")
    other = _create(client, name="api")
    same_name = client.post(URL, json={"name": "web"})
    assert same_name.status_code == 409
    assert same_name.json()["message"] == "certificate profile with name 'web' already exists"
    same_id = client.post(URL, json={"id": first["id"], "name": "other"})
    assert same_id.status_code == 409
    assert "prof-web already exists" in same_id.json()["message"]
    renamed = client.patch(f"{URL}/{other['id']}", json={"name": "web"})
    assert renamed.status_code == 409


def test_put_and_patch_change_only_the_fields_sent(client: TestClient) -> None:
    profile = _create(client, name="web", description="public sites", max_ttl_seconds=7_776_000)
    put = client.put(f"{URL}/{profile['id']}", json={"allowed_ekus": ["serverAuth", "clientAuth"]})
    assert put.status_code == 200
    assert put.json() | {"updated_at": None} == profile | {
        "allowed_ekus": ["serverAuth", "clientAuth"],
        "updated_at": None,
    }
    patch = client.patch(f"{URL}/{profile['id']}", json={"requires_approval": True, "description": ""})
    assert patch.status_code == 200
    assert patch.json() | {"updated_at": None} == put.json() | {
        "requires_approval": True,
        "description": "",
        "updated_at": None,
    }
    assert client.get(f"{URL}/{profile['id']}").json() == patch.json()


def test_update_checks_the_merged_profile(client: TestClient) -> None:
    profile = _create(client, name="short", allow_short_lived=True, max_ttl_seconds=300)
    longer = client.patch(f"{URL}/{profile['id']}", json={"max_ttl_seconds": 86400})
    assert longer.status_code == 400
    assert "allow_short_lived needs max_ttl_seconds between 1 and 3599" in longer.json()["message"]
    both = client.patch(f"{URL}/{profile['id']}", json={"max_ttl_seconds": 86400, "allow_short_lived": False})
    assert both.status_code == 200
    assert (both.json()["max_ttl_seconds"], both.json()["allow_short_lived"]) == (86400, False)


def test_an_invalid_update_changes_nothing(client: TestClient) -> None:
    profile = _create(client, name="web")
    refused = client.put(
        f"{URL}/{profile['id']}",
        json={"name": "renamed", "allowed_key_algorithms": [{"algorithm": "RSA", "min_size": 512}]},
    )
    assert refused.status_code == 400
    assert client.get(f"{URL}/{profile['id']}").json() == profile


def test_update_refuses_null_for_every_field(client: TestClient) -> None:
    profile = _create(client, name="web")
    refused = client.patch(f"{URL}/{profile['id']}", json={"description": None})
    assert refused.status_code == 400
    assert refused.json()["message"] == "description may not be null"


def test_unknown_profile_is_404_everywhere(client: TestClient) -> None:
    for response in (
        client.get(f"{URL}/prof-nope"),
        client.put(f"{URL}/prof-nope", json={"enabled": False}),
        client.patch(f"{URL}/prof-nope", json={"enabled": False}),
        client.delete(f"{URL}/prof-nope"),
    ):
        assert response.status_code == 404
        assert response.json()["message"] == "certificate profile prof-nope not found"


def test_deleting_a_profile_detaches_the_renewal_policies_using_it(client: TestClient) -> None:
    profile = _create(client, name="web")
    policy = client.post("/api/v1/renewal-policies", json={"name": "Gold", "certificate_profile_id": profile["id"]})
    assert policy.status_code == 201
    assert client.delete(f"{URL}/{profile['id']}").status_code == 204
    assert client.get(f"{URL}/{profile['id']}").status_code == 404
    assert client.get(f"/api/v1/renewal-policies/{policy.json()['id']}").json()["certificate_profile_id"] is None


def test_list_is_paged_by_name_with_true_total(client: TestClient) -> None:
    for i in reversed(range(7)):
        _create(client, name=f"profile-{i}")
    page = client.get(URL, params={"page": 3, "per_page": 3}).json()
    assert page["total"] == 7
    assert (page["page"], page["per_page"]) == (3, 3)
    assert [p["name"] for p in page["data"]] == ["profile-6"]
    assert client.get(URL, params={"per_page": 501}).status_code == 400


def test_viewer_can_read_but_not_write(client: TestClient, make_client: Callable[..., TestClient]) -> None:
    profile = _create(client, name="web")
    with make_client("viewer") as viewer:
        assert viewer.get(URL).json()["total"] == 1
        assert viewer.get(f"{URL}/{profile['id']}").status_code == 200
        assert viewer.post(URL, json={"name": "nope"}).status_code == 403
        assert viewer.patch(f"{URL}/{profile['id']}", json={"enabled": False}).status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"name": "a\x00b"},
        {"name": "p", "description": "\x00"},
        {"name": "p", "required_san_patterns": ["^a\x00$"]},
        {"name": "p", "required_csr_attributes": ["serialNumber\x00"]},
    ],
)
def test_nul_characters_are_refused_rather_than_breaking_postgresql(client: TestClient, body: dict[str, Any]) -> None:
    refused = client.post(URL, json=body)
    assert refused.status_code == 400
    assert "must not contain NUL characters" in refused.json()["message"]
    assert client.delete(f"{URL}/prof-%00").status_code == 400
