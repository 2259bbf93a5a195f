"""Group commit for the middleware's audit rows: one transaction for every row that arrived meanwhile.

A request hands its row over and waits until the row is committed; the middleware sends the response only
then (api/middleware.py). While one batch is being written, the rows of the requests finishing meanwhile
queue up and go out together in the next, so under load a transaction carries many rows, and alone a
request pays one short transaction, as before, with no timer added to its latency.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any
from weakref import WeakKeyDictionary

import anyio

log = logging.getLogger("certctl.audit")

Row = dict[str, Any]
MAX_BATCH = 500  # at most INSERT_MANY_PAGE_ROWS (db/engine.py): a batch is then one INSERT statement


class RowBatcher:
    """Writes rows through `write_rows` (one transaction per call, in a worker thread), batching the rows
    that arrive while a write is in progress. `write(row)` returns once the row is committed, or raises
    what the write raised for it.

    A failed batch is retried row by row, so one bad row fails only its own request. One batcher serves
    every event loop of the process (tests run one per client), each with its own queue.
    """

    def __init__(self, write_rows: Callable[[Sequence[Row]], None], max_batch: int = MAX_BATCH) -> None:
        self._write_rows = write_rows
        self._max_batch = max_batch
        self._queues: WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = WeakKeyDictionary()

    async def write(self, row: Row) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        done: asyncio.Future[None] = loop.create_future()
        queue.waiting.append((row, done))
        if queue.drainer is None:
            queue.drainer = loop.create_task(self._drain(queue))
        await done

    async def _drain(self, queue: _Queue) -> None:
        try:
            while queue.waiting:
                batch = queue.waiting[: self._max_batch]
                del queue.waiting[: self._max_batch]
                await self._write_batch(batch)
        finally:
            queue.drainer = None

    async def _write_batch(self, batch: list[tuple[Row, asyncio.Future[None]]]) -> None:
        try:
            await anyio.to_thread.run_sync(self._write_rows, [row for row, _ in batch])
        except Exception as exc:
            if len(batch) > 1:
                log.warning("audit.batch_failed", extra={"rows": len(batch), "error": str(exc)})
                for one in batch:
                    await self._write_batch([one])
                return
            _, done = batch[0]
            if not done.done():
                done.set_exception(exc)
            return
        for _, done in batch:
            if not done.done():
                done.set_result(None)


class _Queue:
    __slots__ = ("drainer", "waiting")

    def __init__(self) -> None:
        self.waiting: list[tuple[Row, asyncio.Future[None]]] = []
        self.drainer: asyncio.Task[None] | None = None
