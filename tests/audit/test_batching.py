"""The middleware's audit rows: committed in shared transactions, and before the client gets its response."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from certctl.audit.batching import Row, RowBatcher
from certctl.audit.models import RESOURCE_ID_LENGTH, AuditEvent
from certctl.audit.service import AuditService
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.org.models import Team
from certctl.security.roles import Actor, Role
from tests.conftest import client_for


@pytest.fixture
def ctx(context_factory: Callable[..., AppContext], clock: FrozenClock) -> AppContext:
    return context_factory(clock=clock)


def api_rows(ctx: AppContext) -> list[AuditEvent]:
    with ctx.db.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.resource_type == "api")))


# --- RowBatcher on its own --------------------------------------------------------------------------


def test_rows_arriving_while_a_batch_is_written_go_out_together_in_the_next() -> None:
    batches: list[list[str]] = []
    first_started, release_first = threading.Event(), threading.Event()

    def write_rows(rows: Sequence[Row]) -> None:
        batches.append([row["n"] for row in rows])
        if len(batches) == 1:
            first_started.set()
            assert release_first.wait(10)

    batcher = RowBatcher(write_rows)

    async def scenario() -> None:
        first = asyncio.create_task(batcher.write({"n": "first"}))
        await asyncio.to_thread(first_started.wait, 10)
        later = [asyncio.create_task(batcher.write({"n": f"later-{i}"})) for i in range(10)]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in [first, *later])  # nobody is answered before its commit
        release_first.set()
        await asyncio.gather(first, *later)

    asyncio.run(scenario())
    assert batches == [["first"], [f"later-{i}" for i in range(10)]]


def test_a_batch_is_capped_and_the_rest_follows_at_once() -> None:
    sizes: list[int] = []
    batcher = RowBatcher(lambda rows: sizes.append(len(rows)), max_batch=4)

    async def scenario() -> None:
        await asyncio.gather(*(batcher.write({"n": i}) for i in range(10)))

    asyncio.run(scenario())
    assert sizes == [4, 4, 2]


def test_a_row_that_cannot_be_written_fails_only_its_own_write(caplog: pytest.LogCaptureFixture) -> None:
    written: list[int] = []

    def write_rows(rows: Sequence[Row]) -> None:
        if any(row["n"] == 2 for row in rows):
            raise ValueError("row 2 is refused")
        written.extend(row["n"] for row in rows)

    batcher = RowBatcher(write_rows)

    async def scenario() -> list[BaseException | None]:
        results = await asyncio.gather(*(batcher.write({"n": i}) for i in range(5)), return_exceptions=True)
        return list(results)

    with caplog.at_level(logging.WARNING, logger="certctl.audit"):
        results = asyncio.run(scenario())
    assert [isinstance(result, ValueError) for result in results] == [False, False, True, False, False]
    assert sorted(written) == [0, 1, 3, 4]
    assert any(record.msg == "audit.batch_failed" for record in caplog.records)


def test_an_overlong_path_is_cut_to_the_column_and_kept_whole_in_the_details(ctx: AppContext) -> None:
    path = "/api/v1/teams/" + "x" * 3000
    service = AuditService(ctx.db, ctx.clock)
    asyncio.run(service.record_api_call(Actor(name="alice", role=Role.OPERATOR), "api_post", path, {"path": path}))
    [row] = api_rows(ctx)
    assert row.resource_id == path[:RESOURCE_ID_LENGTH]
    assert row.details["path"] == path


# --- through the app ----------------------------------------------------------------------------


def test_the_response_waits_until_its_audit_row_is_committed(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    entered, release = threading.Event(), threading.Event()
    insert_rows = AuditService._insert_rows

    def slow_insert(self: AuditService, rows: Sequence[Row]) -> None:
        entered.set()
        assert release.wait(10)
        insert_rows(self, rows)

    monkeypatch.setattr(AuditService, "_insert_rows", slow_insert)
    responses: list[int] = []
    with client_for(ctx) as api:
        caller = threading.Thread(
            target=lambda: responses.append(api.post("/api/v1/teams", json={"name": "web"}).status_code)
        )
        caller.start()
        assert entered.wait(10)
        caller.join(0.3)
        assert caller.is_alive()  # the team is committed, the response is held back
        assert responses == []
        with ctx.db.read() as session:
            assert session.scalar(select(Team.name)) == "web"
        release.set()
        caller.join(10)
    assert responses == [201]
    assert [row.details["status"] for row in api_rows(ctx)] == [201]


def test_a_call_whose_audit_row_cannot_be_written_is_answered_500(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(self: AuditService, rows: Sequence[Row]) -> None:
        raise RuntimeError("audit database unavailable")

    monkeypatch.setattr(AuditService, "_insert_rows", refuse)
    with caplog.at_level(logging.ERROR), client_for(ctx) as api:
        response = api.post("/api/v1/teams", json={"name": "web"})
    assert response.status_code == 500
    assert response.json()["error"] == "Internal Server Error"
    assert "x-request-id" in response.headers
    assert any(record.msg == "audit.write_failed" for record in caplog.records)
    # The change itself was committed earlier, in its own transaction: the client was told it failed, so
    # the outcome is unknown to it, never falsely reported as done without a trail.
    with ctx.db.read() as session:
        assert session.scalar(select(Team.name)) == "web"


def test_concurrent_calls_each_get_exactly_one_row(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    insert_rows = AuditService._insert_rows

    def counting_insert(self: AuditService, rows: Sequence[Row]) -> None:
        sizes.append(len(rows))
        insert_rows(self, rows)

    monkeypatch.setattr(AuditService, "_insert_rows", counting_insert)
    with client_for(ctx) as api:
        threads = [
            threading.Thread(target=lambda n=n: api.post("/api/v1/teams", json={"name": f"team-{n}"}))
            for n in range(12)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert sum(sizes) == 12
    assert len(api_rows(ctx)) == 12
    assert all(row.timestamp == datetime(2026, 1, 1, tzinfo=UTC) for row in api_rows(ctx))


def test_a_streamed_body_over_the_limit_is_recorded_with_the_413_it_got(
    context_factory: Callable[..., AppContext],
) -> None:
    ctx = context_factory(max_body_size=1024)

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "too-big",'
        yield b'"description": "' + b" " * 2048 + b'"}'

    with client_for(ctx) as api:
        response = api.post("/api/v1/teams", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    [row] = api_rows(ctx)
    assert row.details["status"] == 413
