from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from certctl.agents.models import AgentGroup
from certctl.certificates.models import ManagedCertificate
from certctl.context import AppContext
from certctl.issuers.models import Issuer, IssuerType
from certctl.org.models import Owner, Team

URL = "/api/v1/renewal-policies"
SEEDED = 1  # rp-default, seeded at start-up


def _create(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post(URL, json=body)
    assert response.status_code == 201, response.json()
    created: dict[str, Any] = response.json()
    return created


def _add_certificate(context: AppContext, policy_id: str, cert_id: str = "mc-web") -> None:
    now = context.clock.now()
    with context.db.begin() as session:
        if session.get(Team, "t-web") is None:
            # No ORM relationships, so flush parents first to satisfy the foreign keys.
            session.add(Team(id="t-web", name="web", created_at=now, updated_at=now))
            session.flush()
            session.add(Owner(id="o-alice", name="Alice", team_id="t-web", created_at=now, updated_at=now))
            session.add(
                Issuer(id="iss-local", name="Local", type=IssuerType.GENERIC_CA, created_at=now, updated_at=now)
            )
            session.flush()
        session.add(
            ManagedCertificate(
                id=cert_id,
                name=cert_id,
                common_name=f"{cert_id}.example.com",
                owner_id="o-alice",
                team_id="t-web",
                issuer_id="iss-local",
                renewal_policy_id=policy_id,
                created_at=now,
                updated_at=now,
            )
        )


def test_create_applies_the_documented_defaults_and_a_slug_id(client: TestClient) -> None:
    policy = _create(client, name="Fast Lane")
    assert policy["id"] == "rp-fast-lane"
    assert {k: v for k, v in policy.items() if k not in {"created_at", "updated_at"}} == {
        "id": "rp-fast-lane",
        "name": "Fast Lane",
        "renewal_window_days": 30,
        "renewal_window_percent": None,
        "auto_renew": True,
        "max_retries": 3,
        "retry_interval_seconds": 3600,
        "alert_thresholds_days": [30, 14, 7, 0],
        "certificate_profile_id": None,
        "alert_channels": {},
        "alert_severity_map": {},
        "agent_group_id": None,
    }
    assert client.get(f"{URL}/rp-fast-lane").json() == policy


def test_empty_thresholds_fall_back_to_the_default_list(client: TestClient) -> None:
    assert _create(client, name="quiet", alert_thresholds_days=[])["alert_thresholds_days"] == [30, 14, 7, 0]


def test_a_name_that_slugs_to_a_taken_id_gets_a_distinct_id(client: TestClient) -> None:
    first = _create(client, name="Fast Lane")
    second = _create(client, name="fast lane!")
    assert second["id"].startswith("rp-fast-lane-")
    assert second["id"] != first["id"]
    assert len(second["id"]) <= 64


def test_a_long_name_still_yields_an_id_that_fits_the_column(client: TestClient) -> None:
    policy = _create(client, name="x" * 255)
    assert policy["id"] == "rp-" + "x" * 61


def test_an_explicit_id_is_kept_and_cannot_be_reused(client: TestClient) -> None:
    assert _create(client, id="rp-gold", name="Gold")["id"] == "rp-gold"
    again = client.post(URL, json={"id": "rp-gold", "name": "Silver"})
    assert again.status_code == 409
    assert "rp-gold already exists" in again.json()["message"]


def test_duplicate_name_is_a_conflict_on_create_and_on_rename(client: TestClient) -> None:
    _create(client, name="Gold")
    other = _create(client, name="Silver")
    again = client.post(URL, json={"name": "Gold"})
    assert again.status_code == 409
    assert again.json()["message"] == "renewal policy with name 'Gold' already exists"
    renamed = client.put(f"{URL}/{other['id']}", json={"name": "Gold"})
    assert renamed.status_code == 409
    assert client.get(f"{URL}/{other['id']}").json()["name"] == "Silver"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("renewal_window_days", 0, "renewal_window_days must be between 1 and 365, got 0"),
        ("renewal_window_days", 366, "renewal_window_days must be between 1 and 365, got 366"),
        ("renewal_window_percent", 0, "renewal_window_percent must be between 1 and 99, got 0"),
        ("renewal_window_percent", 100, "renewal_window_percent must be between 1 and 99, got 100"),
        ("max_retries", -1, "max_retries must be between 0 and 10, got -1"),
        ("max_retries", 11, "max_retries must be between 0 and 10, got 11"),
        ("retry_interval_seconds", 59, "retry_interval_seconds must be between 60 and 86400, got 59"),
        ("retry_interval_seconds", 86401, "retry_interval_seconds must be between 60 and 86400, got 86401"),
        ("alert_thresholds_days", [30, -1], "alert_thresholds_days[1] must be between 0 and 365, got -1"),
        ("alert_thresholds_days", [366], "alert_thresholds_days[0] must be between 0 and 365, got 366"),
    ],
)
def test_out_of_range_values_are_refused_with_the_bound(
    client: TestClient, field: str, value: object, message: str
) -> None:
    refused = client.post(URL, json={"name": "p", field: value})
    assert refused.status_code == 400
    assert refused.json()["message"] == message
    assert client.get(URL).json()["total"] == SEEDED


