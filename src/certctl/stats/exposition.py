"""The metrics snapshot in the Prometheus text format 0.0.4, under the original's metric names (core.md §12.2)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from certctl.stats.service import DashboardSummary, MetricsSnapshot

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # "text/plain; version=0.0.4; charset=utf-8"

_Count = Callable[[DashboardSummary], int]

GAUGES: Sequence[tuple[str, str, _Count]] = (
    ("certctl_certificate_total", "Managed certificates, every status.", lambda s: s.total_certificates),
    (
        "certctl_certificate_active",
        "Managed certificates neither expiring within 30 days, expired nor revoked.",
        lambda s: s.active_certificates,
    ),
    (
        "certctl_certificate_expiring_soon",
        "Certificates expiring within 30 days (not expired or revoked).",
        lambda s: s.expiring_certificates,
    ),
    (
        "certctl_certificate_expired",
        "Certificates past their expiry or marked Expired.",
        lambda s: s.expired_certificates,
    ),
    ("certctl_certificate_revoked", "Revoked certificates.", lambda s: s.revoked_certificates),
    ("certctl_agent_total", "Registered agents that are not retired.", lambda s: s.total_agents),
    ("certctl_agent_online", "Agents with a heartbeat in the last 5 minutes.", lambda s: s.active_agents),
    ("certctl_job_pending", "Jobs not finished yet, including failed jobs awaiting a retry.", lambda s: s.pending_jobs),
)
# Snapshots of database counts exposed as counters, as the original does (names end in _total).
COUNTERS: Sequence[tuple[str, str, _Count]] = (
    ("certctl_job_completed_total", "Jobs in status Completed.", lambda s: s.complete_jobs),
    ("certctl_job_failed_total", "Jobs that failed with no retry left.", lambda s: s.failed_jobs),
    (
        "certctl_notification_dead_total",
        "Notifications in the dead-letter queue.",
        lambda s: s.notifications_dead,
    ),
)
UPTIME = "certctl_uptime_seconds"
NOT_AFTER = "certctl_certificate_not_after_seconds"


class SnapshotCollector(Collector):
    """Metric families for one snapshot; built per scrape, so every value is as fresh as the database."""

    def __init__(self, snapshot: MetricsSnapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        summary = self._snapshot.summary
        for name, documentation, count in GAUGES:
            yield GaugeMetricFamily(name, documentation, value=count(summary))
        for name, documentation, count in COUNTERS:
            yield CounterMetricFamily(name, documentation, value=count(summary))
        yield GaugeMetricFamily(UPTIME, "Seconds since the server started.", value=self._snapshot.uptime.uptime_seconds)
        if self._snapshot.certificate_expiries is not None:
            expiries = GaugeMetricFamily(
                NOT_AFTER,
                "Expiry (not_after) of each certificate as a Unix timestamp in seconds.",
                labels=["certificate_id", "common_name"],
            )
            for expiry in self._snapshot.certificate_expiries:
                expiries.add_metric([expiry.certificate_id, expiry.common_name], expiry.expires_at.timestamp())
            yield expiries


class _Chain(Collector):
    def __init__(self, collectors: Iterable[Collector]) -> None:
        self._collectors = tuple(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


def render(snapshot: MetricsSnapshot, *, extra: Iterable[Collector] = ()) -> bytes:
    """The exposition text: the snapshot's families, then those of `extra` (e.g. prometheus_client's REGISTRY)."""
    return generate_latest(_Chain((SnapshotCollector(snapshot), *extra)))
