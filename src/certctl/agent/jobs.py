"""The three kinds of work (agent-targets-discovery.md §A1.4-§A1.7, core.md §6.4-§6.5).

* CSR job (any item in AwaitingCSR): make the key here, keep the previous one, submit the CSR. The
  server moves the job on after a 202; the agent reports only failures.
* Deployment job: fetch the certificate (the version named, or the newest), pick the local key that
  matches it, deploy with the target's connector, verify, report Completed or Failed with the
  connector's structured result.
* Validation job ("test target"): build the connector, `validate_config()`, `test()`, and report each
  check.

Failures are reported, not raised. What propagates: AgentRetired (stop), ServerUnreachable while the
job still needs the server (the claimed item stays journaled and runs again after reconnecting).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cryptography import x509

from certctl.agent.client import AgentClient
from certctl.agent.errors import AgentRetired, BadResponse, ServerRejected, ServerUnreachable, StaleJob
from certctl.agent.keys import (
    DEFAULT_KEY_ALGORITHM,
    KeyFiles,
    KeyMismatch,
    KeyNotFound,
    csr_pem,
    generate_private_key,
    private_key_pem,
)
from certctl.agent.protocol import JobKind, ReportedStatus, WorkItem
from certctl.agent.reporter import Reporter
from certctl.agent.state import Journal
from certctl.agent.verify import AgentVerifier, agent_endpoint
from certctl.deploy.connectors import (
    CheckItem,
    ConnectorDeps,
    DeployRequest,
    TargetConnector,
    build_connector,
)
from certctl.deploy.errors import TargetConfigError, UnsupportedTargetType
from certctl.deploy.verify import certificate_fingerprint
from certctl.pki.keys import KeyAlgorithm

log = logging.getLogger("certctl.agent")

_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
_PEM_END = "-----END CERTIFICATE-----"


def split_chain(pem: str) -> tuple[str, str]:
    """(leaf, chain): the first CERTIFICATE block, and the rest trimmed ("" when none). Text without a
    PEM block comes back whole as the leaf (A4 case 6)."""
    start = pem.find(_PEM_BEGIN)
    end = pem.find(_PEM_END, start + 1) if start >= 0 else -1
    if start < 0 or end < 0:
        return pem, ""
    end += len(_PEM_END)
    rest = pem[end:].strip()
    return pem[start:end] + "\n", (rest + "\n" if rest else "")


class _JobFailed(Exception):
    """Internal: stop the job and report Failed with this message (and a result, when there is one)."""

    def __init__(self, message: str, result: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True, slots=True)
class JobContext:
    """What the handlers share; built once by the runner."""

    client: AgentClient
    reporter: Reporter
    journal: Journal
    keys: KeyFiles
    verifier: AgentVerifier
    deps: ConnectorDeps
    verify_deployment: bool = True


class JobRunner:
    def __init__(self, context: JobContext) -> None:
        self._ctx = context

    def run(self, item: WorkItem) -> None:
        """Dispatch one work item (§A1.4): AwaitingCSR → CSR job; Deployment; Validation; others ignored."""
        fields = {"job_id": item.id, "job_type": item.type, "certificate_id": item.certificate_id}
        if item.awaits_csr:
            handler = self._csr
        elif item.type == JobKind.DEPLOYMENT:
            handler = self._deploy
        elif item.type == JobKind.VALIDATION:
            handler = self._validate
        else:
            log.info("agent.job.ignored", extra={**fields, "status": item.status})
            return
        log.info("agent.job.started", extra={**fields, "target_id": item.target_id, "target_type": item.target_type})
        try:
            handler(item)
        except _JobFailed as exc:
            log.error("agent.job.failed", extra={**fields, "error": str(exc)})
            self._ctx.reporter.status(item.id, ReportedStatus.FAILED, str(exc), exc.result)
        except StaleJob:
            log.warning("agent.job.dropped", extra={**fields, "reason": "the job is no longer Running on the server"})
            self._ctx.journal.drop_work(item.id)
        except (AgentRetired, ServerUnreachable):
            raise
        except Exception as exc:  # a bug in one job must not wedge the queue: report it and go on
            log.exception("agent.job.crashed", extra=fields)
            self._ctx.reporter.status(
                item.id, ReportedStatus.FAILED, f"internal agent error: {type(exc).__name__}: {exc}"
            )

    # -- CSR job (§A1.5) ------------------------------------------------------------------------------

    def _csr(self, item: WorkItem) -> None:
        common_name = (item.common_name or "").strip()
        if not common_name:
            raise _JobFailed("empty common name")  # checked before any key is made or written
        csr = self._ctx.journal.pending_csr(item.id)
        if csr is None:
            csr = self._new_key_and_csr(item, common_name)
        try:
            answer = self._ctx.client.submit_csr(item.certificate_id, csr)
        except ServerUnreachable:
            # Keep key and CSR: the next poll that still lists the job sends the same CSR again.
            self._ctx.journal.save_csr(item.id, item.certificate_id, csr)
            raise
        except (ServerRejected, BadResponse) as exc:
            self._ctx.journal.drop_csr(item.id)
            self._ctx.keys.restore_previous(item.certificate_id)  # the deployed cert keeps its key
            raise _JobFailed(str(exc) if isinstance(exc, ServerRejected) else f"CSR rejected: {exc}") from exc
        self._ctx.journal.drop_csr(item.id)
        log.info(
            "agent.csr.accepted",
            extra={"job_id": item.id, "certificate_id": item.certificate_id, "answer": answer.get("status", "")},
        )

    def _new_key_and_csr(self, item: WorkItem, common_name: str) -> str:
        try:
            algorithm = KeyAlgorithm.parse(item.key_algorithm) if item.key_algorithm else DEFAULT_KEY_ALGORITHM
        except ValueError as exc:
            raise _JobFailed(f"key generation failed: {exc}") from exc
        try:
            self._ctx.keys.key_path(item.certificate_id)
        except ValueError as exc:
            raise _JobFailed(str(exc)) from exc
        try:
            key = generate_private_key(algorithm)
        except (ValueError, TypeError) as exc:
            raise _JobFailed(f"key generation failed: {exc}") from exc
        try:
            csr = csr_pem(key, common_name, item.sans)
        except ValueError as exc:
            raise _JobFailed(f"CSR creation failed: {exc}") from exc
        try:
            self._ctx.keys.install(item.certificate_id, private_key_pem(key))
        except OSError as exc:
            raise _JobFailed(f"key write failed: {exc}") from exc
        # Journaled before sending: if the answer is lost, the same CSR (and key) is used again.
        self._ctx.journal.save_csr(item.id, item.certificate_id, csr)
        log.info(
            "agent.key.generated",
            extra={"certificate_id": item.certificate_id, "key_algorithm": algorithm.value},
        )
        return csr

    # -- Deployment job (§A1.7) -----------------------------------------------------------------------

    def _deploy(self, item: WorkItem) -> None:
        self._report_running(item)
        try:
            bundle = self._ctx.client.fetch_certificate(item.certificate_id, item.version_id)
        except ServerRejected as exc:
            raise _JobFailed(f"cert fetch failed: server returned {exc.status_code}: {exc.body}") from exc
        except BadResponse as exc:
            raise _JobFailed(f"cert fetch failed: {exc}") from exc
        cert_pem, chain_pem = split_chain(bundle.certificate_pem)
        try:
            certificate = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
            expected = certificate_fingerprint(cert_pem)
        except (ValueError, UnicodeEncodeError) as exc:
            raise _JobFailed(f"cert fetch failed: the certificate does not parse: {exc}") from exc
        key_pem = self._key_for(item, certificate, bundle.private_key_pem)
        if not item.target_type:
            log.info("agent.deploy.no_target", extra={"job_id": item.id})
            self._ctx.reporter.status(item.id, ReportedStatus.COMPLETED)
            return
        connector = self._connector(item)
        request = DeployRequest(
            cert_pem,
            chain_pem,
            key_pem,
            target_id=item.target_id or None,
            metadata={"certificate_id": item.certificate_id, "job_id": item.id},
        )
        try:
            deployed = connector.deploy(request)
        except TargetConfigError as exc:
            raise _JobFailed(f"invalid target config: {exc}") from exc
        report = deployed.as_report()
        if not deployed.success:
            raise _JobFailed(f"deployment failed: {deployed.message}", report)
        if self._ctx.verify_deployment:
            verification = self._ctx.verifier.verify(
                item.target_id, item.target_type, item.target_config, expected, deployed
            )
            if verification is not None:
                self._ctx.reporter.verification(item.id, verification)
                log.info(
                    "agent.verify.result",
                    extra={"job_id": item.id, "verified": verification.verified, "error": verification.error},
                )
        self._ctx.reporter.status(item.id, ReportedStatus.COMPLETED, result=report)
        log.info(
            "agent.job.completed",
            extra={"job_id": item.id, "target_id": item.target_id, "outcome": deployed.outcome.value},
        )

    def _report_running(self, item: WorkItem) -> None:
        """§A1.7 step 1. 409 (StaleJob) propagates: the job was cancelled or reaped, so nothing runs."""
        try:
            self._ctx.client.report_status(item.id, ReportedStatus.RUNNING)
        except (ServerRejected, BadResponse) as exc:
            if isinstance(exc, StaleJob):
                raise
            log.warning("agent.report.running_failed", extra={"job_id": item.id, "error": str(exc)})

    def _key_for(self, item: WorkItem, certificate: x509.Certificate, delivered: str | None) -> str:
        keys = self._ctx.keys
        try:
            if delivered:
                keys.install_delivered(item.certificate_id, delivered)
            return keys.matching_key(item.certificate_id, certificate)
        except (KeyNotFound, KeyMismatch, ValueError) as exc:
            raise _JobFailed(str(exc)) from exc
        except OSError as exc:
            raise _JobFailed(f"key write failed: {exc}") from exc

    def _connector(self, item: WorkItem) -> TargetConnector:
        target_type = item.target_type or ""
        try:
            connector = build_connector(target_type, item.target_config, self._ctx.deps)
        except (UnsupportedTargetType, TargetConfigError) as exc:
            raise _JobFailed(f"connector init failed: {exc}") from exc
        try:
            connector.validate_config()  # the original never did (§0 point 1): defaults and injection guard
        except TargetConfigError as exc:
            raise _JobFailed(f"invalid target config: {exc}") from exc
        return connector

    # -- Validation job ("test target") ----------------------------------------------------------------

    def _validate(self, item: WorkItem) -> None:
        self._report_running(item)
        checks = self._checks(item)
        result: dict[str, object] = {
            "checks": [{"name": c.name, "ok": c.ok, "message": c.message} for c in checks],
        }
        failed = [c for c in checks if not c.ok]
        if failed:
            message = "; ".join(f"{c.name}: {c.message}" for c in failed)
            self._ctx.reporter.status(item.id, ReportedStatus.FAILED, message, result)
        else:
            self._ctx.reporter.status(item.id, ReportedStatus.COMPLETED, result=result)
        log.info("agent.validation.result", extra={"job_id": item.id, "ok": not failed, "checks": len(checks)})

    def _checks(self, item: WorkItem) -> list[CheckItem]:
        target_type = item.target_type or ""
        try:
            connector = build_connector(target_type, item.target_config, self._ctx.deps)
            connector.validate_config()
        except (UnsupportedTargetType, TargetConfigError) as exc:
            return [CheckItem("config", False, str(exc))]
        checks = list(connector.test().items)
        try:
            endpoint = agent_endpoint(target_type, item.target_config)
        except ValueError as exc:
            return [*checks, CheckItem("tls_probe", False, str(exc))]
        if endpoint is not None:
            probe = self._ctx.deps.probe(endpoint, self._ctx.verifier.timeout_seconds)
            message = f"{endpoint} serves SHA-256 {probe.fingerprint}" if probe.success else probe.error
            checks.append(CheckItem("tls_probe", probe.success, message))
        return checks
