"""The answer cache on its own: freshness window, invalidation, races with invalidation, LRU bound."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from certctl.clock import FrozenClock
from certctl.ocsp.cache import CachedAnswer, ResponseCache
from certctl.ocsp.metrics import OCSPCounters, OCSPEvent
from certctl.ocsp.ratelimit import PerIPLimiter

KEY = ("iss-a", "abc", "sha1")


def entry(
    cache: ResponseCache, issuer: str = "iss-a", *, fresh_for: float = 3000.0, der: bytes = b"der"
) -> CachedAnswer:
    return CachedAnswer(der, "good", 1_000.0 + 3600, 1_000.0 + fresh_for, cache.generation(issuer))


def test_served_only_while_the_revision_check_is_under_a_second_old() -> None:
    clock = FrozenClock()
    cache = ResponseCache(clock.monotonic)
    cache.put(KEY, entry(cache))
    assert cache.get(KEY, clock.monotonic()) is None  # never checked: not served
    cache.observe_revision("iss-a", (1, "t"), clock.monotonic())
    assert cache.get(KEY, clock.monotonic()) is not None
    clock.advance(timedelta(seconds=1))
    assert cache.get(KEY, clock.monotonic()) is None
    cache.observe_revision("iss-a", (1, "t"), clock.monotonic())  # unchanged: the entry survives
    assert cache.get(KEY, clock.monotonic()) is not None
    cache.observe_revision("iss-a", (2, "t"), clock.monotonic())  # a revocation elsewhere
    assert cache.get(KEY, clock.monotonic()) is None


def test_invalidate_drops_one_issuer_and_beats_a_racing_miss() -> None:
    clock = FrozenClock()
    cache = ResponseCache(clock.monotonic)
    for issuer in ("iss-a", "iss-b"):
        cache.observe_revision(issuer, 0, clock.monotonic())
    other = ("iss-b", "abc", "sha1")
    cache.put(KEY, entry(cache))
    cache.put(other, entry(cache, "iss-b"))
    racing = entry(cache)  # a miss that read the database before the revocation committed
    cache.invalidate("iss-a")
    assert cache.get(KEY, clock.monotonic()) is None
    assert cache.get(other, clock.monotonic()) is not None
    cache.put(KEY, racing)
    assert cache.get(KEY, clock.monotonic()) is None


def test_expiry_and_lru_bound() -> None:
    clock = FrozenClock()
    cache = ResponseCache(clock.monotonic, max_entries=2)
    cache.observe_revision("iss-a", 0, clock.monotonic())
    cache.put(KEY, entry(cache, fresh_for=0.5))
    clock.advance(timedelta(milliseconds=500))
    assert cache.get(KEY, clock.monotonic()) is None
    for serial in ("1", "2", "3"):
        cache.put(("iss-a", serial, "sha1"), entry(cache, fresh_for=10))
    assert len(cache) == 2
    assert cache.get(("iss-a", "1", "sha1"), clock.monotonic()) is None


def test_rate_limiter_refills_per_minute() -> None:
    clock = FrozenClock()
    limiter = PerIPLimiter(60, clock.monotonic)
    assert all(limiter.allow("192.0.2.1") for _ in range(60))
    assert not limiter.allow("192.0.2.1")
    assert limiter.allow("192.0.2.2")
    clock.advance(timedelta(seconds=1))
    assert limiter.allow("192.0.2.1")
    assert PerIPLimiter(0, clock.monotonic).allow("192.0.2.1")


def test_counters_in_the_prometheus_exposition() -> None:
    counters = OCSPCounters()
    counters.add(OCSPEvent.CACHE_HIT)
    families = {metric.name: metric for metric in counters.collect()}
    samples = {
        s.labels["label"]: s.value for s in families["certctl_ocsp_counter"].samples if s.name.endswith("_total")
    }
    assert samples["cache_hit"] == 1
    assert samples["signing_failed"] == 0


def test_the_metrics_endpoint_exposes_the_ocsp_counter(client: TestClient) -> None:
    text = client.get("/metrics").text
    assert "# TYPE certctl_ocsp_counter_total counter" in text
    assert 'certctl_ocsp_counter_total{label="rate_limited"}' in text
