"""Signed OCSP answers kept in memory, per (issuer, canonical serial, CertID hash), for nonce-less requests.

Staleness across replicas: every revocation bumps `issuers.revocation_revision` in its transaction. Each
process re-reads an issuer's revision at most once per `REVISION_CHECK_SECONDS`; an answer is served from
the cache only while the last check is younger than that, and a changed revision drops all of the
issuer's answers, so every replica stops serving a pre-revocation answer within about a second. On the
revoking process `invalidate(issuer_id)` drops them at once.

Dropping is O(1): each issuer has a generation number, entries remember the generation they were made
under, and an entry from an older generation is a miss (it leaves the LRU when met or pushed out). A
miss captures the generation *before* it reads the database, so an answer computed from a read that
raced with a revocation is already stale when it is stored.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

REVISION_CHECK_SECONDS = 1.0
DEFAULT_MAX_ENTRIES = 200_000
"""About 1 KiB of DER each with an ECDSA responder: some 200 MB at most."""

CacheKey = tuple[str, str, str]
"""(issuer_id, canonical serial, CertID hash algorithm name)."""


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    der: bytes
    status: str
    """good / revoked / unknown (the metric label)."""
    next_update: float
    """Monotonic instant of the response's nextUpdate (for Cache-Control max-age)."""
    fresh_until: float
    """Monotonic instant after which the entry is not served (nextUpdate minus a margin)."""
    generation: int


@dataclass(frozen=True, slots=True)
class _Revision:
    stamp: object
    checked_at: float


class ResponseCache:
    """Thread-safe LRU of signed answers with per-issuer invalidation; every method is free of I/O."""

    def __init__(self, monotonic: Callable[[], float], max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._monotonic = monotonic
        self._max_entries = max_entries
        self._entries: OrderedDict[CacheKey, CachedAnswer] = OrderedDict()
        self._generations: dict[str, int] = {}
        self._revisions: dict[str, _Revision] = {}
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    # -- revision watch -----------------------------------------------------------------------------------

    def revision_is_current(self, issuer_id: str, now: float) -> bool:
        """Whether the issuer's revision was read less than REVISION_CHECK_SECONDS ago."""
        seen = self._revisions.get(issuer_id)
        return seen is not None and now - seen.checked_at < REVISION_CHECK_SECONDS

    def observe_revision(self, issuer_id: str, stamp: object, checked_at: float) -> None:
        """Record what the database says now (revision and anything else that changes answers); a change
        from the last observation drops the issuer's answers. `checked_at` is the monotonic instant the
        read *started*, so a slow read never extends freshness."""
        with self._lock:
            previous = self._revisions.get(issuer_id)
            if previous is not None and previous.stamp != stamp:
                self._generations[issuer_id] = next(self._counter)
            self._revisions[issuer_id] = _Revision(stamp, checked_at)

    def forget_issuer(self, issuer_id: str) -> None:
        """The issuer is gone or disabled: drop its answers and its revision."""
        with self._lock:
            self._generations[issuer_id] = next(self._counter)
            self._revisions.pop(issuer_id, None)

    # -- answers ----------------------------------------------------------------------------------------------

    def generation(self, issuer_id: str) -> int:
        return self._generations.get(issuer_id, 0)

    def invalidate(self, issuer_id: str) -> None:
        """Drop every answer of the issuer now (called after a revocation commits)."""
        self._generations[issuer_id] = next(self._counter)  # a fresh value: no lost update between threads

    def get(self, key: CacheKey, now: float) -> CachedAnswer | None:
        """A fresh answer, only while the issuer's revision check is current; else None."""
        if not self.revision_is_current(key[0], now):
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.generation != self._generations.get(key[0], 0) or now >= entry.fresh_until:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: CacheKey, answer: CachedAnswer) -> None:
        with self._lock:
            if answer.generation != self._generations.get(key[0], 0):
                return  # computed from a read older than an invalidation
            self._entries[key] = answer
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
