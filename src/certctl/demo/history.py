"""Ninety days of demo history: 44 jobs and about 50 audit events, consistent with the certificate versions.

Jobs: 16 completed issuance/renewal chains, each with a Deployment job per mapped target (all on the
certificate's one agent); the revocation of mc-compromised; two failed VPN renewals (one terminal, one
waiting for its retry); the running Grafana renewal; two renewals awaiting approval (High Security
profile). None of them is due for any scheduler loop at load time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from certctl.audit.models import AuditEvent
from certctl.audit.redaction import redact
from certctl.certificates.models import CertificateStatus
from certctl.demo.certificates import (
    ISSUED_AFTER,
    REVOCATION_REASON,
    REVOKED_DAYS_AGO,
    SPECS,
    SPECS_BY_ID,
    VersionPlan,
    issue_time,
    owning_agent,
    version_plans,
)
from certctl.demo.inventory import DAY, LOCAL_ISSUER_ID, TARGET_AGENTS
from certctl.jobs.models import Job, JobStatus, JobType, VerificationStatus
from certctl.jobs.queue import retry_delay
from certctl.revocation.models import CertificateRevocation
from certctl.security.roles import ActorType

SECOND = timedelta(seconds=1)
MAX_ATTEMPTS = {"rp-standard": 4, "rp-urgent": 6, "rp-manual": 1}  # the policy's max_retries + 1
DEPLOYMENT_MAX_ATTEMPTS = 3
AUDIT_ID_PREFIX = "audit-demo-"
AUDIT_MARKER_ID = f"{AUDIT_ID_PREFIX}001"  # the oldest demo event: present means the trail is loaded
VPN_DNS_ERROR = (
    "ACME order failed: dns-01 challenge for vpn.example.com timed out after 30s waiting for TXT record "
    "_acme-challenge.vpn.example.com (last answer: NXDOMAIN from ns1.example.com)"
)
VPN_HTTP_ERROR = (
    "ACME order failed: http-01 challenge for vpn.example.com: connection refused "
    "(GET http://vpn.example.com/.well-known/acme-challenge/<token>: dial tcp 203.0.113.10:80)"
)


@dataclass(frozen=True, slots=True)
class _Chain:
    """An issuance or renewal that produced `version` of the certificate, then its deployments."""

    number: int
    type: JobType
    certificate_id: str
    version: int
    duration_seconds: int

    @property
    def job_id(self) -> str:
        return f"job-{'iss' if self.type is JobType.ISSUANCE else 'ren'}-{self.number:03d}"

    def deployment_job_id(self, index: int) -> str:
        return f"job-dep-{self.number:03d}{'abcdefgh'[index]}"


ISSUANCE, RENEWAL = JobType.ISSUANCE, JobType.RENEWAL
CHAINS: tuple[_Chain, ...] = (
    _Chain(10, ISSUANCE, "mc-api-prod", 1, 10),
    _Chain(20, ISSUANCE, "mc-shop-prod", 1, 18),
    _Chain(30, RENEWAL, "mc-docs-prod", 1, 15),
    _Chain(40, RENEWAL, "mc-wildcard-prod", 1, 45),
    _Chain(50, RENEWAL, "mc-blog-prod", 1, 14),
    _Chain(60, RENEWAL, "mc-data-prod", 1, 9),
    _Chain(70, ISSUANCE, "mc-k8s-ingress", 1, 16),
    _Chain(80, RENEWAL, "mc-grpc-prod", 1, 8),
    _Chain(90, RENEWAL, "mc-web-prod", 1, 11),
    _Chain(100, ISSUANCE, "mc-edge-eu", 1, 13),
    _Chain(110, RENEWAL, "mc-consul-prod", 1, 9),
    _Chain(120, RENEWAL, "mc-search-prod", 1, 10),
    _Chain(130, RENEWAL, "mc-status-prod", 1, 12),
    _Chain(140, RENEWAL, "mc-api-prod", 2, 10),
    _Chain(150, RENEWAL, "mc-dash-prod", 1, 9),
    _Chain(160, RENEWAL, "mc-pay-prod", 1, 11),
)
LATEST_CHAINS_FROM = 140  # chains from this number on have their deployments in the audit trail
REVOCATION_JOB_ID = "job-rev-145"
VPN_TERMINAL_JOB_ID, VPN_RETRY_JOB_ID = "job-ren-170", "job-ren-180"
RUNNING_JOB_ID = "job-ren-190"
APPROVAL_JOB_IDS = {"mc-auth-prod": "job-ren-200", "mc-pay-prod": "job-ren-210"}


def _plans(now: datetime) -> dict[tuple[str, int], VersionPlan]:
    return {(plan.spec.id, plan.number): plan for plan in version_plans(now)}


def _max_attempts(cert_id: str) -> int:
    return MAX_ATTEMPTS[SPECS_BY_ID[cert_id].policy_id]


def jobs(now: datetime, fingerprints: Mapping[str, str]) -> list[Job]:
    """All demo jobs; `fingerprints` maps version id → SHA-256 fingerprint (deployment verification)."""
    plans = _plans(now)
    rows: list[Job] = []
    for chain in CHAINS:
        plan = plans[(chain.certificate_id, chain.version)]
        done = plan.not_before + ISSUED_AFTER
        created = plan.not_before - chain.duration_seconds * SECOND
        rows.append(
            Job(
                id=chain.job_id,
                type=chain.type,
                certificate_id=chain.certificate_id,
                agent_id=owning_agent(chain.certificate_id),
                status=JobStatus.COMPLETED,
                attempts=1,
                max_attempts=_max_attempts(chain.certificate_id),
                scheduled_at=created,
                started_at=created + SECOND,
                completed_at=done,
                created_at=created,
            )
        )
        for index, target_id in enumerate(plan.spec.targets):
            started = done + (5 + index) * SECOND
            finished = started + (6 + 2 * index) * SECOND
            rows.append(
                Job(
                    id=chain.deployment_job_id(index),
                    type=JobType.DEPLOYMENT,
                    certificate_id=chain.certificate_id,
                    target_id=target_id,
                    agent_id=TARGET_AGENTS[target_id],
                    status=JobStatus.COMPLETED,
                    attempts=1,
                    max_attempts=DEPLOYMENT_MAX_ATTEMPTS,
                    scheduled_at=done + 2 * SECOND,
                    started_at=started,
                    completed_at=finished,
                    verification_status=VerificationStatus.SUCCESS,
                    verified_at=finished + 3 * SECOND,
                    verification_fingerprint=fingerprints.get(plan.id),
                    created_at=done + 2 * SECOND,
                )
            )
    return rows + _open_and_failed_jobs(now)


REVOCATION_ID = "rev-demo-compromised"


def revocations(now: datetime, versions: Mapping[str, tuple[str, datetime]]) -> list[CertificateRevocation]:
    """The ledger row of mc-compromised, so the demo CRL lists it and OCSP answers `revoked` for it.

    `versions` maps a stored version id to its (serial, not_after)."""
    revoked = _plans(now)[("mc-compromised", 1)]
    if revoked.id not in versions:
        return []
    serial, not_after = versions[revoked.id]
    return [
        CertificateRevocation(
            id=REVOCATION_ID,
            certificate_id="mc-compromised",
            issuer_id=LOCAL_ISSUER_ID,
            serial_number=serial,
            reason=REVOCATION_REASON,
            revoked_by="bob@example.com",
            revoked_at=now - REVOKED_DAYS_AGO * DAY,
            not_after=not_after,
            short_lived=False,
            issuer_notified=True,
        )
    ]


def _open_and_failed_jobs(now: datetime) -> list[Job]:
    revoked_at = now - REVOKED_DAYS_AGO * DAY
    terminal_at = now - 6 * DAY
    retry_failed_at = now - timedelta(minutes=10)
    retry_attempts = 5
    vpn = "mc-vpn-prod"
    rows = [
        Job(
            id=REVOCATION_JOB_ID,
            type=JobType.REVOCATION,
            certificate_id="mc-compromised",
            status=JobStatus.COMPLETED,
            attempts=1,
            max_attempts=1,
            scheduled_at=revoked_at,
            started_at=revoked_at + SECOND,
            completed_at=revoked_at + 2 * SECOND,
            verification_status=VerificationStatus.SKIPPED,
            created_at=revoked_at,
        ),
        # Attempts exhausted: terminal (next_retry_at null), and the certificate went Failed.
        Job(
            id=VPN_TERMINAL_JOB_ID,
            type=JobType.RENEWAL,
            certificate_id=vpn,
            agent_id=owning_agent(vpn),
            status=JobStatus.FAILED,
            attempts=_max_attempts(vpn),
            max_attempts=_max_attempts(vpn),
            last_error=VPN_DNS_ERROR,
            scheduled_at=terminal_at - timedelta(minutes=40),
            started_at=terminal_at - 35 * SECOND,
            completed_at=terminal_at,
            created_at=terminal_at - timedelta(minutes=40),
        ),
        # Renewed again by hand: its fifth attempt failed, the sixth waits for the backoff to pass.
        Job(
            id=VPN_RETRY_JOB_ID,
            type=JobType.RENEWAL,
            certificate_id=vpn,
            agent_id=owning_agent(vpn),
            status=JobStatus.FAILED,
            attempts=retry_attempts,
            max_attempts=_max_attempts(vpn),
            last_error=VPN_HTTP_ERROR,
            scheduled_at=now - timedelta(minutes=25),
            started_at=retry_failed_at - 32 * SECOND,
            completed_at=retry_failed_at,
            next_retry_at=retry_failed_at + retry_delay(retry_attempts, 60 * SECOND, DAY),
            created_at=now - timedelta(minutes=25),
        ),
        Job(
            id=RUNNING_JOB_ID,
            type=JobType.RENEWAL,
            certificate_id="mc-grafana-prod",
            agent_id=owning_agent("mc-grafana-prod"),
            status=JobStatus.RUNNING,
            attempts=1,
            max_attempts=_max_attempts("mc-grafana-prod"),
            scheduled_at=now - timedelta(minutes=12),
            started_at=now - timedelta(minutes=3),
            created_at=now - timedelta(minutes=12),
        ),
    ]
    for (cert_id, job_id), minutes in zip(APPROVAL_JOB_IDS.items(), (60, 30), strict=True):
        rows.append(
            Job(
                id=job_id,
                type=JobType.RENEWAL,
                certificate_id=cert_id,
                agent_id=owning_agent(cert_id),
                status=JobStatus.AWAITING_APPROVAL,
                attempts=0,
                max_attempts=_max_attempts(cert_id),
                scheduled_at=now - timedelta(minutes=minutes),
                created_at=now - timedelta(minutes=minutes),
            )
        )
    return rows


# -- audit trail ------------------------------------------------------------------------------------------

_Event = tuple[datetime, str, ActorType, str, str, str, dict[str, Any]]
SYSTEM, USER, AGENT = ActorType.SYSTEM, ActorType.USER, ActorType.AGENT


def audit_events(now: datetime, serials: Mapping[str, str]) -> list[AuditEvent]:
    """The demo trail, oldest first; `serials` maps version id → canonical serial."""
    events = sorted(_events(now, serials), key=lambda event: event[0])
    return [
        AuditEvent(
            id=f"{AUDIT_ID_PREFIX}{number:03d}",
            actor=actor,
            actor_type=actor_type,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            details=redact(details),
            timestamp=at,
        )
        for number, (at, actor, actor_type, action, resource_type, resource_id, details) in enumerate(events, start=1)
    ]


def _api_post(at: datetime, actor: str, path: str, body: dict[str, Any]) -> _Event:
    digest = hashlib.sha256(json.dumps(body, separators=(",", ":")).encode()).hexdigest()
    details = {"method": "POST", "path": path, "body_hash": digest, "status": 201, "latency_ms": 14.2}
    return (at, actor, USER, "api_post", "api", path, details)


def _events(now: datetime, serials: Mapping[str, str]) -> list[_Event]:
    plans = _plans(now)
    events: list[_Event] = [
        _api_post(now - 150 * DAY, "alice@example.com", "/api/v1/issuers", {"id": "iss-acme-le", "type": "ACME"}),
        _api_post(now - 120 * DAY, "bob@example.com", "/api/v1/issuers", {"id": "iss-stepca", "type": "StepCA"}),
        _api_post(now - 120 * DAY, "alice@example.com", "/api/v1/targets", {"id": "tgt-nginx-prod", "type": "NGINX"}),
        (now - 150 * DAY, "system", SYSTEM, "agent_registered", "agent", "ag-lb-prod",
         {"hostname": "lb-prod-01.internal", "os": "linux", "architecture": "amd64"}),
        (now - 60 * DAY, "system", SYSTEM, "agent_registered", "agent", "ag-iis-prod",
         {"hostname": "iis-prod-01.internal", "os": "windows", "architecture": "amd64"}),
        (now - 30 * DAY, "system", SYSTEM, "agent_registered", "agent", "ag-k8s-prod",
         {"hostname": "k8s-node-01.internal", "os": "linux", "architecture": "amd64"}),
        (now - timedelta(hours=2, minutes=55), "system", SYSTEM, "agent_offline", "agent", "ag-iis-prod",
         {"last_heartbeat_at": (now - timedelta(hours=3)).isoformat()}),
        (now - 3 * DAY, "system", SYSTEM, "discovery_scan_completed", "agent", "ag-web-prod",
         {"certs_found": 4, "certs_new": 2, "directories": ["/etc/nginx/ssl"]}),
        (now - timedelta(hours=1), "system", SYSTEM, "discovery_scan_completed", "agent", "server-scanner",
         {"certs_found": 5, "certs_new": 5, "scan_type": "network"}),
    ]  # fmt: skip
    for cert_id, actor in (("mc-shop-prod", "carol"), ("mc-edge-eu", "alice"), ("mc-k8s-ingress", "frank")):
        spec = SPECS_BY_ID[cert_id]
        created = issue_time(now, spec.created_days_ago, cert_id)
        details = {"common_name": spec.common_name, "issuer_id": spec.issuer_id, "renewal_policy_id": spec.policy_id}
        events.append((created, f"{actor}@example.com", USER, "certificate_created", "certificate", cert_id, details))
    for chain in CHAINS:
        plan = plans[(chain.certificate_id, chain.version)]
        details = {
            "job_id": chain.job_id,
            "version_id": plan.id,
            "serial": serials.get(plan.id, ""),
            "not_after": plan.not_after.isoformat(),
        }
        at = plan.not_before + ISSUED_AFTER
        events.append((at, "system", SYSTEM, "renewal_job_completed", "certificate", chain.certificate_id, details))
        if chain.number >= LATEST_CHAINS_FROM:  # the latest deployments, reported by their agents
            for index, target_id in enumerate(plan.spec.targets):
                job_id = chain.deployment_job_id(index)
                details = {"job_id": job_id, "target_id": target_id, "verification": "success"}
                reported = at + (14 + 3 * index) * SECOND
                agent = TARGET_AGENTS[target_id]
                events.append(
                    (reported, agent, AGENT, "deployment_job_completed", "certificate", chain.certificate_id, details)
                )
    events += _status_events(now, plans, serials)
    return events


def _status_events(
    now: datetime, plans: Mapping[tuple[str, int], VersionPlan], serials: Mapping[str, str]
) -> list[_Event]:
    revoked = plans[("mc-compromised", 1)]
    events: list[_Event] = [
        (now - REVOKED_DAYS_AGO * DAY, "bob@example.com", USER, "certificate_revoked", "certificate", "mc-compromised",
         {"reason": REVOCATION_REASON, "serial": serials.get(revoked.id, "")}),
        (now - 6 * DAY, "system", SYSTEM, "renewal_job_failed", "certificate", "mc-vpn-prod",
         {"job_id": VPN_TERMINAL_JOB_ID, "attempts": _max_attempts("mc-vpn-prod"), "error": VPN_DNS_ERROR}),
        (now - 3 * DAY, "system", SYSTEM, "policy_violation_detected", "certificate", "mc-legacy-prod",
         {"rule_id": "pr-max-certificate-lifetime", "severity": "Critical", "message": "certificate has expired"}),
        (now - 15 * DAY, "system", SYSTEM, "policy_violation_detected", "certificate", "mc-old-api",
         {"rule_id": "pr-max-certificate-lifetime", "severity": "Critical", "message": "certificate has expired"}),
    ]  # fmt: skip
    for spec in SPECS:
        plan = plans[(spec.id, len(spec.issued_days_ago))]
        details = {"previous_status": "Active", "expires_at": plan.not_after.isoformat()}
        if spec.status is CertificateStatus.EXPIRED:
            events.append((plan.not_after, "system", SYSTEM, "certificate_expired", "certificate", spec.id, details))
        elif spec.status is CertificateStatus.EXPIRING:
            events.append((now - DAY, "system", SYSTEM, "certificate_expiring", "certificate", spec.id, details))
    manual = (
        ("mc-auth-prod", "bob", APPROVAL_JOB_IDS["mc-auth-prod"], JobStatus.AWAITING_APPROVAL, 60),
        ("mc-vpn-prod", "bob", VPN_RETRY_JOB_ID, JobStatus.AWAITING_CSR, 25),
        ("mc-pay-prod", "carol", APPROVAL_JOB_IDS["mc-pay-prod"], JobStatus.AWAITING_APPROVAL, 30),
        ("mc-grafana-prod", "eve", RUNNING_JOB_ID, JobStatus.AWAITING_CSR, 12),
    )
    for cert_id, who, job_id, job_status, minutes in manual:
        at, actor = now - timedelta(minutes=minutes), f"{who}@example.com"
        created = {"job_id": job_id, "job_type": "Renewal", "job_status": job_status.value, "renewal_trigger": "manual"}
        events.append((at, actor, USER, "renewal_job_created", "certificate", cert_id, created))
        events.append(
            (at, actor, USER, "renewal_triggered", "certificate", cert_id, {"job_id": job_id, "force": False})
        )
    return events
