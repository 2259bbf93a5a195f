"""Group commit on the event loop (db/group_commit.py): what queues during a write goes out in the next."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from certctl.db.group_commit import GroupCommit


class _HeldWrites:
    """A write_batch that holds its first batch until released, and records every batch it wrote."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int | Exception]:
        if not self.batches:
            self.started.set()
            assert self.release.wait(30)
        self.batches.append(list(items))
        return [ValueError(f"bad {i}") if i < 0 else i * 2 for i in items]


def test_what_queues_during_a_write_goes_out_together_in_the_next() -> None:
    writes = _HeldWrites()
    group: GroupCommit[int, int] = GroupCommit(writes, max_batch=100)

    async def scenario() -> list[int | BaseException]:
        first = asyncio.create_task(group.submit(1))
        await asyncio.to_thread(writes.started.wait, 10)
        later = [asyncio.create_task(group.submit(i)) for i in (2, -3, 4)]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in [first, *later])  # nobody is answered before its write
        writes.release.set()
        return await asyncio.gather(first, *later, return_exceptions=True)

    first, two, bad, four = asyncio.run(scenario())
    assert writes.batches == [[1], [2, -3, 4]]
    assert (first, two, four) == (2, 4, 8)
    assert isinstance(bad, ValueError)
    assert str(bad) == "bad -3"


def test_a_batch_is_capped_and_the_rest_follows_at_once() -> None:
    sizes: list[int] = []

    def write(items: Sequence[int]) -> list[int | Exception]:
        sizes.append(len(items))
        return list(items)

    group: GroupCommit[int, int] = GroupCommit(write, max_batch=4)

    async def scenario() -> list[int]:
        return await asyncio.gather(*(group.submit(i) for i in range(10)))

    assert asyncio.run(scenario()) == list(range(10))
    assert sizes == [4, 4, 2]


def test_every_caller_is_answered_when_the_write_itself_fails() -> None:
    def broken(items: Sequence[int]) -> list[int | Exception]:
        raise RuntimeError("database gone")

    group: GroupCommit[int, int] = GroupCommit(broken, max_batch=10)

    async def scenario() -> list[int | BaseException]:
        return await asyncio.gather(*(group.submit(i) for i in range(3)), return_exceptions=True)

    results = asyncio.run(scenario())
    assert [str(result) for result in results] == ["database gone"] * 3
    with pytest.raises(RuntimeError, match="database gone"):  # the queue is usable again afterwards
        asyncio.run(group.submit(4))


def test_a_write_that_answers_for_the_wrong_number_of_items_fails_them_all() -> None:
    group: GroupCommit[int, int] = GroupCommit(lambda items: [], max_batch=10)
    with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
        asyncio.run(group.submit(1))
