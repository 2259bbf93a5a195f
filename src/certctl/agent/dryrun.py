"""`--dry-run` (§A1.1, A4 case 87): what the agent would do with the work it is given, and nothing more.

For each item: a CSR job says which key it would make; a Deployment builds the connector, runs
`validate_config()` and `validate_only()` (a staged validate command writes its temp files next to
the targets and removes them; live files are never touched) and says what it would write; a
Validation names the checks. No key is generated or written, no CSR sent, no status reported.

The poll asks with `peek=true`: the server lists the due jobs without claiming them, so nothing is left
Running behind the dry run.
"""

from __future__ import annotations

import logging

from cryptography import x509

from certctl.agent.client import AgentClient
from certctl.agent.errors import BadResponse, ServerRejected
from certctl.agent.jobs import split_chain
from certctl.agent.keys import DEFAULT_KEY_ALGORITHM, KeyFiles, KeyMismatch, KeyNotFound
from certctl.agent.protocol import JobKind, WorkItem
from certctl.deploy.connectors import ConnectorDeps, DeployRequest, build_connector
from certctl.deploy.errors import DeployError, TargetConfigError, UnsupportedTargetType, ValidateOnlyNotSupported

log = logging.getLogger("certctl.agent")


class DryRun:
    def __init__(self, client: AgentClient, keys: KeyFiles, deps: ConnectorDeps) -> None:
        self._client, self._keys, self._deps = client, keys, deps

    def plan(self, item: WorkItem) -> bool:
        """Log the planned action; False when the real run would fail at a step checked here."""
        fields = {"job_id": item.id, "job_type": item.type, "certificate_id": item.certificate_id}
        if item.awaits_csr:
            algorithm = item.key_algorithm or DEFAULT_KEY_ALGORITHM.value
            try:
                key_path = str(self._keys.key_path(item.certificate_id))
            except ValueError as exc:
                return _would_fail(fields, str(exc))
            if not (item.common_name or "").strip():
                return _would_fail(fields, "empty common name")
            log.info(
                f"dry-run: would generate a {algorithm} key at {key_path} and submit a CSR for "
                f"CN={item.common_name} SANs={','.join(item.sans) or '-'}",
                extra=fields,
            )
            return True
        if item.type == JobKind.DEPLOYMENT:
            return self._deployment(item, fields)
        if item.type == JobKind.VALIDATION:
            log.info(f"dry-run: would test {item.target_type} target {item.target_id}", extra=fields)
            return True
        log.info(f"dry-run: would ignore a {item.type} job in status {item.status}", extra=fields)
        return True

    def _deployment(self, item: WorkItem, fields: dict[str, str]) -> bool:
        version = item.version_id or "the newest version"
        try:
            bundle = self._client.fetch_certificate(item.certificate_id, item.version_id)
        except (ServerRejected, BadResponse) as exc:
            return _would_fail(fields, f"cert fetch failed: {exc}")
        cert_pem, chain_pem = split_chain(bundle.certificate_pem)
        key_pem: str | None = bundle.private_key_pem
        if key_pem is None:
            try:
                key_pem = self._keys.matching_key(
                    item.certificate_id, x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
                )
            except (KeyNotFound, KeyMismatch, ValueError) as exc:
                return _would_fail(fields, str(exc))
        if not item.target_type:
            log.info(f"dry-run: would fetch {version} of {item.certificate_id}; no target to deploy to", extra=fields)
            return True
        try:
            connector = build_connector(item.target_type, item.target_config, self._deps)
            connector.validate_config()
        except (UnsupportedTargetType, TargetConfigError) as exc:
            return _would_fail(fields, f"invalid target config: {exc}")
        try:
            connector.validate_only(DeployRequest(cert_pem, chain_pem, key_pem, target_id=item.target_id))
            validated = "the validate command passes"
        except ValidateOnlyNotSupported:
            validated = "no validate command to dry-run"
        except DeployError as exc:
            return _would_fail(fields, f"validate_only failed: {exc}")
        log.info(
            f"dry-run: would deploy {version} of {item.certificate_id} to {item.target_type} target "
            f"{item.target_id} ({validated})",
            extra=fields,
        )
        return True


def _would_fail(fields: dict[str, str], reason: str) -> bool:
    log.error(f"dry-run: the job would fail: {reason}", extra=fields)
    return False
