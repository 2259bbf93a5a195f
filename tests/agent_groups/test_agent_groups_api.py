"""/api/v1/agent-groups on SQLite and PostgreSQL: CRUD, criteria checked on write, evaluated members and
the manual include/exclude rows, with the audit trail behind every change."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from certctl.agent_groups.membership import Membership
from certctl.agent_groups.service import AgentGroupService
from certctl.agents.models import Agent, AgentGroupMember
from certctl.audit.models import AuditEvent
from certctl.clock import FrozenClock
from certctl.context import AppContext
from tests.agent_groups.rows import insert_agent
from tests.conftest import client_for

GROUPS = "/api/v1/agent-groups"


def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = client.post(GROUPS, json={"name": "group"} | fields)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def members(client: TestClient, group_id: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"{GROUPS}/{group_id}/members", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def member_ids(client: TestClient, group_id: str, **params: Any) -> dict[str, str]:
    return {agent["id"]: agent["membership"] for agent in members(client, group_id, **params)["data"]}


def audit_actions(context: AppContext, group_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    with context.db.read() as session:
        rows = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.resource_type == "agent_group", AuditEvent.resource_id == group_id)
            .order_by(AuditEvent.timestamp, AuditEvent.id)
        ).all()
        return [(row.action, row.actor, row.details) for row in rows]


def test_acceptance_84_cidr_by_network_math(client: TestClient, context: AppContext) -> None:
    """agent-targets-discovery.md §A4 case 84."""
    insert_agent(context, "ag-in", ip_address="10.0.1.77")
    insert_agent(context, "ag-out", ip_address="10.0.2.1")
    insert_agent(context, "ag-also-in", ip_address="10.0.1.5")
    group = create(client, name="Datacenter A", match_ip_cidr="10.0.1.0/24")

    assert member_ids(client, group["id"]) == {"ag-also-in": "dynamic", "ag-in": "dynamic"}

    excluded = client.put(f"{GROUPS}/{group['id']}/members/ag-in", json={"membership_type": "exclude"})
    assert excluded.status_code == 201, excluded.text
    assert member_ids(client, group["id"]) == {"ag-also-in": "dynamic"}

    refused = client.post(GROUPS, json={"name": "bad", "match_ip_cidr": "10.0.1.0/33"})
    assert refused.status_code == 400
    assert refused.json()["message"].startswith("match_ip_cidr: '10.0.1.0/33' is not an IP address")


def test_create_shape_and_defaults(client: TestClient) -> None:
    group = create(client, name="Linux")
    assert group["id"].startswith("ag-")
    assert group | {"id": None, "created_at": None, "updated_at": None} == {
        "id": None,
        "name": "Linux",
        "description": "",
        "match_os": "",
        "match_architecture": "",
        "match_ip_cidr": "",
        "match_version": "",
        "enabled": True,
        "created_at": None,
        "updated_at": None,
    }
    assert group["created_at"] == group["updated_at"]
    assert client.get(f"{GROUPS}/{group['id']}").json() == group
    listed = client.get(GROUPS).json()
    assert (listed["total"], listed["data"]) == (1, [group])


def test_client_ids_names_and_conflicts(client: TestClient) -> None:
    create(client, id="ag-linux", name="Linux", match_os=" linux ", description="all of them")
    assert client.get(f"{GROUPS}/ag-linux").json()["match_os"] == "linux"
    same_name = client.post(GROUPS, json={"name": "Linux"})
    assert same_name.status_code == 409
    assert "name 'Linux' already exists" in same_name.json()["message"]
    same_id = client.post(GROUPS, json={"id": "ag-linux", "name": "Other"})
    assert same_id.status_code == 409
    assert client.post(GROUPS, json={"name": "x", "unknown": 1}).status_code == 400
    assert client.post(GROUPS, json={"name": "x", "match_os": "l" * 65}).status_code == 400
    assert client.post(GROUPS, json={"description": "no name"}).status_code == 400


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("match_ip_cidr", "10.0.1.0/33", "is not an IP address or CIDR network"),
        ("match_ip_cidr", "10.0.1.7/24", "did you mean 10.0.1.0/24?"),
        ("match_ip_cidr", "fd00::/129", "is not an IP address or CIDR network"),
        ("match_version", ">=banana", "'banana' is not a version"),
        ("match_version", "1.2 3", "needs an operator"),
        ("match_version", "<2.*", "a '*' pattern can only follow == or !="),
    ],
)
def test_invalid_criteria_are_refused_naming_the_field(
    client: TestClient, field: str, value: str, fragment: str
) -> None:
    refused = client.post(GROUPS, json={"name": "g", field: value})
    assert refused.status_code == 400
    assert refused.json()["message"].startswith(f"{field}: ")
    assert fragment in refused.json()["message"]
    assert client.get(GROUPS).json()["total"] == 0

    group = create(client, name="ok")
    updated = client.put(f"{GROUPS}/{group['id']}", json={field: value})
    assert updated.status_code == 400
    assert updated.json()["message"].startswith(f"{field}: ")
    assert client.get(f"{GROUPS}/{group['id']}").json()[field] == ""


def test_update_is_partial_and_null_clears_a_criterion(
    context_factory: Callable[..., AppContext], clock: FrozenClock
) -> None:
    with client_for(context_factory(clock)) as client:
        _update_is_partial(client, clock)


def _update_is_partial(client: TestClient, clock: FrozenClock) -> None:
    group = create(client, name="g", match_os="linux", match_version=">=2")
    clock.advance(timedelta(seconds=60))
    updated = client.put(f"{GROUPS}/{group['id']}", json={"match_version": None, "enabled": False})
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert (body["match_os"], body["match_version"], body["enabled"]) == ("linux", "", False)
    assert body["updated_at"] > group["updated_at"]
    assert body["created_at"] == group["created_at"]

    renamed = client.patch(f"{GROUPS}/{group['id']}", json={"name": "renamed"})
    assert renamed.json()["name"] == "renamed"
    assert client.put(f"{GROUPS}/{group['id']}", json={"name": None}).status_code == 400
    create(client, name="taken")
    assert client.put(f"{GROUPS}/{group['id']}", json={"name": "taken"}).status_code == 409
    assert client.put(f"{GROUPS}/ag-nope", json={"name": "x"}).status_code == 404


def test_delete_drops_manual_rows_and_unlinks_renewal_policies(client: TestClient, context: AppContext) -> None:
    insert_agent(context, "ag-web")
    group = create(client, name="g")
    client.post(f"{GROUPS}/{group['id']}/members", json={"agent_id": "ag-web"})
    policy = client.post("/api/v1/renewal-policies", json={"name": "grouped", "agent_group_id": group["id"]})
    assert policy.status_code == 201, policy.text

    assert client.delete(f"{GROUPS}/{group['id']}").status_code == 204
    assert client.get(f"{GROUPS}/{group['id']}").status_code == 404
    assert client.delete(f"{GROUPS}/{group['id']}").status_code == 404
    assert client.get(f"/api/v1/renewal-policies/{policy.json()['id']}").json()["agent_group_id"] is None
    with context.db.read() as session:
        assert session.scalars(select(AgentGroupMember)).all() == []


def test_evaluated_members_by_every_kind_of_criterion(client: TestClient, context: AppContext) -> None:
    insert_agent(context, "ag-web", os="Linux", architecture="x86_64", ip_address="10.0.1.10", version="2.0.14")
    insert_agent(context, "ag-arm", os="linux", architecture="aarch64", ip_address="10.0.1.11", version="2.1.0")
    insert_agent(context, "ag-old", os="linux", architecture="amd64", ip_address="10.0.1.12", version="1.9.0")
    insert_agent(context, "ag-win", os="windows", architecture="amd64", ip_address="10.0.3.15", version="2.0.12")
    insert_agent(context, "ag-mac", os="darwin", architecture="arm64", ip_address="fd00:7::5", version="2.0.14")
    insert_agent(context, "ag-retired", os="linux", architecture="amd64", ip_address="10.0.1.13", retired=True)

    def group_of(**criteria: str) -> set[str]:
        group = create(client, name=f"g{len(client.get(GROUPS).json()['data'])}", **criteria)
        found = member_ids(client, group["id"])
        assert set(found.values()) <= {"dynamic"}
        return set(found)

    assert group_of(match_os="LINUX") == {"ag-web", "ag-arm", "ag-old"}
    assert group_of(match_os="linux", match_architecture="amd64") == {"ag-web", "ag-old"}
    assert group_of(match_architecture="ARM64") == {"ag-arm", "ag-mac"}
    assert group_of(match_os="macOS") == {"ag-mac"}
    assert group_of(match_ip_cidr="10.0.0.0/16") == {"ag-web", "ag-arm", "ag-old", "ag-win"}
    assert group_of(match_ip_cidr="fd00::/16") == {"ag-mac"}
    assert group_of(match_ip_cidr="10.0.3.15") == {"ag-win"}
    assert group_of(match_version="2.0.14") == {"ag-web", "ag-mac"}
    assert group_of(match_version="2.0.*") == {"ag-web", "ag-win", "ag-mac"}
    assert group_of(match_version=">=2.0.13, <2.1") == {"ag-web", "ag-mac"}
    assert group_of(match_os="linux", match_version="<2") == {"ag-old"}
    assert group_of() == set()  # no criteria: no dynamic members


def test_manual_rows_include_exclude_and_disabled_groups(client: TestClient, context: AppContext) -> None:
    insert_agent(context, "ag-a", ip_address="10.0.1.10")
    insert_agent(context, "ag-b", ip_address="10.0.1.20")
    insert_agent(context, "ag-c", ip_address="10.9.9.9")
    insert_agent(context, "ag-retired", ip_address="10.0.1.30")
    group = create(client, name="dc-a", match_ip_cidr="10.0.1.0/24")
    gid = group["id"]

    assert client.post(f"{GROUPS}/{gid}/members", json={"agent_id": "ag-c"}).status_code == 201
    assert client.put(f"{GROUPS}/{gid}/members/ag-a", json={"membership_type": "include"}).status_code == 201
    assert client.put(f"{GROUPS}/{gid}/members/ag-b", json={"membership_type": "exclude"}).status_code == 201
    assert member_ids(client, gid) == {"ag-a": "include", "ag-c": "include", "ag-retired": "dynamic"}

    with context.db.begin() as session:  # retirement removes an agent from every group
        retired = session.get(Agent, "ag-retired")
        assert retired is not None
        retired.retired_at = context.clock.now()
    assert member_ids(client, gid) == {"ag-a": "include", "ag-c": "include"}
    service = AgentGroupService(context.db, context.clock)  # what other features ask
    assert service.member_ids(gid) == {"ag-a": Membership.INCLUDE, "ag-c": Membership.INCLUDE}

    assert member_ids(client, gid, membership="include") == {"ag-a": "include", "ag-c": "include"}
    assert member_ids(client, gid, membership="dynamic") == {}
    assert member_ids(client, gid, membership="exclude") == {"ag-b": "exclude"}
    assert client.get(f"{GROUPS}/{gid}/members", params={"membership": "rule"}).status_code == 400

    # An exclude wins over an include: turning the include into an exclude removes the agent.
    assert client.put(f"{GROUPS}/{gid}/members/ag-c", json={"membership_type": "exclude"}).status_code == 200
    assert member_ids(client, gid) == {"ag-a": "include"}

    # Disabled: the rules stop, the hand-picked includes stay.
    assert client.delete(f"{GROUPS}/{gid}/members/ag-a").status_code == 204
    assert member_ids(client, gid) == {"ag-a": "dynamic"}
    client.put(f"{GROUPS}/{gid}/members/ag-c", json={"membership_type": "include"})
    client.put(f"{GROUPS}/{gid}", json={"enabled": False})
    assert member_ids(client, gid) == {"ag-c": "include"}


def test_member_rows_are_checked(client: TestClient, context: AppContext) -> None:
    insert_agent(context, "ag-web")
    insert_agent(context, "ag-gone", retired=True)
    gid = create(client, name="g")["id"]

    added = client.post(f"{GROUPS}/{gid}/members", json={"agent_id": "ag-web", "membership_type": "exclude"})
    assert added.status_code == 201
    assert added.json() == {"agent_group_id": gid, "agent_id": "ag-web", "membership_type": "exclude"}
    again = client.post(f"{GROUPS}/{gid}/members", json={"agent_id": "ag-web", "membership_type": "include"})
    assert again.status_code == 409

    same = client.put(f"{GROUPS}/{gid}/members/ag-web", json={"membership_type": "exclude"})
    assert (same.status_code, same.json()["membership_type"]) == (200, "exclude")

    assert client.post(f"{GROUPS}/{gid}/members", json={"agent_id": "ag-ghost"}).status_code == 404
    assert client.post(f"{GROUPS}/ag-nope/members", json={"agent_id": "ag-web"}).status_code == 404
    assert client.get(f"{GROUPS}/ag-nope/members").status_code == 404
    retired = client.post(f"{GROUPS}/{gid}/members", json={"agent_id": "ag-gone"})
    assert retired.status_code == 400
    assert "retired" in retired.json()["message"]
    assert client.put(f"{GROUPS}/{gid}/members/ag-gone", json={"membership_type": "exclude"}).status_code == 201
    bad_type = client.put(f"{GROUPS}/{gid}/members/ag-web", json={"membership_type": "dynamic"})
    assert bad_type.status_code == 400

    assert client.delete(f"{GROUPS}/{gid}/members/ag-web").status_code == 204
    missing = client.delete(f"{GROUPS}/{gid}/members/ag-web")
    assert missing.status_code == 404


def test_members_are_paged_by_agent_name(client: TestClient, context: AppContext) -> None:
    for index in range(7):
        insert_agent(context, f"ag-{index}", ip_address=f"192.168.10.{index}")
    gid = create(client, name="lan", match_ip_cidr="192.168.10.0/29")["id"]  # .0-.7

    first = members(client, gid, page=1, per_page=3)
    assert (first["total"], first["page"], first["per_page"]) == (7, 1, 3)
    assert [a["id"] for a in first["data"]] == ["ag-0", "ag-1", "ag-2"]
    last = members(client, gid, page=3, per_page=3)
    assert [a["id"] for a in last["data"]] == ["ag-6"]
    assert members(client, gid, page=4, per_page=3)["data"] == []

    agent = first["data"][0]
    assert set(agent) == {
        "id",
        "name",
        "hostname",
        "status",
        "last_heartbeat_at",
        "registered_at",
        "os",
        "architecture",
        "ip_address",
        "version",
        "retired_at",
        "retired_reason",
        "membership",
    }
    assert "api_key_hash" not in agent


def test_every_change_is_audited(client: TestClient, context: AppContext) -> None:
    insert_agent(context, "ag-web")
    gid = create(client, name="audited", match_os="linux")["id"]
    client.put(f"{GROUPS}/{gid}", json={"match_ip_cidr": "10.0.0.0/8", "name": "audited"})
    client.post(f"{GROUPS}/{gid}/members", json={"agent_id": "ag-web"})
    client.put(f"{GROUPS}/{gid}/members/ag-web", json={"membership_type": "exclude"})
    client.delete(f"{GROUPS}/{gid}/members/ag-web")
    client.delete(f"{GROUPS}/{gid}")

    assert audit_actions(context, gid) == [
        (
            "agent_group_created",
            "admin",
            {
                "group_name": "audited",
                "match_os": "linux",
                "match_architecture": "",
                "match_ip_cidr": "",
                "match_version": "",
            },
        ),
        ("agent_group_updated", "admin", {"changes": {"match_ip_cidr": "10.0.0.0/8", "group_name": "audited"}}),
        ("agent_group_member_added", "admin", {"agent_id": "ag-web", "membership_type": "include"}),
        (
            "agent_group_member_changed",
            "admin",
            {"agent_id": "ag-web", "membership_type": "exclude", "previous_membership_type": "include"},
        ),
        ("agent_group_member_removed", "admin", {"agent_id": "ag-web", "membership_type": "exclude"}),
        ("agent_group_deleted", "admin", {"group_name": "audited"}),
    ]


def test_readers_read_and_operators_write(make_client: Callable[..., TestClient], context: AppContext) -> None:
    insert_agent(context, "ag-web")
    with make_client("operator") as operator, make_client("viewer") as viewer:
        gid = create(operator, name="ops")["id"]
        assert operator.put(f"{GROUPS}/{gid}/members/ag-web", json={"membership_type": "include"}).status_code == 201
        assert viewer.get(GROUPS).status_code == 200
        assert viewer.get(f"{GROUPS}/{gid}/members").status_code == 200
        assert viewer.post(GROUPS, json={"name": "nope"}).status_code == 403
        assert viewer.delete(f"{GROUPS}/{gid}/members/ag-web").status_code == 403
        assert viewer.delete(f"{GROUPS}/{gid}").status_code == 403
    with make_client(None) as anonymous:
        assert anonymous.get(GROUPS).status_code == 401
