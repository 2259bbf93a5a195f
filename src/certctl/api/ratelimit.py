"""Token buckets keyed per API key (after authentication) or per client IP (unauthenticated routes)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

IDLE_EVICTION_SECONDS = 600.0  # buckets idle for 10 minutes are dropped (core.md §4.2)
_SWEEP_EVERY = 1024


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Refill `rate` tokens per second up to `burst`; a new bucket starts full."""

    def __init__(self, rate: float, burst: int, monotonic: Callable[[], float]) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst ≥ 1")
        self.rate, self.burst = rate, burst
        self._monotonic = monotonic
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._calls = 0

    def acquire(self, key: str) -> float:
        """Take one token for `key`; returns 0 when allowed, else the seconds until a token is free."""
        now = self._monotonic()
        with self._lock:
            self._calls += 1
            if self._calls % _SWEEP_EVERY == 0:
                self._evict_idle(now)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated=now)
            else:
                bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def _evict_idle(self, now: float) -> None:
        # Only buckets that would have refilled anyway: dropping a still-draining one (a slow rate with a
        # large burst) would hand its key a full burst early.
        idle = [
            key
            for key, bucket in self._buckets.items()
            if now - bucket.updated > IDLE_EVICTION_SECONDS
            and bucket.tokens + (now - bucket.updated) * self.rate >= self.burst
        ]
        for key in idle:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after_header(wait_seconds: float) -> str:
    return str(max(1, math.ceil(wait_seconds)))
