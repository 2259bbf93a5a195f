"""load_demo: row counts, idempotency, real certificates, the single-agent rule, and the scheduler freeze."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import AuthorityInformationAccessOID
from sqlalchemy import func, select

from certctl.agents.models import Agent, AgentStatus
from certctl.audit.models import AuditEvent
from certctl.bootstrap import seed_env_issuers
from certctl.certificates.models import (
    CertificateStatus,
    CertificateTargetMapping,
    CertificateVersion,
    ManagedCertificate,
)
from certctl.certificates.renewal import RenewalChecker, expire_short_lived
from certctl.clock import FrozenClock
from certctl.config import KeygenMode
from certctl.context import AppContext
from certctl.db.models import metadata
from certctl.demo import DemoDataConflict, DemoSummary, demo_agent_key, load_demo
from certctl.issuers.models import Issuer
from certctl.jobs.models import Job, JobStatus, JobType
from certctl.jobs.service import JobQueue
from certctl.org.models import Team
from certctl.pki.local_ca import LocalCA
from certctl.pki.serials import canonical_serial
from certctl.security.apikeys import hash_key
from certctl.targets.models import DeploymentTarget
from tests.conftest import client_for

S = CertificateStatus
EXPECTED_ROWS = {
    "teams": 6,
    "owners": 6,
    "certificate_profiles": 5,
    "renewal_policies": 3,
    "issuers": 12,  # iss-local was made by start-up
    "agents": 12,
    "agent_groups": 6,
    "agent_group_members": 3,
    "deployment_targets": 10,
    "managed_certificates": 32,
    "certificate_target_mappings": 34,
    "certificate_versions": 33,
    "certificate_revocations": 1,
    "jobs": 44,
    "notification_events": 20,
    "notification_attempts": 40,
    "audit_events": 51,
}
STATUS_MIX = {S.ACTIVE: 22, S.EXPIRING: 4, S.EXPIRED: 3, S.RENEWAL_IN_PROGRESS: 1, S.FAILED: 1, S.REVOKED: 1}
WORKLOAD_AGENTS = (
    "ag-web-prod",
    "ag-web-staging",
    "ag-lb-prod",
    "ag-iis-prod",
    "ag-data-prod",
    "ag-edge-01",
    "ag-k8s-prod",
    "ag-mac-dev",
)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def demo(context_factory: Callable[..., AppContext], clock: FrozenClock) -> AppContext:
    """A started server (baseline seed and env issuers, as start-up leaves them) with the demo loaded."""
    context = context_factory(clock)
    seed_env_issuers(context)
    summary = load_demo(context)
    assert summary.inserted == EXPECTED_ROWS
    return context


def snapshot(context: AppContext) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    with context.db.begin() as session:
        return {
            table.name: [tuple(row) for row in session.execute(select(table).order_by(*table.primary_key.columns))]
            for table in metadata.sorted_tables
        }


def test_first_load_inserts_every_demo_row_and_keeps_the_startup_local_ca(demo: AppContext) -> None:
    with demo.db.begin() as session:
        local = session.get(Issuer, "iss-local")
        assert local is not None
        assert local.name == "Local CA"
        assert session.scalar(select(func.count()).select_from(Issuer)) == 13
        assert sorted(i.id for i in session.scalars(select(Issuer).where(Issuer.enabled.is_(False)))) == [
            "iss-awsacmpca",
            "iss-ejbca",
            "iss-entrust",
            "iss-globalsign",
            "iss-googlecas",
            "iss-openssl",
        ]


def test_loading_into_a_database_without_issuers_makes_the_local_dev_ca(
    context_factory: Callable[..., AppContext], clock: FrozenClock
) -> None:
    context = context_factory(clock)
    summary = load_demo(context)
    assert summary.inserted["issuers"] == 13
    with context.db.begin() as session:
        local = session.get(Issuer, "iss-local")
        assert local is not None
        assert local.name == "Local Dev CA"
    seed_env_issuers(context)  # start-up after the demo seed: the table is no longer empty
    ca = context.connectors.get("iss-local")
    assert isinstance(ca, LocalCA)
    assert ca.certificate.not_valid_before_utc < clock.now() - timedelta(days=179)  # older than its leaves


def test_second_load_inserts_nothing_and_changes_nothing(demo: AppContext, clock: FrozenClock) -> None:
    before = snapshot(demo)
    clock.advance(timedelta(hours=6))
    summary = load_demo(demo)
    assert summary.total == 0
    assert set(summary.inserted) == set(EXPECTED_ROWS)
    assert snapshot(demo) == before


def test_status_mix_environments_and_totals_through_the_api(demo: AppContext) -> None:
    with client_for(demo) as api:
        assert api.get("/api/v1/certificates").json()["total"] == 32
        for status, count in STATUS_MIX.items():
            assert api.get("/api/v1/certificates", params={"status": status.value}).json()["total"] == count, status
        environments = {"production": 28, "staging": 3, "development": 1}
        for environment, count in environments.items():
            assert api.get("/api/v1/certificates", params={"environment": environment}).json()["total"] == count
        summary = api.get("/api/v1/stats/summary").json()
        jobs = api.get("/api/v1/jobs", params={"per_page": 100}).json()
    # The summary counts the dead-letter queue (3 demo rows) once the stats service reads it; 0 until then.
    assert summary.pop("notifications_dead") in (0, 3)
    assert summary | {"completed_at": None} == {
        "total_certificates": 32,
        "expiring_certificates": 0,  # the frozen ones expire beyond 30 days
        "expired_certificates": 3,
        "revoked_certificates": 1,
        "total_agents": 12,
        "active_agents": 11,
        "offline_agents": 1,
        "pending_jobs": 4,  # Running, 2 AwaitingApproval, and the failed renewal waiting for its retry
        "failed_jobs": 1,
        "complete_jobs": 39,
        "completed_at": None,
    }
    assert jobs["total"] == 44
    assert {job["type"] for job in jobs["data"]} == {"Issuance", "Renewal", "Deployment", "Revocation"}


def test_jobs_hold_one_terminal_and_one_retrying_failure_a_running_renewal_and_two_approvals(
    demo: AppContext, clock: FrozenClock
) -> None:
    now = clock.now()
    with demo.db.begin() as session:
        jobs = session.scalars(select(Job)).all()
        by_status = Counter(job.status for job in jobs)
        failed = sorted((job for job in jobs if job.status is JobStatus.FAILED), key=lambda job: job.created_at)
    assert by_status == {
        JobStatus.COMPLETED: 39,
        JobStatus.FAILED: 2,
        JobStatus.RUNNING: 1,
        JobStatus.AWAITING_APPROVAL: 2,
    }
    terminal, retrying = failed
    assert terminal.type is retrying.type is JobType.RENEWAL
    assert terminal.next_retry_at is None
    assert terminal.attempts == terminal.max_attempts
    assert retrying.next_retry_at is not None
    assert retrying.next_retry_at > now
    assert retrying.attempts < retrying.max_attempts
    assert "dns-01" in (terminal.last_error or "")
    assert "connection refused" in (retrying.last_error or "")


def test_the_history_is_in_order_and_lies_in_the_past(demo: AppContext, clock: FrozenClock) -> None:
    now = clock.now()
    with demo.db.begin() as session:
        created = dict(session.execute(select(ManagedCertificate.id, ManagedCertificate.created_at)).all())
        versions = session.scalars(select(CertificateVersion)).all()
        jobs = session.scalars(select(Job)).all()
        trail = session.scalars(select(AuditEvent)).all()
        fingerprints = {v.fingerprint_sha256 for v in versions}
    for version in versions:
        assert created[version.certificate_id] < version.not_before < version.created_at <= now
    for job in jobs:
        assert created[job.certificate_id] <= job.created_at <= now, job.id
        assert job.started_at is None or job.created_at <= job.started_at <= (job.completed_at or now)
        if job.type is JobType.DEPLOYMENT:
            assert job.verification_fingerprint in fingerprints
    assert all(event.timestamp <= now for event in trail)
    assert min(job.created_at for job in jobs) > now - timedelta(days=90)


def test_every_version_is_a_real_certificate_of_the_local_ca(demo: AppContext, clock: FrozenClock) -> None:
    ca = demo.connectors.get("iss-local")
    assert isinstance(ca, LocalCA)
    now = clock.now()
    with demo.db.begin() as session:
        versions = session.scalars(select(CertificateVersion).order_by(CertificateVersion.created_at)).all()
        certs = {cert.id: cert for cert in session.scalars(select(ManagedCertificate))}
    latest: dict[str, CertificateVersion] = {}
    for version in versions:
        chain = x509.load_pem_x509_certificates(version.pem_chain.encode())
        leaf = chain[0]
        leaf.verify_directly_issued_by(ca.certificate)
        assert chain[1:] == ca.get_ca_chain()
        assert version.serial_number == canonical_serial(leaf.serial_number)
        assert version.fingerprint_sha256 == leaf.fingerprint(hashes.SHA256()).hex()
        assert (leaf.not_valid_before_utc, leaf.not_valid_after_utc) == (version.not_before, version.not_after)
        assert version.key_algorithm == "ECDSA"
        assert version.key_size in (256, 384)
        latest[version.certificate_id] = version
    assert versions[-1].created_at <= now
    assert set(latest) == set(certs)
    assert Counter(v.certificate_id for v in versions)["mc-api-prod"] == 2
    for cert_id, cert in certs.items():
        assert cert.expires_at == latest[cert_id].not_after, cert_id
        expired = cert.expires_at is not None and cert.expires_at <= now
        assert expired == (cert.status is S.EXPIRED), cert_id
        if cert.status is S.EXPIRED:
            assert cert.expires_at is not None
            assert cert.expires_at < now - timedelta(days=2)


def test_no_certificate_is_mapped_to_targets_of_two_agents(demo: AppContext) -> None:
    with demo.db.begin() as session:
        rows = session.execute(
            select(CertificateTargetMapping.certificate_id, func.count(func.distinct(DeploymentTarget.agent_id)))
            .join(DeploymentTarget, DeploymentTarget.id == CertificateTargetMapping.target_id)
            .group_by(CertificateTargetMapping.certificate_id)
        ).all()
        deployments = session.execute(
            select(Job.agent_id, DeploymentTarget.agent_id)
            .join(DeploymentTarget, DeploymentTarget.id == Job.target_id)
            .where(Job.type == JobType.DEPLOYMENT)
        ).all()
    assert len(rows) == 28  # api-dev, the S/MIME certificate and two expired ones have no target
    assert all(agents == 1 for _, agents in rows)
    assert deployments
    assert all(job_agent == target_agent for job_agent, target_agent in deployments)


def test_the_first_renewal_check_changes_no_status_and_creates_no_job(demo: AppContext) -> None:
    before = snapshot(demo)
    summary = RenewalChecker(demo.db, demo.clock, KeygenMode.AGENT, lambda _: True).run()
    assert (summary.marked_expiring, summary.marked_expired, summary.jobs_created) == (0, 0, 0)
    assert snapshot(demo) == before


def test_no_job_loop_finds_anything_due_at_load_time(demo: AppContext, clock: FrozenClock) -> None:
    before = snapshot(demo)
    queue = JobQueue(demo.db, demo.clock)
    now = clock.now()
    results = [
        queue.retry_due(now),
        queue.reclaim_expired_leases(now),
        queue.time_out_waiting_jobs(now),
        queue.reap_offline_agent_jobs(now),
    ]
    assert [result.changed + result.terminal for result in results] == [0, 0, 0, 0]
    assert expire_short_lived(demo.db, demo.clock).expired == 0
    assert snapshot(demo) == before


def test_workload_agents_use_the_documented_demo_keys_and_sentinels_none(demo: AppContext, clock: FrozenClock) -> None:
    with demo.db.begin() as session:
        agents = {agent.id: agent for agent in session.scalars(select(Agent))}
    assert len(agents) == 12
    for agent_id in WORKLOAD_AGENTS:
        assert agents[agent_id].api_key_hash == hash_key(demo_agent_key(agent_id))
    for agent_id in set(agents) - set(WORKLOAD_AGENTS):
        assert len(agents[agent_id].api_key_hash) != 64  # not a SHA-256 digest: no key matches
    offline = [agent.id for agent in agents.values() if agent.status is AgentStatus.OFFLINE]
    assert offline == ["ag-iis-prod"]
    assert agents["ag-iis-prod"].last_heartbeat_at == clock.now() - timedelta(hours=3)


def test_audit_trail_is_typed_and_loaded_once(demo: AppContext) -> None:
    with demo.db.begin() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.timestamp, AuditEvent.id)).all()
    assert len(events) == 51
    assert [event.id for event in events] == sorted(event.id for event in events)  # ids follow time
    actions = Counter(event.action for event in events)
    assert actions["renewal_job_completed"] == 16
    assert actions["certificate_revoked"] == 1
    assert actions["renewal_job_failed"] == 1
    assert {event.actor_type.value for event in events} == {"User", "System", "Agent"}
    revoked = next(event for event in events if event.action == "certificate_revoked")
    assert revoked.actor == "bob@example.com"
    assert revoked.details["reason"] == "keyCompromise"


def test_a_demo_name_taken_by_another_row_fails_without_writing(
    context_factory: Callable[..., AppContext], clock: FrozenClock
) -> None:
    context = context_factory(clock)
    seed_env_issuers(context)
    with context.db.begin() as session:
        session.add(Team(id="t-pay", name="Payments", created_at=clock.now(), updated_at=clock.now()))
    with pytest.raises(DemoDataConflict, match="clashes"):
        load_demo(context)
    with context.db.begin() as session:
        assert session.scalar(select(func.count()).select_from(Team)) == 1
        assert session.scalar(select(func.count()).select_from(ManagedCertificate)) == 0


def test_two_processes_loading_at_once_insert_each_row_once(
    context_factory: Callable[..., AppContext], clock: FrozenClock
) -> None:
    contexts = [context_factory(clock), context_factory(clock)]
    seed_env_issuers(contexts[0])
    start = threading.Barrier(2)
    summaries: list[DemoSummary] = []

    def load(context: AppContext) -> None:
        start.wait()
        summaries.append(load_demo(context))

    threads = [threading.Thread(target=load, args=(context,)) for context in contexts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(summaries) == 2
    assert {table: sum(s.inserted[table] for s in summaries) for table in EXPECTED_ROWS} == EXPECTED_ROWS


@pytest.mark.parametrize(
    ("path", "total"),
    [
        ("/api/v1/teams", 6),
        ("/api/v1/owners", 6),
        ("/api/v1/renewal-policies", 4),
        ("/api/v1/profiles", 5),
        ("/api/v1/issuers", 13),
        ("/api/v1/targets", 10),
        ("/api/v1/audit", 51),
        ("/api/v1/certificates/mc-api-prod/versions", 2),
        ("/api/v1/certificates/mc-api-prod/targets", 2),
    ],
)
def test_every_list_page_shows_the_demo(demo: AppContext, path: str, total: int) -> None:
    with client_for(demo) as api:
        response = api.get(path, params={"per_page": 100})
    assert response.status_code == 200, response.text
    assert response.json()["total"] == total


def test_dashboard_charts_render_the_demo(demo: AppContext) -> None:
    with client_for(demo) as api:
        for path in (
            "/api/v1/stats/certificates-by-status",
            "/api/v1/stats/expiration-timeline",
            "/api/v1/stats/job-trends",
            "/api/v1/stats/issuance-rate",
            "/api/v1/metrics",
        ):
            assert api.get(path).status_code == 200, path
        exported = api.get("/api/v1/certificates/mc-api-prod/export/pem")
    assert exported.status_code == 200, exported.text


def test_demo_leaves_point_relying_parties_at_the_distribution_point(
    context_factory: Callable[..., AppContext], clock: FrozenClock
) -> None:
    context = context_factory(clock, server_public_url="https://certctl.example.com", pki_http_port=8080)
    seed_env_issuers(context)
    load_demo(context)
    with context.db.begin() as session:
        version = session.scalars(
            select(CertificateVersion).where(CertificateVersion.certificate_id == "mc-compromised")
        ).one()
        leaf = x509.load_pem_x509_certificates(version.pem_chain.encode())[0]
    base = "http://certctl.example.com:8080/.well-known/pki"
    access = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert {(d.access_method, d.access_location.value) for d in access} == {
        (AuthorityInformationAccessOID.OCSP, f"{base}/ocsp/iss-local"),
        (AuthorityInformationAccessOID.CA_ISSUERS, f"{base}/ca/iss-local"),
    }
    [point] = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [name.value for name in point.full_name or []] == [f"{base}/crl/iss-local"]