def test_values_on_the_bounds_are_accepted(client: TestClient) -> None:
    low = _create(
        client,
        name="low",
        renewal_window_days=1,
        renewal_window_percent=1,
        max_retries=0,
        retry_interval_seconds=60,
        alert_thresholds_days=[0],
    )
    high = _create(
        client,
        name="high",
        renewal_window_days=365,
        renewal_window_percent=99,
        max_retries=10,
        retry_interval_seconds=86400,
        alert_thresholds_days=[365],
    )
    assert (low["max_retries"], low["retry_interval_seconds"], low["alert_thresholds_days"]) == (0, 60, [0])
    assert (high["renewal_window_days"], high["renewal_window_percent"]) == (365, 99)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": ""}, "name: String should have at least 1 character"),
        ({"name": "n" * 256}, "name: String should have at most 255 characters"),
        ({}, "name is required"),
        ({"name": "p", "renewal_window_days": "30"}, "renewal_window_days: Input should be a valid integer"),
        ({"name": "p", "max_retries": True}, "max_retries: Input should be a valid integer"),
        ({"name": "p", "auto_renew": "yes"}, "auto_renew: Input should be a valid boolean"),
        ({"name": "p", "retry_interval_minutes": 5}, "unknown field 'retry_interval_minutes'"),
    ],
)
def test_malformed_bodies_are_refused_naming_the_field(
    client: TestClient, body: dict[str, object], message: str
) -> None:
    refused = client.post(URL, json=body)
    assert refused.status_code == 400
    assert message in refused.json()["message"]


def test_alert_matrix_and_severity_map_round_trip(client: TestClient) -> None:
    channels = {"informational": ["Slack"], "warning": ["Slack", "Email"], "critical": ["PagerDuty", "OpsGenie"]}
    severity = {"30": "informational", "14": "warning", "3": "critical", "0": "critical"}
    policy = _create(client, name="paging", alert_channels=channels, alert_severity_map=severity)
    assert policy["alert_channels"] == channels
    assert policy["alert_severity_map"] == severity
    assert client.get(f"{URL}/{policy['id']}").json()["alert_severity_map"] == severity


