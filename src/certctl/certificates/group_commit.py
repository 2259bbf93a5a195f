"""Group commit from threads: callers that arrive while a write is in progress wait, then go out together.

The certificate service uses it for creates (CertificateService.create): under load one transaction, one
query for the checks and one multi-row INSERT per table serve many creates; a create alone is written at
once, as before, with no timer added to its latency. The audit middleware batches its rows the same way,
on the event loop (audit/batching.py); these callers are threads of the thread pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
MAX_BATCH = 100  # items per write at most: for creates, each table then gets one INSERT statement


@dataclass(eq=False, slots=True)
class _Waiter(Generic[T, R]):
    item: T
    woken: threading.Event = field(default_factory=threading.Event)
    outcome: R | Exception | None = None
    finished: bool = False
    leads: bool = False  # woken to lead, not because its item was written


class GroupCommit(Generic[T, R]):
    """Writes items submitted from many threads with `write_batch(items) -> outcomes` (an outcome per item,
    a result or the error to raise for it; it raises only when no item can have been written).

    The first caller leads: it writes every item queued meanwhile, batch after batch, until its own is
    written, then hands the lead to the oldest caller still waiting, so no caller serves the others for
    long. Followers only wait; under load they are many, and a batch carries them all."""

    def __init__(self, write_batch: Callable[[Sequence[T]], Sequence[R | Exception]], max_batch: int = MAX_BATCH):
        self._write_batch, self._max_batch = write_batch, max_batch
        self._lock = threading.Lock()
        self._queue: list[_Waiter[T, R]] = []
        self._leading = False

    def submit(self, item: T) -> R:
        own: _Waiter[T, R] = _Waiter(item)
        with self._lock:
            self._queue.append(own)
            leads, self._leading = not self._leading, True
        if not leads:
            own.woken.wait()
            leads = own.leads
        if leads:
            self._lead(own)
        if isinstance(own.outcome, Exception):
            raise own.outcome
        return own.outcome  # type: ignore[return-value]  # finished, so an R

    def _lead(self, own: _Waiter[T, R]) -> None:
        try:
            while not own.finished:
                with self._lock:
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
                self._write(batch, own)
        finally:
            with self._lock:
                if self._queue:
                    heir = self._queue[0]
                    heir.leads = True
                    heir.woken.set()
                else:
                    self._leading = False

    def _write(self, batch: list[_Waiter[T, R]], own: _Waiter[T, R]) -> None:
        failure: Exception = RuntimeError("the leading create stopped before this one was written")
        try:
            for waiter, outcome in zip(batch, self._write_batch([w.item for w in batch]), strict=True):
                waiter.outcome, waiter.finished = outcome, True
        except Exception as exc:
            failure = exc
        finally:  # every follower is woken, whatever happened: none may wait forever
            for waiter in batch:
                if not waiter.finished:
                    waiter.outcome, waiter.finished = failure, True
                if waiter is not own:
                    waiter.woken.set()
