"""The error tree every service raises on purpose; `api/errors.py` maps it to HTTP by class."""

from __future__ import annotations


class CertctlError(Exception):
    """Base of every error a service raises on purpose."""


class ValidationFailed(CertctlError):
    """The request is well-formed but its values break a rule (HTTP 400)."""


class Unauthorized(CertctlError):
    """No usable credential (HTTP 401)."""


class Forbidden(CertctlError):
    """The credential is valid but lacks the role (HTTP 403)."""


class NotFound(CertctlError):
    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident} not found")
        self.kind, self.ident = kind, ident


class Conflict(CertctlError):
    """The change clashes with existing state: duplicate name, resource in use (HTTP 409)."""


class AlreadyExists(Conflict):
    def __init__(self, kind: str, field: str, value: str) -> None:
        super().__init__(f"{kind} with {field} {value!r} already exists")
        self.kind, self.field, self.value = kind, field, value


class InUse(Conflict):
    def __init__(self, kind: str, ident: str, used_by: str) -> None:
        super().__init__(f"{kind} {ident} is still referenced by {used_by}")
        self.kind, self.ident, self.used_by = kind, ident, used_by


class PreconditionFailed(CertctlError):
    """HTTP 412."""


class Gone(CertctlError):
    """The resource existed and has been retired for good (HTTP 410)."""


class UpstreamFailed(CertctlError):
    """A system the server depends on (an issuer) failed; retrying later may work (HTTP 502)."""


class ConfigurationError(CertctlError):
    """Settings or stored state that stop the process from starting."""
