"""Group commit for the middleware's audit rows: one transaction for every row that arrived meanwhile.

A request hands its row over and waits until the row is committed; the middleware sends the response only
then (api/middleware.py). While one batch is being written, the rows of the requests finishing meanwhile
queue up and go out together in the next, so under load a transaction carries many rows, and alone a
request pays one short transaction, as before, with no timer added to its latency.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from certctl.db.group_commit import GroupCommit

log = logging.getLogger("certctl.audit")

Row = dict[str, Any]
MAX_BATCH = 500  # at most INSERT_MANY_PAGE_ROWS (db/engine.py): a batch is then one INSERT statement


class RowBatcher:
    """Writes rows through `write_rows` (one transaction per call, in a worker thread), batching the rows
    that arrive while a write is in progress (db/group_commit.py). `write(row)` returns once the row is
    committed, or raises what the write raised for it.

    A failed batch is retried row by row, so one bad row fails only its own request.
    """

    def __init__(self, write_rows: Callable[[Sequence[Row]], None], max_batch: int = MAX_BATCH) -> None:
        self._write_rows = write_rows
        self._group: GroupCommit[Row, None] = GroupCommit(self._write_batch, max_batch)

    async def write(self, row: Row) -> None:
        await self._group.submit(row)

    def _write_batch(self, rows: Sequence[Row]) -> list[Exception | None]:
        try:
            self._write_rows(rows)
            return [None] * len(rows)
        except Exception as exc:
            if len(rows) == 1:
                return [exc]
            log.warning("audit.batch_failed", extra={"rows": len(rows), "error": str(exc)})
        outcomes: list[Exception | None] = []
        for row in rows:
            try:
                self._write_rows([row])
                outcomes.append(None)
            except Exception as exc:
                outcomes.append(exc)
        return outcomes
