"""Group commit on the event loop: what concurrent requests submit while a write is in progress goes out
together in the next write.

A request awaits its item's outcome. The first item of an idle queue is written at once, in a worker
thread, with no timer added to its latency; items arriving meanwhile queue up and the next write takes
them all (up to `max_batch`). Under load one transaction and one thread hop serve many requests instead
of one each. The API's creates (certificates/service.py) and audit rows (audit/batching.py) use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar
from weakref import WeakKeyDictionary

import anyio

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Writes items with `write_batch(items) -> outcomes` (an outcome per item: its result, or the error to
    raise for it), called in a worker thread. When `write_batch` raises, every item of the batch gets that
    error: it must raise only when none of them can have been written.

    One instance serves every event loop of the process (tests run one per client), each with its own queue.
    """

    def __init__(self, write_batch: Callable[[Sequence[T]], Sequence[R | Exception]], max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write_batch, self._max_batch = write_batch, max_batch
        self._queues: WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue[T, R]] = WeakKeyDictionary()

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        done: asyncio.Future[R] = loop.create_future()
        queue.waiting.append((item, done))
        if queue.drainer is None:
            queue.drainer = loop.create_task(self._drain(queue))
        return await done

    async def _drain(self, queue: _Queue[T, R]) -> None:
        try:
            while queue.waiting:
                batch = queue.waiting[: self._max_batch]
                del queue.waiting[: self._max_batch]
                await self._write(batch)
        finally:
            queue.drainer = None

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            outcomes: Sequence[R | Exception] = await anyio.to_thread.run_sync(
                self._write_batch, [item for item, _ in batch]
            )
            if len(outcomes) != len(batch):
                raise RuntimeError(f"write_batch gave {len(outcomes)} outcomes for {len(batch)} items")
        except Exception as exc:  # every waiter is answered, whatever happened: none may wait forever
            outcomes = [exc] * len(batch)
        for (_, done), outcome in zip(batch, outcomes, strict=True):
            if done.done():  # its request went away (client gone, task cancelled)
                continue
            if isinstance(outcome, Exception):
                done.set_exception(outcome)
            else:
                done.set_result(outcome)


class _Queue(Generic[T, R]):
    __slots__ = ("drainer", "waiting")

    def __init__(self) -> None:
        self.waiting: list[tuple[T, asyncio.Future[R]]] = []
        self.drainer: asyncio.Task[None] | None = None
