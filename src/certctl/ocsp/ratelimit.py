"""Per-source-IP token buckets for the OCSP endpoints (CERTCTL_OCSP_RATE_LIMIT_PER_IP_MIN)."""

from __future__ import annotations

import threading
from collections.abc import Callable

MAX_TRACKED_IPS = 65_536
"""Past this many addresses, buckets that have refilled are dropped (a full bucket is the default anyway)."""


class PerIPLimiter:
    """At most `per_minute` requests per IP, refilled continuously, so a burst of `per_minute` is allowed.

    The caller passes the socket's peer address: X-Forwarded-For is ignored on purpose (pki.md §A2.4),
    since a client could otherwise pick its own bucket.
    """

    def __init__(self, per_minute: int, monotonic: Callable[[], float]) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._monotonic = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}  # ip → (tokens, updated at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def allow(self, ip: str) -> bool:
        """Take one token for `ip`; False when none is left."""
        if self.per_minute <= 0:
            return True
        now = self._monotonic()
        with self._lock:
            tokens, updated = self._buckets.get(ip, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - updated) * self._rate)
            allowed = tokens >= 1.0
            self._buckets[ip] = (tokens - 1.0 if allowed else tokens, now)
            if len(self._buckets) > MAX_TRACKED_IPS:
                self._prune(now)
            return allowed

    def _prune(self, now: float) -> None:
        full = float(self.per_minute)
        for ip, (tokens, updated) in list(self._buckets.items()):
            if tokens + (now - updated) * self._rate >= full:
                del self._buckets[ip]
        if len(self._buckets) > MAX_TRACKED_IPS // 2:
            # Tens of thousands of busy addresses at once: start over rather than prune on every request.
            self._buckets.clear()
