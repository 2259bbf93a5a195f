"""The agent's HTTPS client for the control plane's agent routes (§A1.1, §A1.15, core.md §6.1).

TLS 1.3 minimum; when a CA bundle is configured it is the **only** set of trust roots; 30 s per
request, 10 s to connect and shake hands. Every request carries `Authorization: Bearer <credential>`
and JSON. Statuses become typed errors: 410 → AgentRetired (from any route), 409 on a job status →
StaleJob, other unexpected statuses → ServerRejected, no answer → ServerUnreachable.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from cryptography import x509
from pydantic import BaseModel, ValidationError

from certctl.agent.errors import (
    AgentConfigError,
    AgentRetired,
    BadResponse,
    ServerRejected,
    ServerUnreachable,
    StaleJob,
)
from certctl.agent.protocol import CertificateBundle, HostInfo, Registration, ReportedStatus, WorkItem, WorkList

REQUEST_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10.0
_BODY_IN_ERRORS = 500  # characters of a server's error body quoted in our messages

_Model = TypeVar("_Model", bound=BaseModel)


def client_ssl_context(ca_bundle: Path | None, insecure_skip_verify: bool = False) -> ssl.SSLContext:
    """TLS 1.3+; the bundle (when set) as the only roots. Raises AgentConfigError for an unusable bundle."""
    if insecure_skip_verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # development only; the runner logs a loud warning
    elif ca_bundle is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no default roots: the bundle is the trust
        context.load_verify_locations(cadata=read_ca_bundle(ca_bundle))
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def read_ca_bundle(path: Path) -> str:
    """The bundle's PEM text; raises AgentConfigError when unreadable or without a certificate."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AgentConfigError(f"reading CA bundle at {path}: {exc.strerror or exc}") from exc
    try:
        x509.load_pem_x509_certificates(data)
        return data.decode("ascii")
    except ValueError:
        raise AgentConfigError(f"CA bundle at {path} contains no valid PEM-encoded certificates") from None


class AgentClient:
    """One agent's view of the control plane. `credential` is the per-agent key (or None before registration)."""

    def __init__(
        self,
        server_url: str,
        *,
        agent_id: str | None = None,
        credential: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self.agent_id = agent_id or ""
        self._http = httpx.Client(
            base_url=server_url,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_seconds, connect=min(CONNECT_TIMEOUT_SECONDS, timeout_seconds)),
            verify=ssl_context if ssl_context is not None else True,
            transport=transport,
            follow_redirects=False,
        )
        self._credential = credential

    def close(self) -> None:
        self._http.close()

    def use_credential(self, agent_id: str, credential: str) -> None:
        self.agent_id, self._credential = agent_id, credential

    # -- the routes ---------------------------------------------------------------------------------

    def register(self, name: str, host: HostInfo, bootstrap_token: str) -> Registration:
        """`POST /api/v1/agents` with the bootstrap token; 201 carries the credential."""
        response = self._send("POST", "/api/v1/agents", {"name": name, **host.as_json()}, token=bootstrap_token)
        return self._parse(self._expect(response, 201, "registration"), Registration, "registration")

    def heartbeat(self, host: HostInfo) -> None:
        self._expect(self._send("POST", self._agent_path("heartbeat"), host.as_json()), 200, "heartbeat")

    def poll(self, *, peek: bool = False) -> list[WorkItem]:
        """The work items; `peek` lists due jobs without claiming them (the dry run)."""
        params = {"peek": "true"} if peek else None
        response = self._expect(self._send("GET", self._agent_path("work"), params=params), 200, "work poll")
        return self._parse(response, WorkList, "work poll").jobs

    def submit_csr(self, certificate_id: str, csr_pem: str) -> dict[str, Any]:
        """Only 202 is success (the server signed it)."""
        body = {"csr_pem": csr_pem, "certificate_id": certificate_id}
        response = self._expect(self._send("POST", self._agent_path("csr"), body), 202, "CSR rejected")
        return _json_object(response, "CSR submission")

    def fetch_certificate(self, certificate_id: str, version_id: str | None = None) -> CertificateBundle:
        path = self._agent_path(f"certificates/{quote(certificate_id, safe='')}")
        params = {"version_id": version_id} if version_id else None
        response = self._expect(self._send("GET", path, params=params), 200, "cert fetch failed")
        return self._parse(response, CertificateBundle, "cert fetch")

    def report_status(
        self, job_id: str, status: ReportedStatus, error: str = "", result: dict[str, object] | None = None
    ) -> None:
        """Raises StaleJob (409: the job is no longer Running), ServerRejected, ServerUnreachable."""
        self.send_report(*status_report(self.agent_id, job_id, status, error, result))

    def send_report(self, path: str, body: dict[str, Any]) -> None:
        """POST a journaled report (a job status or a verification); only 200 is success."""
        response = self._send("POST", path, body)
        if response.status_code == 409 and "/jobs/" in path and path.endswith("/status"):
            raise StaleJob("job status report", 409, _trimmed(response))
        self._expect(response, 200, "report")

    # -- plumbing -----------------------------------------------------------------------------------

    def _agent_path(self, tail: str) -> str:
        if not self.agent_id:
            raise AgentConfigError("no agent id: register the agent first")
        return f"/api/v1/agents/{quote(self.agent_id, safe='')}/{tail}"

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: dict[str, str] | None = None,
        token: str | None = None,
    ) -> httpx.Response:
        credential = token if token is not None else self._credential
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        content = json.dumps(body).encode("utf-8") if body is not None else None
        try:
            response = self._http.request(method, path, content=content, params=params, headers=headers)
        except httpx.InvalidURL as exc:
            raise AgentConfigError(f"invalid request URL for {path}: {exc}") from exc
        except httpx.HTTPError as exc:  # transport: DNS, refused, TLS, timeout
            raise ServerUnreachable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 410:
            raise AgentRetired(_error_message(response) or "agent retired by control plane")
        return response

    @staticmethod
    def _expect(response: httpx.Response, status: int, what: str) -> httpx.Response:
        if response.status_code != status:
            raise ServerRejected(what, response.status_code, _trimmed(response))
        return response

    @staticmethod
    def _parse(response: httpx.Response, model: type[_Model], what: str) -> _Model:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise BadResponse(f"{what}: unexpected response body ({exc.error_count()} problem(s))") from exc


def status_report(
    agent_id: str, job_id: str, status: ReportedStatus, error: str = "", result: dict[str, object] | None = None
) -> tuple[str, dict[str, Any]]:
    """The path and body of a job status report; `error` only when non-empty (A4 case 12)."""
    body: dict[str, Any] = {"status": status.value}
    if error:
        body["error"] = error
    if result is not None:
        body["result"] = result
    return f"/api/v1/agents/{quote(agent_id, safe='')}/jobs/{quote(job_id, safe='')}/status", body


def verify_report_path(job_id: str) -> str:
    return f"/api/v1/jobs/{quote(job_id, safe='')}/verify"


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        value = response.json() if response.content else {}
    except ValueError as exc:
        raise BadResponse(f"{what}: response is not JSON") from exc
    if not isinstance(value, dict):
        raise BadResponse(f"{what}: response is not a JSON object")
    return value


def _error_message(response: httpx.Response) -> str:
    try:
        value = response.json()
    except ValueError:
        return response.text.strip()[:_BODY_IN_ERRORS]
    if isinstance(value, dict):
        return str(value.get("message") or value.get("error") or "")
    return ""


def _trimmed(response: httpx.Response) -> str:
    return response.text.strip()[:_BODY_IN_ERRORS]
