"""`certctl_ocsp_counter_total{label=…}` (pki.md §A2.4): what the responder answered and why, per process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from enum import StrEnum

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

METRIC = "certctl_ocsp_counter_total"


class OCSPEvent(StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"
    CACHE_HIT = "cache_hit"
    NONCE_ECHOED = "nonce_echoed"
    NONCE_MALFORMED = "nonce_malformed"
    MALFORMED = "malformed"
    RATE_LIMITED = "rate_limited"
    SIGNING_FAILED = "signing_failed"


class OCSPCounters(Collector):
    """In-process counters; one per process (`OCSP_COUNTERS`) or one per test."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._values = dict.fromkeys(OCSPEvent, 0)

    def add(self, event: OCSPEvent) -> None:
        with self._guard:
            self._values[event] += 1

    def value(self, event: OCSPEvent) -> int:
        return self._values[event]

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(METRIC[: -len("_total")], "OCSP responder answers and refusals.", labels=["label"])
        with self._guard:
            values = dict(self._values)
        for event in OCSPEvent:
            family.add_metric([event.value], values[event])
        yield family


OCSP_COUNTERS = OCSPCounters()
# The metrics endpoint renders prometheus_client's default registry: features register their counters there.
REGISTRY.register(OCSP_COUNTERS)
