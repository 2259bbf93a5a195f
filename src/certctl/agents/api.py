"""/api/v1/agents (operators and the agent protocol), job verification reports, and on-demand deploys.

Agent routes (`/agents/{id}/heartbeat|work|csr|certificates/…|jobs/…/status`) accept only agent `{id}`'s
own credential (core.md §6.1); the middleware keeps agent credentials away from every other route.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from certctl.agents.csr import CsrSigner
from certctl.agents.deployments import last_deployments, queue_deployments
from certctl.agents.outcomes import Outcomes
from certctl.agents.schemas import (
    AgentIn,
    AgentOut,
    CertificatePickupOut,
    CsrIn,
    CsrOut,
    DeployIn,
    DeploymentsOut,
    DeployOut,
    HeartbeatIn,
    HeartbeatOut,
    JobStatusIn,
    JobStatusOut,
    LastDeploymentOut,
    RegisteredAgentOut,
    RetireOut,
    TargetDeploymentOut,
    VerificationOut,
    VerifyIn,
    WorkOut,
)
from certctl.agents.service import AgentService, RetirementBlocked
from certctl.agents.work import AgentWork, StatusReport, VerificationReport
from certctl.api.deps import AdminActor, Context, CurrentActor, Paging
from certctl.api.errors import error_body, request_id_of
from certctl.api.schemas import CONFLICT, NOT_FOUND, ErrorOut, PageOut, Responses, page_out
from certctl.certificates.store import CertificateStore
from certctl.context import AppContext
from certctl.errors import Forbidden, ValidationFailed
from certctl.jobs.models import JobStatus
from certctl.jobs.service import JobQueue
from certctl.security.roles import ActorType

router = APIRouter(prefix="/agents", tags=["agents"])
jobs_router = APIRouter(prefix="/jobs", tags=["jobs"])
certificates_router = APIRouter(prefix="/certificates", tags=["certificates"])
GONE: Responses = {410: {"model": ErrorOut, "description": "The agent has been retired"}}


def _outcomes(ctx: AppContext) -> Outcomes:
    return Outcomes(
        notify=ctx.notifications.dispatcher.deliver_soon,
        webhook_configured=bool(ctx.settings.webhook_url),
        retry_backoff_cap=ctx.settings.job_retry_backoff_cap,
        counters=ctx.deploy_counters,
    )


def _work(ctx: AppContext) -> AgentWork:
    return AgentWork(ctx.db, ctx.clock, ctx.cipher, _outcomes(ctx))


async def own_agent(ctx: Context, actor: CurrentActor, agent_id: str) -> str:
    """The path's agent, when the caller is that agent (or authentication is off altogether)."""
    if ctx.auth_disabled or (actor.actor_type is ActorType.AGENT and actor.name == agent_id):
        return agent_id
    raise Forbidden("agent routes require the agent's own credential")


OwnAgent = Annotated[str, Depends(own_agent)]


# -- operators --------------------------------------------------------------------------------------------


@router.get("", response_model=PageOut[AgentOut])
def list_agents(ctx: Context, paging: Paging) -> PageOut[AgentOut]:
    return page_out(AgentService(ctx.db, ctx.clock).list(paging), AgentOut)


@router.get("/retired", response_model=PageOut[AgentOut])
def list_retired_agents(ctx: Context, paging: Paging) -> PageOut[AgentOut]:
    return page_out(AgentService(ctx.db, ctx.clock).list(paging, retired=True), AgentOut)


@router.post("", response_model=RegisteredAgentOut, status_code=201, responses=CONFLICT)
def register_agent(ctx: Context, actor: CurrentActor, body: AgentIn) -> RegisteredAgentOut:
    """Operators register agents, and agents holding CERTCTL_AGENT_BOOTSTRAP_TOKEN register themselves.
    The response carries the agent's credential, once."""
    details = body.model_dump(include={"os", "architecture", "ip_address", "version"})
    registered = AgentService(ctx.db, ctx.clock).register(body.name, body.hostname, details, actor)
    out = AgentOut.model_validate(registered.agent).model_dump()
    return RegisteredAgentOut(**out, api_key=registered.api_key)


@router.get("/{agent_id}", response_model=AgentOut, responses=NOT_FOUND)
def get_agent(ctx: Context, agent_id: str) -> AgentOut:
    return AgentOut.model_validate(AgentService(ctx.db, ctx.clock).get(agent_id))


@router.delete("/{agent_id}", response_model=RetireOut, responses=NOT_FOUND | CONFLICT)
def retire_agent(
    ctx: Context,
    actor: CurrentActor,
    request: Request,
    agent_id: str,
    force: Annotated[bool, Query(description="retire despite targets, certificates or open jobs")] = False,
    reason: Annotated[str, Query(max_length=1000)] = "",
) -> Response | RetireOut:
    try:
        done = AgentService(ctx.db, ctx.clock).retire(agent_id, actor, force=force, reason=reason)
    except RetirementBlocked as exc:
        body = error_body(409, str(exc), request_id_of(request), error="blocked_by_dependencies")
        return JSONResponse({**body, "counts": exc.counts}, status_code=409)
    if done.already_retired:
        return Response(status_code=204)
    return RetireOut(retired_at=done.retired_at, already_retired=False, cascade=done.cascade, counts=dict(done.counts))


@router.post("/{agent_id}/rotate-key", response_model=RegisteredAgentOut, responses=NOT_FOUND)
def rotate_agent_key(ctx: Context, actor: AdminActor, agent_id: str) -> RegisteredAgentOut:
    """A new credential for a lost or leaked one; the old one stops working at once."""
    registered = AgentService(ctx.db, ctx.clock).rotate_key(agent_id, actor)
    out = AgentOut.model_validate(registered.agent).model_dump()
    return RegisteredAgentOut(**out, api_key=registered.api_key)


