"""/api/v1/stats/*, /api/v1/metrics, /api/v1/metrics/prometheus and /metrics (core.md §5.9, §12).

Paths are full (the router is included without a prefix) because /metrics sits outside /api/v1. Every
route needs an authenticated caller: none of them is in the middleware's public list.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from prometheus_client import REGISTRY

from certctl.api.deps import Context, current_actor
from certctl.api.schemas import ERROR_RESPONSES, Responses
from certctl.context import AppContext
from certctl.notifications.exposition import DeliveryCollector
from certctl.stats import exposition
from certctl.stats.schemas import (
    DashboardSummaryOut,
    ExpirationBucketOut,
    IssuanceRateOut,
    JobTrendOut,
    MetricsCounterOut,
    MetricsGaugeOut,
    MetricsOut,
    StatusCountOut,
    UptimeOut,
)
from certctl.stats.service import DEFAULT_DAYS, MAX_DAYS, StatsService

router = APIRouter(tags=["stats"], dependencies=[Depends(current_actor)], responses=ERROR_RESPONSES)


async def stats_service(ctx: Context) -> StatsService:
    return StatsService(
        ctx.db,
        ctx.clock,
        started_at=ctx.started_at,
        per_certificate_metrics=ctx.settings.metrics_per_certificate,  # CERTCTL_METRICS_PER_CERTIFICATE
    )


Stats = Annotated[StatsService, Depends(stats_service)]
Days = Annotated[int, Query(description=f"number of days, 1-{MAX_DAYS}")]


class PrometheusResponse(Response):
    media_type = exposition.CONTENT_TYPE


@router.get("/api/v1/stats/summary", response_model=DashboardSummaryOut)
def get_dashboard_summary(stats: Stats) -> DashboardSummaryOut:
    s = stats.summary()
    return DashboardSummaryOut(
        total_certificates=s.total_certificates,
        expiring_certificates=s.expiring_certificates,
        expired_certificates=s.expired_certificates,
        revoked_certificates=s.revoked_certificates,
        total_agents=s.total_agents,
        active_agents=s.active_agents,
        offline_agents=s.offline_agents,
        pending_jobs=s.pending_jobs,
        failed_jobs=s.failed_jobs,
        complete_jobs=s.complete_jobs,
        notifications_dead=s.notifications_dead,
        completed_at=s.completed_at,
    )


@router.get("/api/v1/stats/certificates-by-status", response_model=list[StatusCountOut])
def get_certificates_by_status(stats: Stats) -> list[StatusCountOut]:
    return [StatusCountOut(status=c.status, count=c.count) for c in stats.certificates_by_status()]


@router.get("/api/v1/stats/expiration-timeline", response_model=list[ExpirationBucketOut])
def get_expiration_timeline(stats: Stats, days: Days = DEFAULT_DAYS) -> list[ExpirationBucketOut]:
    return [ExpirationBucketOut(date=d.date, count=d.count) for d in stats.expiration_timeline(days)]


@router.get("/api/v1/stats/job-trends", response_model=list[JobTrendOut])
def get_job_trends(stats: Stats, days: Days = DEFAULT_DAYS) -> list[JobTrendOut]:
    return [
        JobTrendOut(
            date=t.date, completed_count=t.completed_count, failed_count=t.failed_count, success_rate=t.success_rate
        )
        for t in stats.job_trends(days)
    ]


@router.get("/api/v1/stats/issuance-rate", response_model=list[IssuanceRateOut])
def get_issuance_rate(stats: Stats, days: Days = DEFAULT_DAYS) -> list[IssuanceRateOut]:
    return [IssuanceRateOut(date=d.date, issued_count=d.count) for d in stats.issuance_rate(days)]


@router.get("/api/v1/metrics", response_model=MetricsOut)
def get_metrics(stats: Stats) -> MetricsOut:
    snapshot = stats.metrics()
    s = snapshot.summary
    return MetricsOut(
        gauge=MetricsGaugeOut(
            certificate_total=s.total_certificates,
            certificate_active=s.active_certificates,
            certificate_expiring_soon=s.expiring_certificates,
            certificate_expired=s.expired_certificates,
            certificate_revoked=s.revoked_certificates,
            agent_total=s.total_agents,
            agent_online=s.active_agents,
            job_pending=s.pending_jobs,
        ),
        counter=MetricsCounterOut(
            job_completed_total=s.complete_jobs,
            job_failed_total=s.failed_jobs,
            notifications_dead_total=s.notifications_dead,
        ),
        uptime=UptimeOut(
            uptime_seconds=snapshot.uptime.uptime_seconds,
            server_started=snapshot.uptime.server_started,
            measured_at=snapshot.uptime.measured_at,
        ),
    )


_PROMETHEUS_DOC: Responses = {200: {"description": "Prometheus text exposition format 0.0.4"}}


@router.get("/api/v1/metrics/prometheus", response_class=PrometheusResponse, responses=_PROMETHEUS_DOC)
def get_prometheus_metrics(stats: Stats, ctx: Context) -> PrometheusResponse:
    # prometheus_client's default registry carries process metrics and any counter a feature registers.
    return _prometheus(stats, ctx)


@router.get("/metrics", response_class=PrometheusResponse, responses=_PROMETHEUS_DOC)
def get_prometheus_metrics_root(stats: Stats, ctx: Context) -> PrometheusResponse:
    """The same exposition at the path scrapers try by default; authenticated like the rest."""
    return _prometheus(stats, ctx)


def _prometheus(stats: StatsService, ctx: AppContext) -> PrometheusResponse:
    delivery = DeliveryCollector(ctx.notifications.dispatcher.metrics)
    deployments = ctx.deploy_counters.collector()
    return PrometheusResponse(exposition.render(stats.metrics(), extra=(delivery, deployments, REGISTRY)))
