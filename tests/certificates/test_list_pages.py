"""List pages: cursor and offset pages carry the same items, each with its mapped targets."""

from __future__ import annotations

from typing import Any

import pytest

from certctl.clock import FrozenClock
from certctl.context import AppContext
from tests.conftest import client_for
from tests.factories import add_agent, add_target, seed_inventory

BASE = {"owner_id": "o-alice", "team_id": "t-web", "issuer_id": "iss-local", "renewal_policy_id": "rp-default"}


@pytest.fixture
def api(context_factory: Any) -> Any:
    context: AppContext = context_factory(FrozenClock())
    seed_inventory(context)
    with client_for(context) as client:
        yield client, context


def test_cursor_and_offset_pages_carry_the_same_items_with_their_targets(api: Any) -> None:
    client, context = api
    add_agent(context, "ag-1")
    add_target(context, "tgt-a", "ag-1")
    add_target(context, "tgt-b", "ag-1")
    for name, targets in (("one", ["tgt-b", "tgt-a"]), ("two", []), ("three", ["tgt-b"])):
        body = {"name": name, "common_name": f"{name}.example.com", "target_ids": targets} | BASE
        assert client.post("/api/v1/certificates", json=body).status_code == 201

    first = client.get("/api/v1/certificates", params={"page_size": 2}).json()
    assert set(first) == {"data", "total", "page_size", "next_cursor"}
    last = client.get("/api/v1/certificates", params={"page_size": 2, "cursor": first["next_cursor"]}).json()
    assert set(last) == {"data", "total", "page_size"}  # no next_cursor on the last page
    offset = client.get("/api/v1/certificates").json()
    assert set(offset) == {"data", "total", "page", "per_page"}

    walked = first["data"] + last["data"]
    assert walked == offset["data"]
    assert {c["name"]: c["target_ids"] for c in walked} == {"one": ["tgt-a", "tgt-b"], "two": [], "three": ["tgt-b"]}
    assert all(c["expires_at"] is None and c["revoked_at"] is None for c in walked)  # null item fields are kept

    sparse = client.get("/api/v1/certificates", params={"page_size": 2, "fields": "name,target_ids"}).json()
    assert all(set(c) == {"id", "name", "target_ids"} for c in sparse["data"])


def test_every_cursor_page_carries_the_total_of_its_filter(api: Any) -> None:
    client, _ = api
    for index in range(5):
        body = {"name": f"c{index}", "common_name": f"c{index}.example.com"} | BASE
        assert client.post("/api/v1/certificates", json=body).status_code == 201
    client.delete("/api/v1/certificates/" + client.get("/api/v1/certificates").json()["data"][0]["id"])

    def walk(**params: Any) -> list[int]:
        totals, cursor = [], None
        while True:
            page = client.get("/api/v1/certificates", params={"page_size": 2, **params, "cursor": cursor}).json()
            totals.append(page["total"])
            cursor = page.get("next_cursor")
            if not cursor:
                return totals

    statuses = [c["status"] for c in client.get("/api/v1/certificates").json()["data"]]
    live = next(status for status in statuses if status != "Archived")
    assert (statuses.count("Archived"), statuses.count(live)) == (1, 4)
    # Unfiltered and status-only totals come from the kept counts, the others from counting rows: all agree.
    assert walk() == [5, 5, 5]
    assert walk(status="Archived") == [1]
    assert walk(status=live) == [4, 4]
    assert walk(owner_id="o-alice") == [5, 5, 5]
    assert walk(owner_id="o-alice", status=live) == [4, 4]
