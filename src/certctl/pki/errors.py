"""The issuer error tree: callers catch the level they care about (permanent, retryable, pending).

CertctlError
└── IssuerError
    ├── PermanentIssuerError        the request cannot succeed as it stands; `reason` says why
    │   ├── BadCSR                  unparsable PEM, wrong block type, bad self-signature, bad SAN
    │   ├── ProfileViolation        a certificate profile rule refused the request; `rule` names it
    │   └── NameConstraintViolation a name is outside a name constraint of the issuing chain
    ├── RetryableIssuerError        try again later (CA unreachable, 5xx)
    │   └── RateLimitedIssuerError  try again after `retry_after`
    ├── IssuancePending             an asynchronous CA accepted the order; poll `order_id`
    ├── IssuerConfigError           the issuer's configuration is unusable
    │   └── InvalidCAMaterial       a CA certificate/key pair refused on load; `reason` says why
    └── UnknownIssuerType           no connector is registered for the type
"""

from __future__ import annotations

from datetime import timedelta

from certctl.errors import CertctlError


class IssuerError(CertctlError):
    """Base of every error an issuer connector raises on purpose."""


class PermanentIssuerError(IssuerError):
    """The request cannot succeed as it stands; retrying the same request fails the same way."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadCSR(PermanentIssuerError):
    """The CSR (or a name requested with it) is unusable."""


class ProfileViolation(PermanentIssuerError):
    """A certificate profile rule refused the request."""

    def __init__(self, profile: str, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.profile, self.rule = profile, rule


class NameConstraintViolation(PermanentIssuerError):
    """A requested name breaks a name constraint of a CA in the issuing chain (RFC 5280 §4.2.1.10)."""

    def __init__(self, reason: str, *, name: str, constraint: str, ca: str) -> None:
        super().__init__(reason)
        self.name, self.constraint, self.ca = name, constraint, ca


class RetryableIssuerError(IssuerError):
    """A transient failure; the same request may succeed later."""


class RateLimitedIssuerError(RetryableIssuerError):
    """The CA asked us to slow down; `retry_after` is None when it did not say for how long."""

    def __init__(self, message: str, retry_after: timedelta | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IssuancePending(IssuerError):
    """An asynchronous CA accepted the order but has not issued yet; poll `order_id`."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} is pending at the CA")
        self.order_id = order_id


class IssuerConfigError(IssuerError):
    """The issuer's configuration is unusable; `field` names the offending key when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidCAMaterial(IssuerConfigError):
    """A CA certificate and key were refused on load (not a CA, expired, key mismatch, unsupported key)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownIssuerType(IssuerError):
    def __init__(self, issuer_type: object) -> None:
        super().__init__(f"no issuer connector is registered for type {issuer_type!s}")
        self.issuer_type = issuer_type
