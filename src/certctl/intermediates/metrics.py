"""`certctl_intermediate_ca_operations_total{issuer_id, kind}` (pki.md §A1.6): hierarchy changes per process,
kind one of create_root, create_child, retire_retiring, retire_retired. Rendered by `/metrics`."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

METRIC = "certctl_intermediate_ca_operations"
KINDS = ("create_root", "create_child", "retire_retiring", "retire_retired")


class HierarchyCounters(Collector):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def record(self, issuer_id: str, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown hierarchy counter {kind!r}")
        with self._lock:
            self._counts[(issuer_id, kind)] += 1

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            METRIC, "Intermediate CA hierarchy changes by issuer and kind.", labels=["issuer_id", "kind"]
        )
        for (issuer_id, kind), count in sorted(self.snapshot().items()):
            family.add_metric([issuer_id, kind], count)
        yield family


HIERARCHY_COUNTERS = HierarchyCounters()
REGISTRY.register(HIERARCHY_COUNTERS)