def test_an_empty_channel_list_is_a_valid_opt_out(client: TestClient) -> None:
    policy = _create(client, name="silent info", alert_channels={"informational": [], "critical": ["Webhook"]})
    assert policy["alert_channels"] == {"informational": [], "critical": ["Webhook"]}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("alert_channels", {"urgent": ["Email"]}, "alert_channels: unknown severity tier 'urgent'"),
        ("alert_channels", {"critical": ["email"]}, "alert_channels.critical: unknown channel 'email'"),
        ("alert_channels", {"critical": "Email"}, "alert_channels.critical: Input should be a valid list"),
        ("alert_severity_map", {"7": "severe"}, "alert_severity_map.7: unknown severity tier 'severe'"),
        ("alert_severity_map", {"seven": "warning"}, "alert_severity_map: key 'seven' must be a whole number"),
        ("alert_severity_map", {"366": "warning"}, "alert_severity_map: key '366' must be a whole number"),
        ("alert_severity_map", {"-1": "warning"}, "alert_severity_map: key '-1' must be a whole number"),
        ("alert_severity_map", {"07": "warning"}, "alert_severity_map: key '07' must be a whole number"),
    ],
)
def test_alert_routing_is_validated_on_write(client: TestClient, field: str, value: object, message: str) -> None:
    refused = client.post(URL, json={"name": "p", field: value})
    assert refused.status_code == 400
    assert message in refused.json()["message"]


def test_channel_errors_list_the_valid_names(client: TestClient) -> None:
    refused = client.post(URL, json={"name": "p", "alert_channels": {"warning": ["SMS"]}})
    assert refused.json()["message"].endswith("(allowed: Email, Webhook, Slack, Teams, PagerDuty, OpsGenie)")


def test_references_must_exist(client: TestClient, context: AppContext) -> None:
    profile = client.post("/api/v1/profiles", json={"name": "web"}).json()
    now = context.clock.now()
    with context.db.begin() as session:
        session.add(AgentGroup(id="ag-linux", name="Linux", created_at=now, updated_at=now))

    no_profile = client.post(URL, json={"name": "p", "certificate_profile_id": "prof-missing"})
    assert no_profile.status_code == 400
    assert no_profile.json()["message"] == "certificate_profile_id 'prof-missing' does not exist"
    no_group = client.post(URL, json={"name": "p", "agent_group_id": "ag-missing"})
    assert no_group.status_code == 400
    assert no_group.json()["message"] == "agent_group_id 'ag-missing' does not exist"

    policy = _create(client, name="p", certificate_profile_id=profile["id"], agent_group_id="ag-linux")
    assert (policy["certificate_profile_id"], policy["agent_group_id"]) == (profile["id"], "ag-linux")
    dangling = client.patch(f"{URL}/{policy['id']}", json={"certificate_profile_id": "prof-missing"})
    assert dangling.status_code == 400
    assert client.get(f"{URL}/{policy['id']}").json()["certificate_profile_id"] == profile["id"]


def test_put_and_patch_change_only_the_fields_sent(client: TestClient) -> None:
    policy = _create(client, name="Gold", max_retries=5, alert_thresholds_days=[14, 1])

    put = client.put(f"{URL}/{policy['id']}", json={"renewal_window_days": 10})
    assert put.status_code == 200
    assert put.json() | {"updated_at": None} == policy | {"renewal_window_days": 10, "updated_at": None}

    patch = client.patch(f"{URL}/{policy['id']}", json={"auto_renew": False, "renewal_window_percent": 33})
    assert patch.status_code == 200
    expected = policy | {"renewal_window_days": 10, "auto_renew": False, "renewal_window_percent": 33}
    assert patch.json() | {"updated_at": None} == expected | {"updated_at": None}
    assert client.get(f"{URL}/{policy['id']}").json() == patch.json()


def test_update_can_clear_nullable_fields_but_not_required_ones(client: TestClient) -> None:
    policy = _create(client, name="Gold", renewal_window_percent=33)
    cleared = client.patch(f"{URL}/{policy['id']}", json={"renewal_window_percent": None})
    assert cleared.status_code == 200
    assert cleared.json()["renewal_window_percent"] is None
    refused = client.patch(f"{URL}/{policy['id']}", json={"max_retries": None})
    assert refused.status_code == 400
    assert refused.json()["message"] == "max_retries may not be null"


