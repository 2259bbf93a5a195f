"""The agent protocol's messages as types, parsed where they arrive (core.md §6.1-§6.5, §A1.15)."""

from __future__ import annotations

import platform
import socket
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from certctl import __version__

HOSTNAME_FALLBACK = "unknown"
_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv8": "arm64"}


class JobKind(StrEnum):
    ISSUANCE = "Issuance"
    RENEWAL = "Renewal"
    DEPLOYMENT = "Deployment"
    VALIDATION = "Validation"


class ReportedStatus(StrEnum):
    """The only statuses the agent sends (the server rejects the others)."""

    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"


AWAITING_CSR = "AwaitingCSR"


class WorkItem(BaseModel):
    """One entry of `GET /agents/{id}/work`. `target_config` is the decrypted config: never log it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(min_length=1)
    type: str
    status: str = ""
    certificate_id: str = ""
    common_name: str | None = None
    sans: list[str] = Field(default_factory=list)
    key_algorithm: str | None = None
    target_id: str | None = None
    target_type: str | None = None
    target_config: dict[str, Any] | str | None = Field(default=None, repr=False)
    version_id: str | None = None
    private_key_available: bool = False

    @field_validator("sans", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return [] if value is None else value

    @field_validator("certificate_id", mode="before")
    @classmethod
    def _none_is_blank(cls, value: object) -> object:
        return "" if value is None else value

    @property
    def awaits_csr(self) -> bool:
        return self.status == AWAITING_CSR

    @property
    def claimed(self) -> bool:
        """Deployment and Validation items were flipped to Running by the poll that returned them."""
        return not self.awaits_csr and self.type in (JobKind.DEPLOYMENT, JobKind.VALIDATION)


class WorkList(BaseModel):
    model_config = ConfigDict(extra="ignore")

    jobs: list[WorkItem] = Field(default_factory=list)

    @field_validator("jobs", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return [] if value is None else value


class CertificateBundle(BaseModel):
    """`GET /agents/{id}/certificates/{cert_id}`: leaf + chain PEM, and the key for server-keygen versions."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    certificate_pem: str = Field(min_length=1)
    version_id: str | None = None
    serial_number: str | None = None
    fingerprint_sha256: str | None = None
    private_key_pem: str | None = Field(default=None, repr=False)


class Registration(BaseModel):
    """201 of `POST /api/v1/agents`: the agent, and its credential (shown once)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(min_length=1)
    name: str = ""
    api_key: str = Field(min_length=1, repr=False)


@dataclass(frozen=True, slots=True)
class HostInfo:
    """What the heartbeat and the registration say about this machine."""

    hostname: str
    os: str
    architecture: str
    ip_address: str
    version: str = __version__

    @classmethod
    def detect(cls, server_url: str) -> HostInfo:
        return cls(_hostname(), platform.system().lower(), _architecture(), _outbound_ip(server_url))

    def as_json(self) -> dict[str, str]:
        return {
            "version": self.version,
            "hostname": self.hostname,
            "os": self.os,
            "architecture": self.architecture,
            "ip_address": self.ip_address,
        }


def _hostname() -> str:
    try:
        return socket.gethostname() or HOSTNAME_FALLBACK
    except OSError:
        return HOSTNAME_FALLBACK


def _architecture() -> str:
    machine = platform.machine().lower()
    return _ARCHITECTURES.get(machine, machine)


def _outbound_ip(server_url: str) -> str:
    """The local address of the route to the control plane. A UDP "connection" sends no packet; the
    original asked the route to 8.8.8.8, but the address that reaches the server is the useful one."""
    parts = urlsplit(server_url)
    if not parts.hostname:
        return ""
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_DGRAM)
        family, _, _, _, address = infos[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(address)
            return str(probe.getsockname()[0])
    except (OSError, IndexError):
        return ""