# -- the agent protocol -----------------------------------------------------------------------------------


@router.post("/{agent_id}/heartbeat", response_model=HeartbeatOut, responses=NOT_FOUND | GONE)
def heartbeat(ctx: Context, agent_id: OwnAgent, body: HeartbeatIn) -> HeartbeatOut:
    AgentService(ctx.db, ctx.clock).heartbeat(agent_id, body.model_dump())
    return HeartbeatOut()


@router.get("/{agent_id}/work", response_model=WorkOut, responses=NOT_FOUND | GONE)
def poll_work(
    ctx: Context,
    agent_id: OwnAgent,
    peek: Annotated[bool, Query(description="list the due jobs without claiming them (dry run)")] = False,
) -> WorkOut:
    jobs = _work(ctx).poll(agent_id, claim=not peek)
    return WorkOut(jobs=jobs, count=len(jobs))


@router.post("/{agent_id}/csr", response_model=CsrOut, status_code=202, responses=NOT_FOUND | CONFLICT | GONE)
def submit_csr(ctx: Context, agent_id: OwnAgent, body: CsrIn) -> CsrOut:
    signed = CsrSigner(ctx.db, ctx.clock, ctx.connectors, _outcomes(ctx)).submit(
        agent_id, body.certificate_id, body.csr_pem
    )
    return CsrOut(job_id=signed.job_id, version_id=signed.version_id)


@router.get("/{agent_id}/certificates/{cert_id}", response_model=CertificatePickupOut, responses=NOT_FOUND | GONE)
def pick_up_certificate(
    ctx: Context, agent_id: OwnAgent, cert_id: str, version_id: Annotated[str | None, Query()] = None
) -> CertificatePickupOut:
    return CertificatePickupOut(**_work(ctx).certificate(agent_id, cert_id, version_id))


@router.post("/{agent_id}/jobs/{job_id}/status", response_model=JobStatusOut, responses=NOT_FOUND | CONFLICT)
def report_job_status(ctx: Context, agent_id: OwnAgent, job_id: str, body: JobStatusIn) -> JobStatusOut:
    try:
        status = JobStatus(body.status)
    except ValueError:
        raise ValidationFailed("status must be Running, Completed or Failed") from None
    job = _work(ctx).report_status(agent_id, job_id, StatusReport(status, body.error, body.result))
    return JobStatusOut(job_id=job.id, job_status=job.status.value, next_retry_at=job.next_retry_at)


# -- verification reports ----------------------------------------------------------------------------------


@jobs_router.post("/{job_id}/verify", response_model=VerificationOut, responses=NOT_FOUND)
def report_verification(ctx: Context, actor: CurrentActor, job_id: str, body: VerifyIn) -> VerificationOut:
    """The post-deploy TLS check: the served certificate's SHA-256 against the deployed one. Failed
    probes are stored too (empty actual fingerprint, `error` set)."""
    report = VerificationReport(
        body.target_id, body.expected_fingerprint, body.actual_fingerprint, body.verified, body.error
    )
    return VerificationOut.model_validate(_work(ctx).record_verification(job_id, actor, report))


@jobs_router.get("/{job_id}/verification", response_model=VerificationOut, responses=NOT_FOUND)
def get_verification(ctx: Context, job_id: str) -> VerificationOut:
    return VerificationOut.model_validate(JobQueue(ctx.db, ctx.clock).get(job_id))


# -- on-demand deployment ----------------------------------------------------------------------------------


@certificates_router.get("/{cert_id}/deployments", response_model=DeploymentsOut, responses=NOT_FOUND)
def certificate_deployments(ctx: Context, cert_id: str) -> DeploymentsOut:
    """Every mapped target and how the last deployment of this certificate to it went."""
    with ctx.db.read() as session:
        cert = CertificateStore(session).get(cert_id)
        rows = [
            TargetDeploymentOut.model_validate(target).model_copy(
                update={"last_deployment": LastDeploymentOut.model_validate(job) if job is not None else None}
            )
            for target, job in last_deployments(session, cert.id)
        ]
    return DeploymentsOut(data=rows, total=len(rows))


@certificates_router.post("/{cert_id}/deploy", response_model=DeployOut, status_code=202, responses=NOT_FOUND)
def deploy_certificate(ctx: Context, actor: CurrentActor, cert_id: str, body: DeployIn | None = None) -> DeployOut:
    """Queue a deployment of the latest version to every mapped target (or the listed ones)."""
    wanted = body.target_ids if body is not None else None
    with ctx.db.begin() as session:
        cert = CertificateStore(session).get(cert_id)
        if CertificateStore(session).latest_version(cert.id) is None:
            raise ValidationFailed(f"certificate {cert.id} has no issued version to deploy yet")
        mapped = set(CertificateStore(session).target_ids([cert.id])[cert.id])
        if wanted is not None and (unknown := sorted(set(wanted) - mapped)):
            raise ValidationFailed(f"target(s) {', '.join(unknown)} are not mapped to certificate {cert.id}")
        jobs = queue_deployments(session, cert, ctx.clock.now(), target_ids=wanted, actor=actor, trigger="manual")
        if not jobs:
            raise ValidationFailed(f"certificate {cert.id} has no enabled target with an active agent")
        return DeployOut(certificate_id=cert.id, job_ids=[job.id for job in jobs], count=len(jobs))
