"""Wire shapes of /api/v1/stats/* and /api/v1/metrics, with the original's field names (core.md §5.9)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class DashboardSummaryOut(BaseModel):
    total_certificates: int
    expiring_certificates: int = Field(description="expiring within 30 days, not expired or revoked")
    expired_certificates: int
    revoked_certificates: int
    total_agents: int = Field(description="agents that are not retired")
    active_agents: int = Field(description="heartbeat within the last 5 minutes")
    offline_agents: int
    pending_jobs: int = Field(description="Pending, AwaitingCSR, AwaitingApproval, Running, or Failed awaiting a retry")
    failed_jobs: int = Field(description="failed with no retry left")
    complete_jobs: int
    notifications_dead: int
    completed_at: datetime


class StatusCountOut(BaseModel):
    status: str
    count: int


class ExpirationBucketOut(BaseModel):
    date: str = Field(description="YYYY-MM-DD (UTC)")
    count: int


class JobTrendOut(BaseModel):
    date: str = Field(description="YYYY-MM-DD (UTC)")
    completed_count: int
    failed_count: int
    success_rate: float = Field(description="completed share of the day's outcomes, 0-100")


class IssuanceRateOut(BaseModel):
    date: str = Field(description="YYYY-MM-DD (UTC)")
    issued_count: int


class MetricsGaugeOut(BaseModel):
    certificate_total: int
    certificate_active: int
    certificate_expiring_soon: int
    certificate_expired: int
    certificate_revoked: int
    agent_total: int
    agent_online: int
    job_pending: int


class MetricsCounterOut(BaseModel):
    job_completed_total: int
    job_failed_total: int
    notifications_dead_total: int


class UptimeOut(BaseModel):
    uptime_seconds: int
    server_started: datetime
    measured_at: datetime


class MetricsOut(BaseModel):
    gauge: MetricsGaugeOut
    counter: MetricsCounterOut
    uptime: UptimeOut
