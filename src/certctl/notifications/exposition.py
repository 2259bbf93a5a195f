"""Delivery metrics as Prometheus families, appended after the snapshot's (notifications.md §4.3, §4.4)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from certctl.notifications.metrics import DeliveryMetrics


class DeliveryCollector(Collector):
    def __init__(self, metrics: DeliveryMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        snapshot = self._metrics.snapshot()
        attempts = CounterMetricFamily(
            "certctl_notification_delivery_attempts",
            "Notification delivery attempts in this process, by channel and outcome.",
            labels=["channel", "outcome"],
        )
        for (channel, outcome), count in sorted(snapshot.attempts.items()):
            attempts.add_metric([channel, outcome], count)
        yield attempts
        for name, documentation, counts in (
            ("certctl_notifications_sent", "Notifications delivered by this process.", snapshot.sent),
            ("certctl_notifications_failed", "Failed attempts that scheduled a retry.", snapshot.failed),
            ("certctl_notifications_dead", "Notifications this process moved to the dead-letter queue.", snapshot.dead),
        ):
            family = CounterMetricFamily(name, documentation, labels=["channel"])
            for channel, count in sorted(counts.items()):
                family.add_metric([channel], count)
            yield family
        latency = HistogramMetricFamily(
            "certctl_notification_delivery_seconds", "Time one delivery attempt took.", labels=["channel"]
        )
        for histogram in snapshot.latency:
            buckets = [(str(bound), float(count)) for bound, count in histogram.buckets]
            buckets.append(("+Inf", float(histogram.count)))
            latency.add_metric([histogram.channel], buckets, histogram.total_seconds)
        yield latency
        expiry = self._metrics.expiry.snapshot()
        if expiry:
            alerts = CounterMetricFamily(
                "certctl_expiry_alerts",
                "Certificate-expiry alerts dispatched per (channel, threshold, result). "
                "result is a closed enum: success, failure, deduped.",
                labels=["channel", "threshold", "result"],
            )
            for channel, threshold, result, count in sorted(expiry, key=lambda e: (e[0], e[1], e[2])):
                alerts.add_metric([channel, str(threshold), result], count)
            yield alerts
