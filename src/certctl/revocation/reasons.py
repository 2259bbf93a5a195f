"""The RFC 5280 §5.3.1 reason names the REST API accepts, and what CRLs and OCSP make of them (pki.md §A2.1).

The API speaks names (`keyCompromise`); the ledger stores the name; CRL entries and OCSP answers carry the
code (`reason_code`) or cryptography's flag (`reason_flag`). removeFromCRL (8) and aACompromise (10) are
refused here: the first is a delta-CRL device, the second belongs to attribute certificates.
"""

from __future__ import annotations

from collections.abc import Mapping

from cryptography import x509

from certctl.errors import ValidationFailed
from certctl.revocation.models import ReasonCode

UNSPECIFIED = "unspecified"

REASON_CODES: Mapping[str, ReasonCode] = {
    "unspecified": ReasonCode.UNSPECIFIED,
    "keyCompromise": ReasonCode.KEY_COMPROMISE,
    "caCompromise": ReasonCode.CA_COMPROMISE,
    "affiliationChanged": ReasonCode.AFFILIATION_CHANGED,
    "superseded": ReasonCode.SUPERSEDED,
    "cessationOfOperation": ReasonCode.CESSATION_OF_OPERATION,
    "certificateHold": ReasonCode.CERTIFICATE_HOLD,
    "privilegeWithdrawn": ReasonCode.PRIVILEGE_WITHDRAWN,
}
_BY_LOWER = {name.lower(): name for name in REASON_CODES}
_FLAGS: Mapping[ReasonCode, x509.ReasonFlags] = {
    ReasonCode.UNSPECIFIED: x509.ReasonFlags.unspecified,
    ReasonCode.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
    ReasonCode.CA_COMPROMISE: x509.ReasonFlags.ca_compromise,
    ReasonCode.AFFILIATION_CHANGED: x509.ReasonFlags.affiliation_changed,
    ReasonCode.SUPERSEDED: x509.ReasonFlags.superseded,
    ReasonCode.CESSATION_OF_OPERATION: x509.ReasonFlags.cessation_of_operation,
    ReasonCode.CERTIFICATE_HOLD: x509.ReasonFlags.certificate_hold,
    ReasonCode.PRIVILEGE_WITHDRAWN: x509.ReasonFlags.privilege_withdrawn,
}


class InvalidRevocationReason(ValidationFailed):
    """A reason name the API does not accept (HTTP 400, the original's "invalid revocation reason")."""

    def __init__(self, given: str) -> None:
        super().__init__(f"invalid revocation reason {given!r}: use one of {', '.join(REASON_CODES)}")
        self.given = given


def parse_reason(name: str | None) -> str:
    """The canonical RFC 5280 name for `name` (any case); empty or None means `unspecified`.

    Raises InvalidRevocationReason for anything else, removeFromCRL and aACompromise included.
    """
    text = (name or "").strip()
    if not text:
        return UNSPECIFIED
    canonical = _BY_LOWER.get(text.lower())
    if canonical is None:
        raise InvalidRevocationReason(text)
    return canonical


def reason_code(name: str) -> ReasonCode:
    """The CRLReason code of a reason name (as `parse_reason` accepts it)."""
    return REASON_CODES[parse_reason(name)]


def reason_flag(name: str) -> x509.ReasonFlags:
    """cryptography's flag for a reason name, for CRL entries, OCSP answers and `IssuerConnector.revoke`."""
    return _FLAGS[reason_code(name)]
