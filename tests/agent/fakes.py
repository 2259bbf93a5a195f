"""A small in-memory control plane behind `httpx.MockTransport`, for the agent's unit tests.

It speaks the agent protocol (core.md §6): registration, heartbeat, work, CSR (signed by a throwaway
CA), certificate pickup, job status and verification reports; and it records every request. Tests
switch a route to another status with `fail`, or take the whole server down with `down`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certctl.agent.client import AgentClient
from certctl.clock import Clock

AGENT_ID = "ag-test"
API_KEY = "test-key"
BASE_URL = "https://control-plane.test"

_ROUTES = [
    ("register", "POST", re.compile(r"^/api/v1/agents$")),
    ("heartbeat", "POST", re.compile(r"^/api/v1/agents/(?P<agent>[^/]+)/heartbeat$")),
    ("work", "GET", re.compile(r"^/api/v1/agents/(?P<agent>[^/]+)/work$")),
    ("csr", "POST", re.compile(r"^/api/v1/agents/(?P<agent>[^/]+)/csr$")),
    ("certificate", "GET", re.compile(r"^/api/v1/agents/(?P<agent>[^/]+)/certificates/(?P<cert>[^/]+)$")),
    ("status", "POST", re.compile(r"^/api/v1/agents/(?P<agent>[^/]+)/jobs/(?P<job>[^/]+)/status$")),
    ("verify", "POST", re.compile(r"^/api/v1/jobs/(?P<job>[^/]+)/verify$")),
]


class SmallCA:
    """Signs CSRs (and makes whole key + cert pairs) for `localhost`-style names."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agent test CA")])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, public_key: Any, common_name: str, sans: list[x509.GeneralName] | None = None) -> str:
        now = datetime.now(UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()

    def sign_csr(self, csr_pem: str) -> str:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        common_name = str(csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
        try:
            sans = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            sans = []
        return self.sign(csr.public_key(), common_name, sans)

    def chain_for(self, leaf_pem: str) -> str:
        return leaf_pem + self.cert_pem


@dataclass
class Recorded:
    route: str
    method: str
    path: str
    headers: httpx.Headers
    body: Any
    params: dict[str, str]
    at: float = 0.0  # the clock's monotonic time, when the server has a clock


@dataclass
class FakeControlPlane:
    ca: SmallCA = field(default_factory=SmallCA)
    work: list[dict[str, Any]] = field(default_factory=list)
    certificates: dict[str, str] = field(default_factory=dict)  # certificate_id → leaf + chain PEM
    delivered_keys: dict[str, str] = field(default_factory=dict)  # server-keygen keys
    stale_jobs: set[str] = field(default_factory=set)  # status reports get 409
    fail: dict[str, int] = field(default_factory=dict)  # route → status to answer instead
    fail_body: dict[str, Any] = field(default_factory=dict)
    down: bool = False
    down_after: str | None = None  # go down right after answering this route once
    clock: Clock | None = None
    requests: list[Recorded] = field(default_factory=list)
    csrs: list[str] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        route, match = next(
            ((name, m) for name, method, pattern in _ROUTES if request.method == method and (m := pattern.match(path))),
            ("unknown", None),
        )
        body = json.loads(request.content) if request.content else None
        at = self.clock.monotonic() if self.clock is not None else 0.0
        self.requests.append(
            Recorded(route, request.method, path, request.headers, body, dict(request.url.params.items()), at)
        )
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if route in self.fail:
            return httpx.Response(self.fail[route], json=self.fail_body.get(route, {"error": "injected"}))
        if match is None:
            return httpx.Response(404, json={"error": "Not Found"})
        response: httpx.Response = getattr(self, f"_{route}")(match, body)
        if route == self.down_after:
            self.down, self.down_after = True, None
        return response

    # -- routes ---------------------------------------------------------------------------------------

    def _register(self, _match: re.Match[str], body: Any) -> httpx.Response:
        return httpx.Response(201, json={"id": AGENT_ID, "name": body["name"], "api_key": API_KEY})

    def _heartbeat(self, _match: re.Match[str], _body: Any) -> httpx.Response:
        return httpx.Response(200, json={"status": "ok"})

    def _work(self, _match: re.Match[str], _body: Any) -> httpx.Response:
        return httpx.Response(200, json={"jobs": self.work, "count": len(self.work)})

    def _csr(self, _match: re.Match[str], body: Any) -> httpx.Response:
        self.csrs.append(body["csr_pem"])
        leaf = self.ca.sign_csr(body["csr_pem"])
        self.certificates[body["certificate_id"]] = self.ca.chain_for(leaf)
        return httpx.Response(202, json={"status": "csr_signed", "job_id": "job-1", "version_id": "cv-1"})

    def _certificate(self, match: re.Match[str], _body: Any) -> httpx.Response:
        pem = self.certificates.get(match["cert"])
        if pem is None:
            return httpx.Response(404, json={"error": "Not Found", "message": "certificate not found"})
        answer = {"certificate_pem": pem, "version_id": "cv-1", "serial_number": "01"}
        if match["cert"] in self.delivered_keys:
            answer["private_key_pem"] = self.delivered_keys[match["cert"]]
        return httpx.Response(200, json=answer)

    def _status(self, match: re.Match[str], _body: Any) -> httpx.Response:
        if match["job"] in self.stale_jobs:
            return httpx.Response(409, json={"error": "Conflict", "message": "job is not Running"})
        return httpx.Response(200, json={"id": match["job"]})

    def _verify(self, match: re.Match[str], _body: Any) -> httpx.Response:
        return httpx.Response(200, json={"id": match["job"]})

    # -- what tests ask -------------------------------------------------------------------------------

    def calls(self, route: str) -> list[Recorded]:
        return [r for r in self.requests if r.route == route]

    def statuses(self, job_id: str) -> list[dict[str, Any]]:
        return [r.body for r in self.calls("status") if r.path.endswith(f"/jobs/{job_id}/status")]

    def client(self, *, agent_id: str = AGENT_ID, credential: str | None = API_KEY) -> AgentClient:
        return AgentClient(BASE_URL, agent_id=agent_id, credential=credential, transport=httpx.MockTransport(self))
