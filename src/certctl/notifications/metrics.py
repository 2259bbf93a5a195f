"""Per-process delivery counters and a latency histogram (notifications.md §4.4).

Counters count events in this process since it started, as Prometheus counters do; with several replicas
each exposes its own and Prometheus sums them. The dead-letter gauge (`certctl_notification_dead_total`)
is a COUNT over the table instead, so it is the same on every replica.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from certctl.notifications.models import AttemptOutcome

EXPIRY_RESULTS = ("success", "failure", "deduped")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class LatencyHistogram:
    channel: str
    buckets: tuple[tuple[float, int], ...]  # (upper bound, cumulative count)
    count: int
    total_seconds: float


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    attempts: dict[tuple[str, str], int]  # (channel, outcome) -> attempts
    sent: dict[str, int]  # channel -> rows delivered
    failed: dict[str, int]  # channel -> failed attempts that scheduled a retry
    dead: dict[str, int]  # channel -> rows that entered the dead-letter queue
    latency: tuple[LatencyHistogram, ...]


class DeliveryMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts: Counter[tuple[str, str]] = Counter()
        self._sent: Counter[str] = Counter()
        self._failed: Counter[str] = Counter()
        self._dead: Counter[str] = Counter()
        self._latency: dict[str, list[int]] = {}
        self._latency_sum: dict[str, float] = {}
        self.expiry = ExpiryAlertMetrics()

    def attempt(self, channel: str, outcome: AttemptOutcome, seconds: float) -> None:
        with self._lock:
            self._attempts[(channel, outcome.value)] += 1
            if outcome is AttemptOutcome.NOT_CONFIGURED:
                return
            counts = self._latency.setdefault(channel, [0] * (len(LATENCY_BUCKETS) + 1))
            index = next((i for i, bound in enumerate(LATENCY_BUCKETS) if seconds <= bound), len(LATENCY_BUCKETS))
            counts[index] += 1
            self._latency_sum[channel] = self._latency_sum.get(channel, 0.0) + seconds

    def outcome(self, channel: str, *, sent: bool = False, failed: bool = False, dead: bool = False) -> None:
        with self._lock:
            for flag, counter in ((sent, self._sent), (failed, self._failed), (dead, self._dead)):
                if flag:
                    counter[channel] += 1

    def snapshot(self) -> MetricsSnapshot:
        with self._lock:
            histograms = []
            for channel, counts in sorted(self._latency.items()):
                running, cumulative = 0, []
                for bound, count in zip(LATENCY_BUCKETS, counts, strict=False):
                    running += count
                    cumulative.append((bound, running))
                histograms.append(
                    LatencyHistogram(channel, tuple(cumulative), sum(counts), self._latency_sum.get(channel, 0.0))
                )
            return MetricsSnapshot(
                attempts=dict(self._attempts),
                sent=dict(self._sent),
                failed=dict(self._failed),
                dead=dict(self._dead),
                latency=tuple(histograms),
            )


class ExpiryAlertMetrics:
    """`certctl_expiry_alerts_total{channel,threshold,result}`, counted in this process.

    deduped: an alert suppressed because one is delivered or on its way; success: an alert delivered;
    failure: a delivery attempt of an alert that failed (each retry counts again).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, int, str]] = Counter()

    def record(self, channel: str, threshold: int, result: str) -> None:
        if result in EXPIRY_RESULTS:
            with self._lock:
                self._counts[(channel, threshold, result)] += 1

    def snapshot(self) -> list[tuple[str, int, str, int]]:
        with self._lock:
            return [(c, t, r, n) for (c, t, r), n in sorted(self._counts.items())]
