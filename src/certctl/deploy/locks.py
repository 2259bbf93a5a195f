"""Locks that keep two deployments from interleaving (agent-targets-discovery.md §A1.9, §A2.1).

* `TargetLocks`: one lock per target id, held by a connector across its whole deploy (write, validate,
  reload, verify). The same id always gives the same lock; an empty id gives none.
* `locked_paths()`: the primitive's own lock per destination path, taken in sorted order (no deadlock
  between plans that share files). Threads of this process queue on an in-process lock; other
  processes (a second agent, an operator's script using flock(1)) on an flock of `<file>.certctl-lock`
  beside the destination.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from certctl.deploy.errors import LockTimeout

LOCK_SUFFIX = ".certctl-lock"
DEFAULT_LOCK_TIMEOUT_SECONDS = 300.0
_FLOCK_POLL_SECONDS = 0.02


class TargetLocks:
    """Per-target mutexes, created on first use and never removed (a handful per agent)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def lock_for(self, target_id: str | None) -> threading.Lock | None:
        if not target_id:
            return None
        with self._guard:
            return self._locks.setdefault(target_id, threading.Lock())

    @contextmanager
    def holding(self, target_id: str | None) -> Iterator[None]:
        lock = self.lock_for(target_id)
        if lock is None:
            yield
            return
        with lock:
            yield


TARGET_LOCKS = TargetLocks()
"""The agent process's registry (A1.9 asks for one per process)."""

_path_guard = threading.Lock()
_path_locks: dict[Path, threading.Lock] = {}


def lock_file_for(path: Path) -> Path:
    return path.with_name(path.name + LOCK_SUFFIX)


def _thread_lock(path: Path) -> threading.Lock:
    with _path_guard:
        return _path_locks.setdefault(path, threading.Lock())


@contextmanager
def locked_paths(paths: Sequence[Path], timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold every path's lock; raises LockTimeout naming the path still locked after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    with ExitStack() as stack:
        for path in sorted(set(paths)):
            lock = _thread_lock(path)
            if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise LockTimeout(f"{path} is locked by another deployment in this process")
            stack.callback(lock.release)
            stack.enter_context(_flock(lock_file_for(path), deadline))
        yield


@contextmanager
def _flock(lock_path: Path, deadline: float) -> Iterator[None]:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"{lock_path} is held by another process") from None
                time.sleep(_FLOCK_POLL_SECONDS)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