def test_an_invalid_update_changes_nothing(client: TestClient) -> None:
    policy = _create(client, name="Gold")
    refused = client.put(f"{URL}/{policy['id']}", json={"name": "Platinum", "max_retries": 11})
    assert refused.status_code == 400
    assert refused.json()["message"] == "max_retries must be between 0 and 10, got 11"
    assert client.get(f"{URL}/{policy['id']}").json() == policy


def test_update_refuses_unknown_fields(client: TestClient) -> None:
    refused = client.put(f"{URL}/rp-default", json={"id": "rp-other"})
    assert refused.status_code == 400
    assert "unknown field 'id'" in refused.json()["message"]


def test_unknown_policy_is_404_everywhere(client: TestClient) -> None:
    for response in (
        client.get(f"{URL}/rp-nope"),
        client.put(f"{URL}/rp-nope", json={"max_retries": 1}),
        client.patch(f"{URL}/rp-nope", json={"max_retries": 1}),
        client.delete(f"{URL}/rp-nope"),
    ):
        assert response.status_code == 404
        assert response.json()["message"] == "renewal policy rp-nope not found"


def test_policy_used_by_certificates_cannot_be_deleted(client: TestClient, context: AppContext) -> None:
    policy = _create(client, name="Gold")
    _add_certificate(context, policy["id"], "mc-web")
    _add_certificate(context, policy["id"], "mc-api")

    refused = client.delete(f"{URL}/{policy['id']}")
    assert refused.status_code == 409
    assert refused.json()["message"] == "renewal policy rp-gold is still referenced by 2 certificates"
    assert client.get(f"{URL}/{policy['id']}").status_code == 200


def test_unused_policy_is_deleted(client: TestClient) -> None:
    policy = _create(client, name="Gold")
    assert client.delete(f"{URL}/{policy['id']}").status_code == 204
    assert client.get(f"{URL}/{policy['id']}").status_code == 404
    assert client.get(URL).json()["total"] == SEEDED


def test_list_is_paged_by_name_with_true_total_including_the_seeded_default(client: TestClient) -> None:
    for i in range(6):
        _create(client, name=f"policy-{i}")
    page = client.get(URL, params={"page": 2, "per_page": 3}).json()
    assert page["total"] == 6 + SEEDED
    assert (page["page"], page["per_page"]) == (2, 3)
    # "Default" sorts first: D < p.
    assert [p["name"] for p in page["data"]] == ["policy-2", "policy-3", "policy-4"]
    past_end = client.get(URL, params={"page": 9, "per_page": 3}).json()
    assert (past_end["data"], past_end["total"]) == ([], 6 + SEEDED)


def test_seeded_default_policy_is_listed(client: TestClient) -> None:
    listed = client.get(URL).json()
    assert [p["id"] for p in listed["data"]] == ["rp-default"]
    assert listed["data"][0]["renewal_window_days"] == 30


def test_viewer_can_read_but_not_write(make_client: Callable[..., TestClient]) -> None:
    with make_client("viewer") as viewer:
        assert viewer.get(URL).status_code == 200
        assert viewer.get(f"{URL}/rp-default").status_code == 200
        assert viewer.post(URL, json={"name": "nope"}).status_code == 403
        assert viewer.delete(f"{URL}/rp-default").status_code == 403


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "a\x00b"}, "name must not contain NUL characters"),
        ({"name": "p", "certificate_profile_id": "prof-\x00"}, "certificate_profile_id must not contain NUL"),
        (
            {"name": "p", "alert_channels": {"critical": ["Email\x00"]}},
            "alert_channels.critical[0] must not contain NUL",
        ),
    ],
)
def test_nul_characters_are_refused_rather_than_breaking_postgresql(
    client: TestClient, body: dict[str, Any], message: str
) -> None:
    refused = client.post(URL, json=body)
    assert refused.status_code == 400
    assert message in refused.json()["message"]
    assert client.get(f"{URL}/rp-%00").status_code == 400
