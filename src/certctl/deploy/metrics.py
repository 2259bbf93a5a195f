"""Prometheus deploy counters per target type (agent-targets-discovery.md §A2.4; UNWIRED in the original).

`apply()` records every run it finishes or refuses; a connector records the runs its pre-check stops
before the primitive starts. `snapshot()` gives plain samples; `collector()` renders them through
prometheus_client, sorted by target type.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from certctl.deploy.result import ApplyResult, DeployOutcome, DeployStage, RollbackOutcome

ATTEMPTS = "certctl_deploy_attempts_total"
VALIDATE_FAILURES = "certctl_deploy_validate_failures_total"
RELOAD_FAILURES = "certctl_deploy_reload_failures_total"
POST_VERIFY_FAILURES = "certctl_deploy_post_verify_failures_total"
ROLLBACKS = "certctl_deploy_rollback_total"
IDEMPOTENT_SKIPS = "certctl_deploy_idempotent_skip_total"

# name → (help, extra label beyond target_type)
METRICS: dict[str, tuple[str, str | None]] = {
    ATTEMPTS: ("Deployments by result (an idempotent skip counts as a success).", "result"),
    VALIDATE_FAILURES: ("Deployments refused by the pre-check or the validate command.", None),
    RELOAD_FAILURES: ("Deployments whose reload command failed.", None),
    POST_VERIFY_FAILURES: ("Deployments whose endpoint did not serve the new certificate.", None),
    ROLLBACKS: ("Rollbacks after a failure past the swap, by outcome.", "outcome"),
    IDEMPOTENT_SKIPS: ("Deployments skipped because every file already held the new bytes.", None),
}
_FAILED_STEP = {
    DeployStage.PRECHECK: VALIDATE_FAILURES,
    DeployStage.VALIDATE: VALIDATE_FAILURES,
    DeployStage.RELOAD: RELOAD_FAILURES,
    DeployStage.VERIFY: POST_VERIFY_FAILURES,
}


@dataclass(frozen=True, slots=True)
class CounterSample:
    name: str
    target_type: str
    label: str | None  # the value of the metric's extra label (result / outcome), if it has one
    value: int


class DeployCounters:
    """Thread-safe in-process counters; one instance per process (`DEPLOY_COUNTERS`) or per test."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._values: dict[tuple[str, str, str | None], int] = {}

    def record(self, target_type: str, result: ApplyResult) -> None:
        """Count one finished deployment of `target_type` from its result."""
        increments: list[tuple[str, str | None]] = [(ATTEMPTS, "success" if result.outcome.succeeded else "failure")]
        if result.outcome is DeployOutcome.UNCHANGED:
            increments.append((IDEMPOTENT_SKIPS, None))
        if not result.outcome.succeeded and (step := _FAILED_STEP.get(result.stage)) is not None:
            increments.append((step, None))
        if result.rollback is RollbackOutcome.RESTORED:
            increments.append((ROLLBACKS, "restored"))
        elif result.rollback is RollbackOutcome.ALSO_FAILED:
            increments.append((ROLLBACKS, "also_failed"))
        self._add(target_type, increments)

    def record_report(self, target_type: str, succeeded: bool, report: Mapping[str, Any]) -> None:
        """Count one deployment an agent reported (its `result`, core.md §6.5): the server's copy of the
        agent's counters, so one scrape of the control plane sees the whole fleet."""
        increments: list[tuple[str, str | None]] = [(ATTEMPTS, "success" if succeeded else "failure")]
        if report.get("idempotent"):
            increments.append((IDEMPOTENT_SKIPS, None))
        stage = report.get("stage")
        if not succeeded and stage in {step.value for step in _FAILED_STEP}:
            increments.append((_FAILED_STEP[DeployStage(stage)], None))
        elif not succeeded and report.get("post_verify_failed"):
            increments.append((POST_VERIFY_FAILURES, None))
        if report.get("rollback_outcome") in {RollbackOutcome.RESTORED.value, RollbackOutcome.ALSO_FAILED.value}:
            increments.append((ROLLBACKS, str(report["rollback_outcome"])))
        self._add(target_type, increments)

    def _add(self, target_type: str, increments: list[tuple[str, str | None]]) -> None:
        with self._guard:
            for name, label in increments:
                key = (name, target_type, label)
                self._values[key] = self._values.get(key, 0) + 1

    def value(self, name: str, target_type: str, label: str | None = None) -> int:
        with self._guard:
            return self._values.get((name, target_type, label), 0)

    def snapshot(self) -> tuple[CounterSample, ...]:
        """Every non-zero counter, sorted by metric name, target type, then label."""
        with self._guard:
            items = sorted(self._values.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or ""))
        return tuple(CounterSample(name, target, label, value) for (name, target, label), value in items)

    def collector(self) -> Collector:
        return _CountersCollector(self)


class _CountersCollector(Collector):
    def __init__(self, counters: DeployCounters) -> None:
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        samples = self._counters.snapshot()
        for name, (documentation, extra) in METRICS.items():
            labels = ["target_type"] if extra is None else ["target_type", extra]
            family = CounterMetricFamily(name, documentation, labels=labels)
            for sample in samples:
                if sample.name == name:
                    values = [sample.target_type] if extra is None else [sample.target_type, sample.label or ""]
                    family.add_metric(values, sample.value)
            yield family


DEPLOY_COUNTERS = DeployCounters()
"""The agent process's counters (the server keeps its own, fed from reported results: §A2.4)."""
